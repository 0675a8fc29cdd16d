"""The pages' feed (static/js/blotter/feed.js) in real Chromium: a dropped websocket reconnects
with its last sequence number and replays what it missed, without a snapshot; only when the
server's history no longer covers the gap does it take one."""

from __future__ import annotations

import time

import pytest
from django.utils import timezone

from orders.blotter_selectors import BLOTTER_GROUP, pm_group
from orders.broadcast import sequence_current
from orders.lifecycle import OrderStatus
from orders.services import order_set_status

from .helpers import staged_order

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Drop the page's socket and hold its reconnect until released: what a network blip does. The
# page's own backoff timer must have fired into the stub before the release, or it would open a
# second socket next to the released one.
_DROP = """(feed) => {
    feed.heldConnect = feed.connect;
    feed.reconnectAsked = false;
    feed.connect = () => { feed.reconnectAsked = true; };
    feed.ws.close();
}"""
_RECONNECT = "(feed) => { feed.connect = feed.heldConnect; feed.connect(); }"


def _reconnect(page, feed: str) -> None:
    page.wait_for_function(f"() => {feed}.reconnectAsked")
    page.evaluate(f"() => ({_RECONNECT})({feed})")


def _flip(order) -> str:
    order.refresh_from_db()
    to_status, kind = (
        (OrderStatus.APPROVED, "unstage")
        if order.status == OrderStatus.STAGED
        else (OrderStatus.STAGED, "stage")
    )
    order_set_status(order_id=order.pk, to_status=to_status, as_of=timezone.now(), kind=kind)
    return to_status


def _published(group: str, seq: int) -> None:
    deadline = time.monotonic() + 10
    while sequence_current(group) < seq:
        assert time.monotonic() < deadline
        time.sleep(0.02)


def _counters(page, feed: str) -> dict:
    return page.evaluate(
        f"() => {{ const f = {feed}; return {{snapshots: f.snapshots, resumes: f.resumes, "
        "replayed: f.replayed, seq: f.seq, state: f.ws.readyState}; }"
    )


def test_the_blotter_resumes_after_a_dropped_socket_and_resyncs_only_past_the_history(
    refdata, login, oms_server, settings
):
    order = staged_order(refdata.acct1, refdata.aapl)
    page = login("trader1")
    page.goto(f"{oms_server}/blotter/")
    page.wait_for_selector("[data-testid=feed-state]:text('live')")
    feed = "window.OMSBlotter.feed"
    status_is = (
        f"(s) => {{ const n = window.OMSBlotter.api.getRowNode('{order.pk}'); "
        "return n && n.data.status === s; }"
    )
    # One live message, so the page holds a number and its epoch.
    page.wait_for_function(status_is, arg=_flip(order))
    seq = _counters(page, feed)["seq"]
    assert _counters(page, feed)["snapshots"] == 1

    page.evaluate(f"() => ({_DROP})({feed})")
    page.wait_for_selector("[data-testid=feed-state]:text('reconnecting')")
    for _ in range(3):
        last = _flip(order)
    _published(BLOTTER_GROUP, seq + 3)
    _reconnect(page, feed)
    page.wait_for_function(status_is, arg=last)
    page.wait_for_function(f"() => {feed}.seq === {seq + 3}")
    counters = _counters(page, feed)
    assert (counters["snapshots"], counters["resumes"], counters["replayed"]) == (1, 1, 3)

    # Away for longer than the history holds: one snapshot, and the grid is right.
    settings.OMS_FEED_HISTORY = 2
    page.evaluate(f"() => ({_DROP})({feed})")
    page.wait_for_selector("[data-testid=feed-state]:text('reconnecting')")
    for _ in range(5):
        last = _flip(order)
    _published(BLOTTER_GROUP, seq + 8)
    _reconnect(page, feed)
    page.wait_for_function(f"() => {feed}.snapshots === 2")
    page.wait_for_function(status_is, arg=last)
    assert _counters(page, feed)["seq"] == seq + 8
    # Live again after the resync.
    page.wait_for_function(status_is, arg=_flip(order))


def test_my_orders_resumes_with_only_the_pms_own_orders(refdata, login, oms_server):
    mine = staged_order(refdata.acct1, refdata.aapl, quantity="7")
    theirs = staged_order(refdata.acct2, refdata.msft)
    page = login("pm1")
    page.goto(f"{oms_server}/orders/mine/")
    page.wait_for_selector("#my-orders[data-feed=live]")
    feed = "window.OMSMyOrders.feed"
    table = page.locator("[data-testid=my-orders]")

    def shows(order, status):
        table.locator(f"tr[data-order-id='{order.pk}'] [data-field=status]").filter(
            has_text=status
        ).wait_for()

    shows(mine, _flip(mine))
    seq = _counters(page, feed)["seq"]
    page.evaluate(f"() => ({_DROP})({feed})")
    page.wait_for_selector("#my-orders[data-feed=reconnecting]")
    _flip(theirs)
    _flip(theirs)
    last = _flip(mine)
    _published(pm_group(refdata.pm1.pk), seq + 1)
    _reconnect(page, feed)
    shows(mine, last)
    counters = _counters(page, feed)
    assert (counters["snapshots"], counters["resumes"], counters["replayed"]) == (1, 1, 1)
    assert table.locator(f"tr[data-order-id='{theirs.pk}']").count() == 0
