"""Market data over real sockets: the gateway subprocess subscribes (35=V) at the simulator,
which publishes a snapshot (35=W) and incremental refreshes (35=X); quotes and bars land in
the database, stale ones are flagged, and fills are at or inside the quote."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.utils import timezone

from tests.fix.conftest import routed_block, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def _quote(security):
    from marketdata.models import Quote

    return Quote.objects.filter(security=security).first()


def test_it_subscribes_to_working_securities_and_keeps_the_quote_moving(desk, world):
    broker = world.make(extra_config={"market_data": True})
    world.sim("md_config", rate=20, trade_probability=0.5)
    routed_block(desk, broker, "100", order_type="LIMIT", limit_price="150.00")

    requests = wait_until(lambda: world.sim("md_state")["requests"], what="a 35=V")
    assert requests[0]["type"] == "1" and "AAPL" in requests[0]["symbols"]
    first = wait_until(lambda: _quote(desk.aapl), what="a quote from the snapshot")
    assert first.source == broker.code
    assert first.bid is not None and first.ask is not None and first.bid < first.ask
    # Incremental refreshes: the quote's time moves, trades build the day's volume and bars.
    wait_until(lambda: _quote(desk.aapl).updated_at > first.updated_at, what="an update")
    wait_until(lambda: _quote(desk.aapl).day_volume > 0, what="traded volume")
    q = _quote(desk.aapl)
    assert q.day_vwap is not None and q.last is not None
    from marketdata.models import MinuteBar

    wait_until(lambda: MinuteBar.objects.filter(security=desk.aapl).exists(), what="a bar")
    bar = MinuteBar.objects.filter(security=desk.aapl).first()
    assert bar.low <= bar.close <= bar.high and bar.volume > 0
    sim_book = world.sim("md_state")["books"]["AAPL"]
    # The OMS ends where the simulator is (within a couple of flushes).
    wait_until(
        lambda: (
            str(_quote(desk.aapl).bid.normalize())
            == str(Decimal(world.sim("md_state")["books"]["AAPL"]["bid"]).normalize())
        ),
        what="the OMS's bid equal to the simulator's",
    )
    assert sim_book["volume"]


def test_a_security_that_stops_updating_is_flagged_stale(desk, world, settings):
    from marketdata.selectors import quotes_list

    settings.OMS_MD_STALE_SECONDS = 1
    broker = world.make(extra_config={"market_data": True})
    world.sim("md_config", rate=10)
    routed_block(desk, broker, "100", order_type="LIMIT", limit_price="150.00")
    wait_until(lambda: _quote(desk.aapl), what="a quote")

    def row():
        return quotes_list(as_of=timezone.now(), security_ids=[desk.aapl.pk])[0]

    assert row()["stale"] is False and row()["source"] == f"feed:{broker.code}"
    world.sim("md_pause", symbols=["AAPL"])
    wait_until(lambda: row()["stale"], timeout=10, what="the quote flagged stale")
    world.sim("md_pause", symbols=["AAPL"], paused=False)
    wait_until(lambda: not row()["stale"], timeout=10, what="fresh again")


def test_without_a_feed_the_reference_price_is_used_and_said(desk, world):
    from marketdata.selectors import market_status, quotes_list

    world.make()  # no market_data in the broker's row
    routed_block(desk, world.broker, "100", order_type="LIMIT", limit_price="150.00")
    row = quotes_list(as_of=timezone.now(), security_ids=[desk.aapl.pk])[0]
    assert row["source"] == "reference" and row["mid"] == desk.aapl.reference_price
    status = market_status(as_of=timezone.now())
    assert status["feed"] is False and "reference prices" in status["message"]
    assert world.sim("md_state")["requests"] == []


def test_fills_are_at_or_inside_the_quote_and_the_arrival_is_the_mid(desk, world):
    from marketdata.models import ArrivalPrice
    from orders.models import Block

    broker = world.make(extra_config={"market_data": True})
    world.sim("md_config", rate=5)
    resting = routed_block(desk, broker, "100", order_type="LIMIT", limit_price="150.00")
    wait_until(lambda: _quote(desk.aapl), what="a quote")
    q = _quote(desk.aapl)
    block = routed_block(desk, broker, "300")
    wait_until(lambda: Block.objects.get(pk=block.pk).status == "FILLED", what="filled")
    arrival = ArrivalPrice.objects.get(kind="route", block=block)
    assert arrival.source == "feed" and arrival.bid is not None
    assert arrival.mid == (arrival.bid + arrival.ask) / 2
    filled = Block.objects.get(pk=block.pk)
    # A market buy takes the ask: within a tick or two of the arrival quote (the walk moves a
    # tick at most per update), never below the bid.
    assert arrival.bid <= filled.avg_price <= arrival.ask + Decimal("0.05")
    assert filled.avg_price != Decimal("190.00") or q.ask == Decimal("190.00")
    assert Block.objects.get(pk=resting.pk).status == "WORKING"


def test_quotes_reach_the_blotter_and_positions_feeds_throttled(desk, world, oms_server):
    """Simulator -> FIX -> gateway -> Redis -> Daphne -> websocket, each feed as a page opens
    it; at most one push per security per throttle window (200 ms)."""
    import json
    from datetime import datetime

    from marketdata.broadcast import quotes_rows
    from tests.blotter.helpers import session_cookie, ws_connect

    broker = world.make(extra_config={"market_data": True})
    world.sim("md_config", rate=50)
    routed_block(desk, broker, "100", order_type="LIMIT", limit_price="150.00")
    wait_until(lambda: _quote(desk.aapl), what="a quote")
    path = f"/ws/positions/?account={desk.acct1.pk}"
    with (
        ws_connect(oms_server, "/ws/blotter/", cookie=session_cookie(desk.trader)) as blotter,
        ws_connect(oms_server, path, cookie=session_cookie(desk.pm1)) as positions,
    ):
        for ws in (blotter, positions):
            sent_at: list[datetime] = []
            while len(sent_at) < 10:
                message = json.loads(ws.recv(timeout=5))
                if message["type"] == "quotes":
                    (quote,) = [q for q in quotes_rows(message) if q["symbol"] == "AAPL"]
                    assert Decimal(quote["bid"]) < Decimal(quote["ask"])
                    assert quote["src"] <= datetime.fromisoformat(message["at"]).timestamp()
                    sent_at.append(datetime.fromisoformat(message["at"]))
            # 50 updates a second from the simulator; AAPL pushed at most every 200 ms.
            gaps = [(b - a).total_seconds() for a, b in zip(sent_at, sent_at[1:], strict=False)]
            assert min(gaps) >= 0.19, gaps


def test_market_data_over_a_session_of_its_own_beside_the_fills(desk, world, gateway_env, tmp_path):
    """The broker's row gives market data a FIX session of its own: `run_market_data` (as the
    Procfile's `md` runs it: every broker configured so) holds it in another process and
    subscribes there; the order session carries the fills. A broker deactivated is let go."""
    import subprocess
    import sys

    from marketdata.models import Quote
    from orders.models import Block
    from tests.fix.conftest import ROOT

    broker = world.make(extra_config={"market_data": {"session": {"SenderCompID": "OMSMD"}}})
    world.sim("md_config", rate=20, trade_probability=0.5)
    routed_block(desk, broker, "100", order_type="LIMIT", limit_price="150.00")
    with (tmp_path / "market-data.log").open("w") as log:
        feed = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "run_market_data", "--poll-seconds", "1"],
            cwd=ROOT,
            env=gateway_env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        first = wait_until(lambda: _quote(desk.aapl), timeout=30, what="a quote")
        assert first.source == broker.code and first.bid < first.ask
        wait_until(lambda: _quote(desk.aapl).updated_at > first.updated_at, what="an update")
        (request,) = world.sim("md_state")["requests"]  # one 35=V: the order session sent none
        assert "AAPL" in request["symbols"]
        block = routed_block(desk, broker, "300")
        wait_until(lambda: Block.objects.get(pk=block.pk).status == "FILLED", what="filled")
        assert Quote.objects.filter(security=desk.aapl).count() == 1
        sessions = world.sim("state")["sessions"]
        assert any("OMSMD" in name for name in sessions), sessions
        type(broker).objects.filter(pk=broker.pk).update(active=False)
        wait_until(
            lambda: not any("OMSMD" in name for name in world.sim("state")["sessions"]),
            timeout=20,
            what="the market data session let go",
        )
    finally:
        feed.terminate()
        feed.wait(30)
    assert feed.returncode == 0 or feed.returncode == -15
