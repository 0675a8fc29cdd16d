"""Pushing live updates after commit, from any thread, without waiting on Redis.

Services mark what they changed with `changed_on_commit`; when the transaction commits, the
collected items go to the feed's flush function once. Flush functions hand their sending to
`submit`: one daemon thread per process runs an event loop of its own and sends strictly in
submission order (so per-group sequence numbers leave a process in order). The committing
caller may be a QuickFIX callback thread, or sync code with an event loop already running in
its thread (Daphne's, Playwright's), where async_to_sync is refused; it never waits here, and a
failed send is logged, never raised: the commit already happened, and pages recover from
missed messages.

A feed that many pages follow sends at most one batch per few milliseconds (`Coalescer`): one
message per group per window instead of one per commit.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from django.db import transaction

logger = logging.getLogger(__name__)


class _Batch:
    """What one transaction changed for one feed, flushed once when it commits."""

    def __init__(self, connection, attr: str, flush: Callable[[list], None]) -> None:
        self.connection, self.attr, self.flush = connection, attr, flush
        self.items: set = set()

    def __call__(self) -> None:
        if getattr(self.connection, self.attr, None) is self:
            setattr(self.connection, self.attr, None)
        self.flush(sorted(self.items))


def changed_on_commit(feed: str, item: Any, flush: Callable[[list], None]) -> None:
    """Collect `item` for `feed`; after commit call flush(sorted items) once per transaction
    (at once when no transaction is open)."""
    connection = transaction.get_connection()
    if not connection.in_atomic_block:
        flush([item])
        return
    attr = f"_oms_publish_batch_{feed}"
    batch = getattr(connection, attr, None)
    # A rolled-back savepoint drops its on-commit callbacks: start a new batch then.
    if batch is None or not any(entry[1] is batch for entry in connection.run_on_commit):
        batch = _Batch(connection, attr, flush)
        setattr(connection, attr, batch)
        transaction.on_commit(batch)
    batch.items.add(item)


class _Sender:
    """One thread with its own event loop, sending submitted work one item at a time."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.ready = threading.Event()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.queue: asyncio.Queue | None = None
        self.thread = threading.Thread(target=self._run, name="oms-publisher", daemon=True)
        self.thread.start()
        self.ready.wait(timeout=10)

    def _run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.queue = asyncio.Queue()
        self.ready.set()
        while True:
            make, what = await self.queue.get()
            try:
                await make()
            except Exception:
                logger.exception("publishing %s failed", what)

    def submit(self, make: Callable[[], Awaitable[None]], what: str) -> None:
        self.loop.call_soon_threadsafe(self.queue.put_nowait, (make, what))


_sender: _Sender | None = None
_sender_lock = threading.Lock()


def _publisher() -> _Sender:
    global _sender
    with _sender_lock:
        # A forked worker inherits the object but not the thread: start its own.
        if _sender is None or _sender.pid != os.getpid() or not _sender.thread.is_alive():
            _sender = _Sender()
        return _sender


def submit(make: Callable[[], Awaitable[None]], *, what: str) -> None:
    """Run the coroutine `make()` on this process's publisher thread, after everything
    submitted before it."""
    _publisher().submit(make, what)


class Coalescer:
    """At most one send per `window()` seconds: `send(items)` runs on the publisher thread
    with everything added since the last send, in the order added. What is added when nothing
    was sent for a window goes at once (a quiet feed adds no delay); what follows within the
    window waits for its end and goes together. A feed that fans out to many pages sends tens
    of messages a second this way, however many commits there are. `max_items` waiting go at
    once; a window of 0 sends each add at once.
    """

    def __init__(
        self,
        send: Callable[[list], Awaitable[None]],
        *,
        window: Callable[[], float],
        max_items: int,
        what: str,
    ) -> None:
        self.send, self.window, self.max_items, self.what = send, window, max_items, what
        self.lock = threading.Lock()
        self.pending: list = []
        self.sent_at = -1e9  # when the last batch was handed to the publisher
        self.due = 0.0  # when the timer set on the publisher's loop fires (0: none set)
        self.pid = os.getpid()

    def add(self, items: list) -> None:
        window = self.window()
        with self.lock:
            if self.pid != os.getpid():
                # A forked child inherits the parent's pending items and timer, not its
                # thread: they are the parent's to send.
                self.pid, self.pending, self.due, self.sent_at = os.getpid(), [], 0.0, -1e9
            self.pending.extend(items)
            now = time.monotonic()
            if self.due and now < self.due + 1.0:
                # The timer set sends these too (a timer lost with its thread does not hold
                # them for longer than a second).
                if len(self.pending) < self.max_items:
                    return
                batch, self.pending = self.pending, []
            elif window <= 0 or now - self.sent_at >= window or len(self.pending) >= self.max_items:
                batch, self.pending = self.pending, []
            else:
                self.due = self.sent_at + window
                delay = self.due - now
                batch = None
            if batch is not None:
                self.sent_at = now
        if batch is not None:
            submit(lambda: self.send(batch), what=self.what)
            return
        sender = _publisher()
        sender.loop.call_soon_threadsafe(sender.loop.call_later, delay, self._due, sender)

    def _due(self, sender: _Sender) -> None:
        # On the publisher's loop: queue the send behind whatever was submitted before.
        with self.lock:
            batch, self.pending, self.due = self.pending, [], 0.0
            if batch:
                self.sent_at = time.monotonic()
        if batch:
            sender.queue.put_nowait((lambda: self.send(batch), self.what))
