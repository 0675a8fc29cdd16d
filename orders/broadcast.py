"""Live order updates for the blotter and My orders pages.

Services call order_changed_on_commit(order_id); after the transaction commits the changed
orders are published to the websocket groups: the firm-wide "blotter" group and the group of
each PM who manages the order's account.

Every message carries a sequence number per group (Redis INCR, taken after the commit), so a
page that sees a gap knows it missed something and reloads the snapshot, whose sequence number
is read before its query (see blotter_api.snapshot): whatever committed after a snapshot's
query has a higher number than the snapshot.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction

logger = logging.getLogger(__name__)

_BATCH_ATTR = "_oms_order_change_batch"


class _Batch:
    """The orders one transaction changed, published once when it commits."""

    def __init__(self, connection) -> None:
        self.connection = connection
        self.order_ids: set[int] = set()

    def __call__(self) -> None:
        if getattr(self.connection, _BATCH_ATTR, None) is self:
            setattr(self.connection, _BATCH_ATTR, None)
        publish_order_changes(sorted(self.order_ids))


def order_changed_on_commit(order_id: int) -> None:
    connection = transaction.get_connection()
    if not connection.in_atomic_block:
        publish_order_changes([order_id])
        return
    batch = getattr(connection, _BATCH_ATTR, None)
    # A rolled-back savepoint drops its on-commit callbacks: start a new batch then.
    if batch is None or not any(entry[1] is batch for entry in connection.run_on_commit):
        batch = _Batch(connection)
        setattr(connection, _BATCH_ATTR, batch)
        transaction.on_commit(batch)
    batch.order_ids.add(order_id)


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
    _publisher().submit(per_group)


def sequence_key(group: str) -> str:
    prefix = settings.CHANNEL_LAYERS["default"].get("CONFIG", {}).get("prefix", "oms")
    return f"{prefix}:seq:{group}"


def sequence_current(group: str) -> int:
    """The last sequence number sent to `group` (0 before the first)."""
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        return int(client.get(sequence_key(group)) or 0)
    finally:
        client.close()


class _Publisher:
    """One thread per process with its own event loop: numbers and sends messages strictly in
    the order they were submitted, so each group's sequence numbers leave this process in
    order."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.ready = threading.Event()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.queue: asyncio.Queue | None = None
        self.thread = threading.Thread(target=self._run, name="order-publisher", daemon=True)
        self.thread.start()
        self.ready.wait(timeout=10)

    def submit(self, per_group: dict[str, list[dict]]) -> None:
        self.loop.call_soon_threadsafe(self.queue.put_nowait, per_group)

    def _run(self) -> None:
        asyncio.run(self._loop())

    async def _loop(self) -> None:
        import redis.asyncio as aredis
        from channels.layers import get_channel_layer

        self.loop = asyncio.get_running_loop()
        self.queue = asyncio.Queue()
        self.ready.set()
        layer = get_channel_layer()
        client = aredis.Redis.from_url(settings.REDIS_URL)
        while True:
            per_group = await self.queue.get()
            try:
                await self._send(layer, client, per_group)
            except Exception:
                logger.exception("publishing order changes failed")

    async def _send(self, layer, client, per_group: dict[str, list[dict]]) -> None:
        groups = list(per_group)
        async with client.pipeline(transaction=False) as pipe:
            for group in groups:
                pipe.incr(sequence_key(group))
            seqs = await pipe.execute()
        for group, seq in zip(groups, seqs, strict=True):
            text = json.dumps(
                {"type": "orders", "seq": seq, "rows": per_group[group]}, cls=DjangoJSONEncoder
            )
            await layer.group_send(group, {"type": "orders.changed", "text": text})


_publisher_instance: _Publisher | None = None
_publisher_lock = threading.Lock()


def _publisher() -> _Publisher:
    global _publisher_instance
    with _publisher_lock:
        # A forked worker inherits the object but not the thread: start its own.
        if _publisher_instance is None or _publisher_instance.pid != os.getpid():
            _publisher_instance = _Publisher()
        return _publisher_instance
