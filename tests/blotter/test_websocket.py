"""The live feed over a real Daphne: who may connect, who receives what, and recovery from
missed messages."""

from __future__ import annotations

import time

import pytest
from django.utils import timezone
from websockets.exceptions import ConnectionClosed, InvalidStatus

from orders.block_services import block_create
from orders.blotter_selectors import blotter_rows
from orders.lifecycle import OrderStatus
from orders.services import order_set_status

from .helpers import FeedClient, session_cookie, staged_order, ws_connect, ws_json

pytestmark = pytest.mark.django_db(transaction=True)


def _close_code(ws) -> int:
    with pytest.raises(ConnectionClosed) as closed:
        ws.recv(timeout=5)
    return closed.value.rcvd.code


def test_anonymous_connection_is_closed_4401(oms_server, refdata):
    with ws_connect(oms_server, "/ws/blotter/") as ws:
        assert _close_code(ws) == 4401
    with ws_connect(oms_server, "/ws/orders/mine/") as ws:
        assert _close_code(ws) == 4401


def test_foreign_origin_is_refused_at_handshake(oms_server, refdata):
    cookie = session_cookie(refdata.trader)
    with pytest.raises(InvalidStatus) as refused:
        ws_connect(oms_server, "/ws/blotter/", cookie=cookie, origin="http://evil.example")
    assert refused.value.response.status_code == 403
    # The same session from the page's own origin is accepted.
    with ws_connect(oms_server, "/ws/blotter/", cookie=cookie) as ws:
        assert ws_json(ws)["type"] == "subscribed"


def test_pm_may_not_follow_the_firm_wide_blotter(oms_server, refdata):
    with ws_connect(oms_server, "/ws/blotter/", cookie=session_cookie(refdata.pm1)) as ws:
        assert _close_code(ws) == 4403


def _restage(order, actor):
    """Two committed changes to an order (pulled back, staged again), each pushed."""
    order_set_status(
        order_id=order.pk,
        to_status=OrderStatus.APPROVED,
        as_of=timezone.now(),
        kind="unstage",
        actor=actor,
    )
    order_set_status(
        order_id=order.pk,
        to_status=OrderStatus.STAGED,
        as_of=timezone.now(),
        kind="stage",
        actor=actor,
    )


def test_each_pm_receives_only_their_accounts_orders_and_the_desk_receives_all(oms_server, refdata):
    mine1 = staged_order(refdata.acct1, refdata.aapl)
    mine2 = staged_order(refdata.acct2, refdata.aapl)
    pm1 = ws_connect(oms_server, "/ws/orders/mine/", cookie=session_cookie(refdata.pm1))
    pm2 = ws_connect(oms_server, "/ws/orders/mine/", cookie=session_cookie(refdata.pm2))
    desk = ws_connect(oms_server, "/ws/blotter/", cookie=session_cookie(refdata.trader))
    try:
        for ws in (pm1, pm2, desk):
            assert ws_json(ws)["type"] == "subscribed"
        # One transaction changing both PMs' orders: one message per group.
        block_create(order_ids=[mine1.pk, mine2.pk], actor=refdata.trader, as_of=timezone.now())
        got1, got2, got_desk = ws_json(pm1), ws_json(pm2), ws_json(desk)
        assert [r["id"] for r in got1["rows"]] == [mine1.pk]
        assert [r["id"] for r in got2["rows"]] == [mine2.pk]
        assert sorted(r["id"] for r in got_desk["rows"]) == sorted([mine1.pk, mine2.pk])
        assert got_desk["rows"][0]["block_id"] is not None
        _restage(staged_order(refdata.acct2, refdata.msft), refdata.trader)
        later = [ws_json(desk), ws_json(desk)]
        assert [m["seq"] for m in later] == [got_desk["seq"] + 1, got_desk["seq"] + 2]
        assert [m["rows"][0]["status"] for m in later] == ["APPROVED", "STAGED"]
        assert ws_json(pm2)["rows"][0]["symbol"] == "MSFT"
        # pm1 has nothing further coming: the MSFT order is in pm2's account.
        with pytest.raises(TimeoutError):
            pm1.recv(timeout=1.0)
    finally:
        for ws in (pm1, pm2, desk):
            ws.close()


def test_a_client_that_missed_messages_recovers_the_exact_state(oms_server, refdata):
    orders = [staged_order(refdata.acct1, refdata.aapl, quantity=str(100 + i)) for i in range(3)]
    cookie = session_cookie(refdata.trader)
    feed = FeedClient(oms_server, "/ws/blotter/", "blotter", cookie)
    feed.open()
    feed.snapshot()
    _restage(orders[0], refdata.trader)
    feed.receive()
    feed.receive()
    assert feed.snapshots == 1
    feed.close()

    # While disconnected: blocks, status changes and a new order, all unseen.
    block_create(order_ids=[orders[1].pk, orders[2].pk], actor=refdata.trader, as_of=timezone.now())
    order_set_status(
        order_id=orders[0].pk,
        to_status=OrderStatus.CANCELLED,
        as_of=timezone.now(),
        kind="cancel",
        actor=refdata.trader,
    )
    extra = staged_order(refdata.acct2, refdata.xom)
    time.sleep(0.3)

    feed.open()
    _restage(extra, refdata.trader)  # the next message reveals the gap
    started = time.monotonic()
    feed.receive()
    assert feed.snapshots == 2
    feed.receive()
    assert time.monotonic() - started < 2.0
    expected = {
        row["id"]: row
        for row in blotter_rows(user=refdata.trader, scope="blotter", as_of=timezone.now())
    }
    assert feed.rows == expected
    assert feed.rows[orders[0].pk]["status"] == "CANCELLED"
    assert feed.rows[orders[1].pk]["block_id"] == feed.rows[orders[2].pk]["block_id"] is not None
    assert feed.rows[extra.pk]["status"] == "STAGED"
    feed.close()
