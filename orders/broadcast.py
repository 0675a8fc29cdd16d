"""Live order updates for the blotter and My orders pages.

Services call order_changed_on_commit(order_id); after the transaction commits the changed
orders are published to the websocket groups: the firm-wide "blotter" group and the group of
each PM who manages the order's account.

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

from oms.publish import changed_on_commit, submit

from .feed_history import publish_numbered, sequence_position

logger = logging.getLogger(__name__)


def order_changed_on_commit(order_id: int) -> None:
    changed_on_commit("orders", order_id, publish_order_changes)


def publish_order_changes(order_ids: list[int]) -> None:
    """Push the current state of these orders to every client allowed to see them.

    Reads the rows here (one query, after the commit) and hands them to this process's
    publisher thread, so the committing caller never waits on Redis and never needs an event
    loop of its own. A failure is logged, never raised: the commit already happened, and pages
    notice the missing sequence number and reload.
    """
    if not order_ids:
        return
    from .blotter_selectors import BLOTTER_GROUP, order_rows_for_publish, pm_group

    try:
        rows = order_rows_for_publish(order_ids=list(order_ids))
    except Exception:
        logger.exception("reading orders %s to publish failed", order_ids)
        return
    if not rows:
        return
    per_group: dict[str, list[dict]] = {BLOTTER_GROUP: []}
    for row, manager_ids in rows:
        per_group[BLOTTER_GROUP].append(row)
        for manager_id in manager_ids:
            per_group.setdefault(pm_group(manager_id), []).append(row)
    submit(lambda: _send(per_group), what="order changes")


def sequence_current(group: str) -> int:
    """The last sequence number sent to `group` (0 before the first)."""
    return sequence_position(group)[0]


_redis: dict[int, object] = {}


async def _send(per_group: dict[str, list[dict]]) -> None:
    import redis.asyncio as aredis
    from channels.layers import get_channel_layer

    # One client per process, used only on the publisher thread's loop.
    client = _redis.get(os.getpid())
    if client is None:
        client = _redis[os.getpid()] = aredis.Redis.from_url(settings.REDIS_URL)
    numbered = await publish_numbered(
        client,
        {group: json.dumps(rows, cls=DjangoJSONEncoder) for group, rows in per_group.items()},
    )
    layer = get_channel_layer()
    for group, seq, text in numbered:
        # The seq beside the text lets a consumer that has just replayed the history drop
        # what it already sent without parsing the message.
        await layer.group_send(group, {"type": "orders.changed", "seq": seq, "text": text})
