"""The live feed's fan-out: order changes committed within OMS_FEED_COALESCE_MS go out as one
numbered message per group (the desk's with every order, each PM's with only theirs), kept in
the history as sent; each web process follows a group with one Redis subscription however many
pages it serves (oms.fanout)."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import pytest
import redis
from django.conf import settings as django_settings
from django.utils import timezone

from oms.fanout import live_channel
from oms.publish import Coalescer
from orders.blotter_selectors import BLOTTER_GROUP, pm_group
from orders.broadcast import messages_per_group, sequence_current
from orders.lifecycle import OrderStatus
from orders.services import order_set_status

from .helpers import session_cookie, staged_order, ws_connect, ws_json

MISSED = 400  # a replay long enough for live messages to arrive while it is sent
WINDOW_MS = 5000  # far longer than three commits take, so they fall in one window


def _set(order, to_status, kind) -> None:
    order_set_status(order_id=order.pk, to_status=to_status, as_of=timezone.now(), kind=kind)


def _subscribers(group: str) -> int:
    client = redis.Redis.from_url(django_settings.REDIS_URL)
    try:
        return dict(client.pubsub_numsub(live_channel(group)))[live_channel(group).encode()]
    finally:
        client.close()


@pytest.mark.django_db(transaction=True)
def test_changes_within_the_window_go_out_as_one_message_per_group(oms_server, refdata, settings):
    settings.OMS_FEED_COALESCE_MS = WINDOW_MS
    first = staged_order(refdata.acct1, refdata.aapl)  # pm1's account
    second = staged_order(refdata.acct2, refdata.msft)  # pm2's account
    before = sequence_current(BLOTTER_GROUP)
    desk = ws_connect(oms_server, "/ws/blotter/", cookie=session_cookie(refdata.trader))
    pm1 = ws_connect(oms_server, "/ws/orders/mine/", cookie=session_cookie(refdata.pm1))
    pm2 = ws_connect(oms_server, "/ws/orders/mine/", cookie=session_cookie(refdata.pm2))
    try:
        for ws in (desk, pm1, pm2):
            assert ws_json(ws)["type"] == "subscribed"
        # A change when nothing was sent for a window goes at once; a window starts with it.
        _set(second, OrderStatus.APPROVED, "unstage")
        opened = ws_json(desk, timeout=WINDOW_MS / 1000 + 10)
        assert opened["seq"] == before + 1
        assert [r["id"] for r in ws_json(pm2, timeout=10)["rows"]] == [second.pk]
        # Three commits within it: the first order twice (pulled back, staged again), the
        # second once more.
        _set(first, OrderStatus.APPROVED, "unstage")
        _set(first, OrderStatus.STAGED, "stage")
        _set(second, OrderStatus.STAGED, "stage")

        got = ws_json(desk, timeout=WINDOW_MS / 1000 + 10)
        assert got["seq"] == before + 2
        # The first order once, in its latest version; ids in order.
        assert [(r["id"], r["status"]) for r in got["rows"]] == [
            (first.pk, "STAGED"),
            (second.pk, "STAGED"),
        ]
        first.refresh_from_db()
        assert got["rows"][0]["version"] == first.version
        mine1 = ws_json(pm1, timeout=10)
        mine2 = ws_json(pm2, timeout=10)
        assert [r["id"] for r in mine1["rows"]] == [first.pk]
        assert [r["id"] for r in mine2["rows"]] == [second.pk]
        for ws in (desk, pm1, pm2):
            with pytest.raises(TimeoutError):
                ws.recv(timeout=1.0)

        # The history holds the message as it was sent: a page that missed it gets it again.
        epoch = got["epoch"]
        with ws_connect(
            oms_server,
            f"/ws/blotter/?since={before + 1}&epoch={epoch}",
            cookie=session_cookie(refdata.trader),
        ) as again:
            assert ws_json(again) == {"type": "subscribed", "resumed": 1}
            assert ws_json(again) == got
    finally:
        for ws in (desk, pm1, pm2):
            ws.close()


@pytest.mark.django_db(transaction=True)
def test_one_subscription_per_web_process_however_many_pages(oms_server, refdata):
    cookie = session_cookie(refdata.trader)
    pages = [ws_connect(oms_server, "/ws/blotter/", cookie=cookie) for _ in range(5)]
    pm1 = ws_connect(oms_server, "/ws/orders/mine/", cookie=session_cookie(refdata.pm1))
    try:
        for ws in (*pages, pm1):
            assert ws_json(ws)["type"] == "subscribed"
        assert _subscribers(BLOTTER_GROUP) == 1
        assert _subscribers(pm_group(refdata.pm1.pk)) == 1
        order = staged_order(refdata.acct1, refdata.aapl)
        _set(order, OrderStatus.APPROVED, "unstage")
        seqs = {ws_json(ws, timeout=10)["seq"] for ws in pages}
        assert seqs == {sequence_current(BLOTTER_GROUP)}
        assert ws_json(pm1, timeout=10)["rows"][0]["id"] == order.pk
    finally:
        for ws in (*pages, pm1):
            ws.close()
    # The last page gone, the process stops following the groups.
    deadline = time.monotonic() + 10
    while _subscribers(BLOTTER_GROUP) or _subscribers(pm_group(refdata.pm1.pk)):
        assert time.monotonic() < deadline, "the web process still follows the groups"
        time.sleep(0.1)


def test_a_group_gets_only_its_rows_each_order_once_in_its_latest_version():
    def row(order_id, version, account_id):
        return {"id": order_id, "version": version, "account_id": account_id}

    gathered = [
        (row(7, 2, 1), [10]),
        (row(3, 5, 2), [11]),
        (row(7, 4, 1), [10]),  # the same order again, later
        (row(7, 3, 1), [10]),  # an older read handed in after the newer one
        (row(9, 1, 3), [10, 11]),  # an account both PMs manage
        (row(5, 1, 4), []),  # nobody's account: the desk only
    ]
    groups = messages_per_group(gathered)
    assert groups[BLOTTER_GROUP] == [row(3, 5, 2), row(5, 1, 4), row(7, 4, 1), row(9, 1, 3)]
    assert groups[pm_group(10)] == [row(7, 4, 1), row(9, 1, 3)]
    assert groups[pm_group(11)] == [row(3, 5, 2), row(9, 1, 3)]
    assert set(groups) == {BLOTTER_GROUP, pm_group(10), pm_group(11)}


def test_the_coalescer_sends_at_most_one_batch_a_window_in_order():
    sent: list[list] = []
    arrived = threading.Condition()

    async def send(items: list) -> None:
        with arrived:
            sent.append(items)
            arrived.notify_all()

    def batches(n: int) -> list[list]:
        with arrived:
            assert arrived.wait_for(lambda: len(sent) >= n, timeout=20)
            return list(sent)

    gathering = Coalescer(send, window=lambda: 5.0, max_items=4, what="test items")
    gathering.add([0])  # nothing sent for a window: at once
    assert batches(1) == [[0]]
    threads = [threading.Thread(target=gathering.add, args=([n],)) for n in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    gathering.add([3, 4])  # four waiting: they go without waiting for the window's end
    second = batches(2)[1]
    assert sorted(second[:2]) == [1, 2] and second[2:] == [3, 4]
    gathering.add([5])  # waits for the window's end
    assert batches(3)[2] == [5]
    # No window: each add goes alone.
    Coalescer(send, window=lambda: 0, max_items=4, what="test items").add([6])
    assert batches(4)[3] == [6]


@pytest.mark.django_db(transaction=True)
def test_a_resume_while_changes_flow_gives_each_message_once_in_order(oms_server, refdata):
    """A page resuming while changes are published gets the replay and the live messages as
    one unbroken run of numbers, nothing twice (live messages that arrive while the replay is
    read wait for it; the moments in which that can happen are short, so a run without the
    waiting may pass too: this guards the outcome, not the mechanism)."""
    import redis.asyncio as aredis
    from django.core.serializers.json import DjangoJSONEncoder
    from django.db import connection

    from orders.blotter_selectors import order_rows_for_publish
    from orders.feed_history import publish_numbered, sequence_position

    order = staged_order(refdata.acct1, refdata.aapl)
    flips = [(OrderStatus.APPROVED, "unstage"), (OrderStatus.STAGED, "stage")]
    _set(order, *flips[0])
    _set(order, *flips[1])
    # The page missed those two and MISSED more: a replay long enough for live messages to
    # arrive while it is sent (published as the feed publishes them, straight to Redis).
    [(row, _)] = order_rows_for_publish(order_ids=[order.pk])
    text = json.dumps([row], cls=DjangoJSONEncoder)

    async def publish_missed() -> None:
        client = aredis.Redis.from_url(django_settings.REDIS_URL)
        try:
            for _ in range(MISSED):
                await publish_numbered(client, {BLOTTER_GROUP: text})
        finally:
            await client.aclose()

    deadline = time.monotonic() + 10
    while not sequence_current(BLOTTER_GROUP):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    since, epoch = sequence_position(BLOTTER_GROUP)
    since -= 2
    # On a thread of its own: a browser test before this one leaves Playwright's event loop
    # running on the main thread, where asyncio.run refuses to start another.
    publisher = threading.Thread(target=lambda: asyncio.run(publish_missed()))
    publisher.start()
    publisher.join()

    def changes() -> None:
        try:
            for n in range(30):
                _set(order, *flips[n % 2])
        finally:
            connection.close()

    writer = threading.Thread(target=changes)
    writer.start()
    try:
        with ws_connect(
            oms_server,
            f"/ws/blotter/?since={since}&epoch={epoch}",
            cookie=session_cookie(refdata.trader),
        ) as ws:
            assert ws_json(ws)["type"] == "subscribed"
            writer.join()
            last = since + 2 + MISSED + 30
            deadline = time.monotonic() + 10
            while sequence_current(BLOTTER_GROUP) < last:
                assert time.monotonic() < deadline
                time.sleep(0.02)
            seqs = []
            while not seqs or seqs[-1] < last:
                seqs.append(ws_json(ws, timeout=10)["seq"])
            assert seqs == list(range(since + 1, last + 1))
            with pytest.raises(TimeoutError):
                ws.recv(timeout=1.0)
    finally:
        writer.join()


def test_two_oms_on_one_redis_server_in_other_databases_never_hear_each_other(settings):
    """Pub/sub channels belong to the server, not to a database number."""
    ours = django_settings.REDIS_URL
    theirs = ours.rsplit("/", 1)[0] + f"/{(int(ours.rsplit('/', 1)[1] or 0) + 1) % 16}"
    our_channel = live_channel(BLOTTER_GROUP)
    settings.REDIS_URL = theirs
    their_channel = live_channel(BLOTTER_GROUP)
    assert our_channel != their_channel
    listener = redis.Redis.from_url(theirs).pubsub()
    listener.subscribe(their_channel)
    assert listener.get_message(timeout=5)["type"] == "subscribe"
    redis.Redis.from_url(ours).publish(our_channel, "1\n[]")
    assert listener.get_message(timeout=1) is None
    listener.close()
