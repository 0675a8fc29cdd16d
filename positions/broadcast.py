"""Live position updates: services mark an account changed; after commit, one message per
account goes to its Channels group, and the positions page refetches what it shows."""

from __future__ import annotations

import asyncio
import logging
import os
import threading

from channels.layers import get_channel_layer
from django.db import transaction

logger = logging.getLogger(__name__)

_BATCH_ATTR = "_oms_position_change_batch"


def account_group(account_id: int) -> str:
    return f"positions.account.{account_id}"


class _Batch:
    """The accounts one transaction changed, published once when it commits."""

    def __init__(self, connection) -> None:
        self.connection = connection
        self.account_ids: set[int] = set()

    def __call__(self) -> None:
        if getattr(self.connection, _BATCH_ATTR, None) is self:
            setattr(self.connection, _BATCH_ATTR, None)
        publish_position_changes(sorted(self.account_ids))


def position_changed_on_commit(account_id: int) -> None:
    connection = transaction.get_connection()
    if not connection.in_atomic_block:
        publish_position_changes([account_id])
        return
    batch = getattr(connection, _BATCH_ATTR, None)
    # A rolled-back savepoint drops its on-commit callbacks: start a new batch then.
    if batch is None or not any(entry[1] is batch for entry in connection.run_on_commit):
        batch = _Batch(connection)
        setattr(connection, _BATCH_ATTR, batch)
        transaction.on_commit(batch)
    batch.account_ids.add(account_id)


def publish_position_changes(account_ids: list[int]) -> None:
    """Hand the messages to this process's publisher thread and return at once: the caller
    (often the FIX callback thread) never waits on Redis, and it works from threads that run
    an event loop of their own. Failures are logged: the fill is committed either way."""
    if not account_ids:
        return
    _publisher().submit(list(account_ids))


class _Publisher:
    """One thread per process with its own event loop, so the channel layer's Redis
    connections are reused across messages instead of opened per fill."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.ready = threading.Event()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread = threading.Thread(target=self._run, name="positions-publisher", daemon=True)
        self.thread.start()
        self.ready.wait(timeout=5)

    def _run(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.ready.set()
        self.loop.run_forever()

    def submit(self, account_ids: list[int]) -> None:
        future = asyncio.run_coroutine_threadsafe(self._send(account_ids), self.loop)
        future.add_done_callback(_log_failure)

    async def _send(self, account_ids: list[int]) -> None:
        layer = get_channel_layer()
        if layer is None:
            return
        for account_id in account_ids:
            await layer.group_send(
                account_group(account_id), {"type": "positions.changed", "account": account_id}
            )


def _log_failure(future) -> None:
    exc = future.exception()
    if exc is not None:
        logger.error("positions: publishing a change failed", exc_info=exc)


_lock = threading.Lock()
_instance: _Publisher | None = None


def _publisher() -> _Publisher:
    global _instance
    with _lock:
        # A forked worker inherits the object but not the thread: start its own.
        if _instance is None or _instance.pid != os.getpid() or not _instance.thread.is_alive():
            _instance = _Publisher()
        return _instance
