"""A reconnecting feed resumes from its sequence number over a real Daphne and a real Redis: it
gets exactly the messages it missed, from the group's recent history, and a "resync" (take a
snapshot) only when the history no longer covers the gap. A PM's replay carries only their own
accounts' orders."""

from __future__ import annotations

import json
import time

import pytest
from django.utils import timezone

from orders.blotter_selectors import BLOTTER_GROUP, blotter_rows, pm_group
from orders.broadcast import sequence_current
from orders.consumers import RESUME_INTERVAL
from orders.lifecycle import OrderStatus
from orders.services import order_set_status

from .helpers import api_get, session_cookie, staged_order, ws_connect, ws_json

pytestmark = pytest.mark.django_db(transaction=True)


def _flip(order) -> None:
    """One committed change of the order (staged <-> approved): one message to each group that
    sees it."""
    order.refresh_from_db()
    to_status, kind = (
        (OrderStatus.APPROVED, "unstage")
        if order.status == OrderStatus.STAGED
        else (OrderStatus.STAGED, "stage")
    )
    order_set_status(order_id=order.pk, to_status=to_status, as_of=timezone.now(), kind=kind)


def _flips(order, count: int) -> None:
    for _ in range(count):
        _flip(order)


def _published(group: str, seq: int, timeout: float = 10) -> None:
    """The publisher thread sends after commit: wait until `group` has numbered `seq`."""
    deadline = time.monotonic() + timeout
    while sequence_current(group) < seq:
        assert time.monotonic() < deadline, f"{group} stuck at {sequence_current(group)} < {seq}"
        time.sleep(0.02)


def _nothing_more(ws, wait: float = 1.0) -> None:
    with pytest.raises(TimeoutError):
        ws.recv(timeout=wait)


def _live_position(server, path, scope, cookie, order) -> tuple[int, str]:
    """Follow the feed up to a first message: the (seq, epoch) a page would hold."""
    with ws_connect(server, path, cookie=cookie) as ws:
        assert ws_json(ws) == {"type": "subscribed"}
        snapshot = api_get(server, f"/api/blotter/snapshot/?scope={scope}", cookie)
        _flip(order)
        message = ws_json(ws, timeout=10)
        assert message["seq"] == snapshot["seq"] + 1
        return message["seq"], message["epoch"]


def test_a_reconnect_gets_exactly_the_messages_it_missed_and_no_snapshot(oms_server, refdata):
    order = staged_order(refdata.acct1, refdata.aapl)
    cookie = session_cookie(refdata.trader)
    seq, epoch = _live_position(oms_server, "/ws/blotter/", "blotter", cookie, order)

    # Disconnected while seven changes are published.
    missed = 7
    _flips(order, missed)
    _published(BLOTTER_GROUP, seq + missed)

    path = f"/ws/blotter/?since={seq}&epoch={epoch}"
    with ws_connect(oms_server, path, cookie=cookie) as ws:
        assert ws_json(ws) == {"type": "subscribed", "resumed": missed}
        replayed = [ws_json(ws) for _ in range(missed)]
        assert [m["seq"] for m in replayed] == list(range(seq + 1, seq + missed + 1))
        assert {m["epoch"] for m in replayed} == {epoch}
        assert [m["rows"][0]["status"] for m in replayed] == ["STAGED", "APPROVED"] * 3 + ["STAGED"]
        # The page's state after the replay is the database's, without a snapshot.
        now = blotter_rows(user=refdata.trader, scope="blotter", as_of=timezone.now())
        assert replayed[-1]["rows"] == [row for row in now if row["id"] == order.pk]
        _nothing_more(ws)
        # Live messages follow on from the replay, once each.
        _flip(order)
        assert ws_json(ws, timeout=10)["seq"] == seq + missed + 1
        _nothing_more(ws, 0.5)

    # Nothing missed: nothing replayed, and no resync either.
    with ws_connect(
        oms_server, f"/ws/blotter/?since={seq + missed + 1}&epoch={epoch}", cookie=cookie
    ) as ws:
        assert ws_json(ws) == {"type": "subscribed", "resumed": 0}
        _nothing_more(ws)


def test_a_reconnect_after_the_history_is_trimmed_gets_a_resync(oms_server, refdata, settings):
    order = staged_order(refdata.acct1, refdata.aapl)
    cookie = session_cookie(refdata.trader)
    seq, epoch = _live_position(oms_server, "/ws/blotter/", "blotter", cookie, order)

    # The publisher keeps three messages; five are missed.
    settings.OMS_FEED_HISTORY = 3
    _flips(order, 5)
    _published(BLOTTER_GROUP, seq + 5)
    with ws_connect(oms_server, f"/ws/blotter/?since={seq}&epoch={epoch}", cookie=cookie) as ws:
        assert ws_json(ws) == {"type": "subscribed", "resumed": 0}
        assert ws_json(ws) == {"type": "resync", "reason": "trimmed", "seq": seq + 5}
        _nothing_more(ws)
        # What the page then does: a snapshot current to that number, then live messages.
        snapshot = api_get(oms_server, "/api/blotter/snapshot/?scope=blotter", cookie)
        assert (snapshot["seq"], snapshot["epoch"]) == (seq + 5, epoch)
        _flip(order)
        assert ws_json(ws, timeout=10)["seq"] == seq + 6
    # The last three are still there for a page that saw the second.
    with ws_connect(oms_server, f"/ws/blotter/?since={seq + 3}&epoch={epoch}", cookie=cookie) as ws:
        assert ws_json(ws) == {"type": "subscribed", "resumed": 3}
        assert [ws_json(ws)["seq"] for _ in range(3)] == [seq + 4, seq + 5, seq + 6]

    # Another numbering (Redis restarted empty) or a number never reached: resync.
    for query, reason in (
        (f"since={seq}&epoch=1700000000000000", "epoch"),
        (f"since={seq + 1000}&epoch={epoch}", "ahead"),
    ):
        with ws_connect(oms_server, f"/ws/blotter/?{query}", cookie=cookie) as ws:
            assert ws_json(ws)["type"] == "subscribed"
            assert ws_json(ws)["reason"] == reason

    # The history expires with its group's quiet: a page away longer resyncs.
    settings.OMS_FEED_HISTORY, settings.OMS_FEED_HISTORY_SECONDS = 1000, 1
    _flip(order)
    _published(BLOTTER_GROUP, seq + 7)
    time.sleep(1.5)
    with ws_connect(oms_server, f"/ws/blotter/?since={seq + 6}&epoch={epoch}", cookie=cookie) as ws:
        assert ws_json(ws)["type"] == "subscribed"
        assert ws_json(ws)["reason"] == "trimmed"


def test_an_open_feed_that_sees_a_gap_asks_for_a_replay(oms_server, refdata):
    order = staged_order(refdata.acct1, refdata.aapl)
    cookie = session_cookie(refdata.trader)
    with ws_connect(oms_server, "/ws/blotter/", cookie=cookie) as ws:
        assert ws_json(ws)["type"] == "subscribed"
        _flips(order, 3)
        got = [ws_json(ws, timeout=10) for _ in range(3)]
        # As if the first two never arrived: the page asks from the one before them.
        ws.send(
            json.dumps({"type": "resume", "since": got[0]["seq"] - 1, "epoch": got[0]["epoch"]})
        )
        assert [json.loads(ws.recv(timeout=5)) for _ in range(3)] == got
        _nothing_more(ws, 0.5)
        # A request it cannot serve is a resync; junk is ignored.
        time.sleep(RESUME_INTERVAL)
        ws.send("not json")
        ws.send(json.dumps({"type": "resume", "since": -1}))
        ws.send(json.dumps({"type": "resume", "since": got[0]["seq"], "epoch": "other"}))
        assert ws_json(ws) == {"type": "resync", "reason": "epoch", "seq": got[-1]["seq"]}
        # Asked again at once (a client in a loop): nothing until the interval has passed.
        again = {"type": "resume", "since": got[0]["seq"] - 1, "epoch": got[0]["epoch"]}
        ws.send(json.dumps(again))
        _nothing_more(ws, 0.5)
        time.sleep(RESUME_INTERVAL)
        ws.send(json.dumps(again))
        assert [json.loads(ws.recv(timeout=5)) for _ in range(3)] == got


def test_a_pms_replay_carries_only_the_accounts_they_manage(oms_server, refdata):
    mine = staged_order(refdata.acct1, refdata.aapl)
    theirs = staged_order(refdata.acct2, refdata.msft)
    cookie = session_cookie(refdata.pm1)
    group = pm_group(refdata.pm1.pk)
    seq, epoch = _live_position(oms_server, "/ws/orders/mine/", "mine", cookie, mine)

    _flips(theirs, 4)  # pm2's orders: nothing for pm1's group
    _flips(mine, 2)
    _published(group, seq + 2)
    with ws_connect(oms_server, f"/ws/orders/mine/?since={seq}&epoch={epoch}", cookie=cookie) as ws:
        assert ws_json(ws) == {"type": "subscribed", "resumed": 2}
        replayed = [ws_json(ws) for _ in range(2)]
        assert {row["id"] for m in replayed for row in m["rows"]} == {mine.pk}
        _nothing_more(ws)

    # pm1 no longer manages the account: a replay of messages sent while they did shows none
    # of its rows (as a snapshot would not), and keeps the numbering.
    refdata.acct1.managers.remove(refdata.pm1)
    with ws_connect(oms_server, f"/ws/orders/mine/?since={seq}&epoch={epoch}", cookie=cookie) as ws:
        assert ws_json(ws) == {"type": "subscribed", "resumed": 2}
        replayed = [ws_json(ws) for _ in range(2)]
        assert [m["seq"] for m in replayed] == [seq + 1, seq + 2]
        assert [m["rows"] for m in replayed] == [[], []]
