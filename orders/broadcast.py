"""Live order updates for the blotter and My orders pages.

Services call order_changed_on_commit(order_id); after the transaction commits the changed
orders are published to the websocket groups: the firm-wide "blotter" group and the group of
each PM who manages the order's account.

At most one message per group goes out per OMS_FEED_COALESCE_MS (oms.publish.Coalescer): a
change after a quiet window at once, the changes committed during a window together at its end.
Each is published once to the group's live channel and fanned out to the pages in each web
process (oms.fanout).

Every message carries a sequence number per group (Redis INCR, taken after the commit), so a
page that sees a gap knows it missed something and reloads the snapshot, whose sequence number
is read before its query (see blotter_api.snapshot): whatever committed after a snapshot's
query has a higher number than the snapshot. Each message is also kept in its group's recent
history (orders.feed_history) in the same step as its number, so a page that reconnects gets
the messages it missed instead of a snapshot.
"""

from __future__ import annotations

import json
import logging
import os

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder

from oms.publish import Coalescer, changed_on_commit

from .feed_history import publish_numbered, sequence_position

logger = logging.getLogger(__name__)


def order_changed_on_commit(order_id: int) -> None:
    changed_on_commit("orders", order_id, publish_order_changes)


def publish_order_changes(order_ids: list[int]) -> None:
    """Push the current state of these orders to every client allowed to see them.

    Reads the rows here (one query, after the commit) and hands them to this process's
    publisher thread, so the committing caller never waits on Redis and never needs an event
    loop of its own. The publisher sends what commits hand it within one OMS_FEED_COALESCE_MS
    window as one message per group. A failure is logged, never raised: the commit
    already happened, and pages notice the missing sequence number and reload.
    """
    if not order_ids:
        return
    from .blotter_selectors import order_rows_for_publish

    try:
        rows = order_rows_for_publish(order_ids=list(order_ids))
    except Exception:
        logger.exception("reading orders %s to publish failed", order_ids)
        return
    if rows:
        _coalescer.add(rows)


def messages_per_group(rows: list[tuple[dict, list[int]]]) -> dict[str, list[dict]]:
    """Each group's rows from (row, ids of the PMs managing its account) pairs gathered over
    a window: the firm-wide blotter gets every order, a PM's group only the orders of accounts
    that PM manages. An order changed more than once in the window is sent once, in its latest
    version (the row is the order's whole state, so nothing between is lost), in id order."""
    from .blotter_selectors import BLOTTER_GROUP, pm_group

    latest: dict[int, tuple[dict, list[int]]] = {}
    for row, manager_ids in rows:
        seen = latest.get(row["id"])
        if seen is None or row["version"] >= seen[0]["version"]:
            latest[row["id"]] = (row, manager_ids)
    per_group: dict[str, list[dict]] = {BLOTTER_GROUP: []}
    for _, (row, manager_ids) in sorted(latest.items()):
        per_group[BLOTTER_GROUP].append(row)
        for manager_id in manager_ids:
            per_group.setdefault(pm_group(manager_id), []).append(row)
    return per_group


def sequence_current(group: str) -> int:
    """The last sequence number sent to `group` (0 before the first)."""
    return sequence_position(group)[0]


_redis: dict[int, object] = {}


async def _send(rows: list[tuple[dict, list[int]]]) -> None:
    import redis.asyncio as aredis

    # One client per process, used only on the publisher thread's loop.
    client = _redis.get(os.getpid())
    if client is None:
        client = _redis[os.getpid()] = aredis.Redis.from_url(settings.REDIS_URL)
    per_group = messages_per_group(rows)
    # Numbered, kept in the history and published to each group's live channel (oms.fanout)
    # in one step: one PUBLISH per group, however many pages follow it.
    await publish_numbered(
        client,
        {group: json.dumps(rows, cls=DjangoJSONEncoder) for group, rows in per_group.items()},
    )


_coalescer = Coalescer(
    _send,
    window=lambda: settings.OMS_FEED_COALESCE_MS / 1000,
    max_items=500,
    what="order changes",
)
