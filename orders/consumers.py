"""Websocket feeds of live order changes: the trader's blotter and a PM's own orders.

Thin: checks who is connecting, follows the one group they may follow (through the process's
one subscription, oms.fanout), and forwards the publisher's pre-serialised messages
(orders.broadcast) untouched. A page that reconnects names
the last message it applied (`?since=<seq>&epoch=<epoch>`, or later a `{"type": "resume", ...}`
message on the open socket when it sees a gap): the consumer replays what it missed from the
group's recent history (orders.feed_history), or sends `{"type": "resync"}` when the history no
longer covers the gap and the page must take a snapshot.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from django.conf import settings

from marketdata.broadcast import MARKETDATA_GROUP
from oms import fanout
from oms.access import CLOSE_FORBIDDEN, CLOSE_UNAUTHENTICATED, AccessCheckedConsumer

from . import feed_history
from .blotter_selectors import feed_accounts, feed_for

__all__ = ["BlotterConsumer", "OrdersConsumer", "CLOSE_FORBIDDEN", "CLOSE_UNAUTHENTICATED"]

logger = logging.getLogger(__name__)

RESUME_INTERVAL = 1.0  # seconds between two replays asked on one open socket

# One Redis client per event loop (Daphne runs one): a reconnect storm must not open a
# connection per websocket.
_clients: dict[int, object] = {}


def _redis():
    import redis.asyncio as aredis

    loop = id(asyncio.get_running_loop())
    client = _clients.get(loop)
    if client is None:
        client = _clients[loop] = aredis.Redis.from_url(settings.REDIS_URL)
    return client


def _resume_point(raw) -> tuple[int, str] | None:
    """(since, epoch) from what the page sent, or None when it did not ask to resume."""
    since = raw.get("since")
    if isinstance(since, list):
        since = since[0] if since else None
    epoch = raw.get("epoch", "")
    if isinstance(epoch, list):
        epoch = epoch[0] if epoch else ""
    try:
        since = int(since)
    except (TypeError, ValueError):
        return None
    if since < 0 or not isinstance(epoch, str):
        return None
    return since, epoch[:64]


class OrdersConsumer(AccessCheckedConsumer):
    feed_scope = "mine"

    def may_follow(self, user) -> bool:
        return feed_for(user, scope=self.feed_scope) is not None

    async def connect(self) -> None:
        self.group = None
        # Messages up to this number were sent by a replay; the same ones arriving live are
        # dropped, so the page sees each once and in order.
        self.replayed_to = 0
        self.last_resume = -RESUME_INTERVAL
        # Until the page has its "subscribed" (and its replay), live messages wait here.
        self.holding = True
        self.held: deque[tuple[int, str]] = deque()
        if not await self.open_checked():
            return
        group = await database_sync_to_async(feed_for)(self.scope["user"], scope=self.feed_scope)
        try:
            # Follow before reading the history: whatever is numbered after the read arrives
            # live. The group's messages come through this process's one subscription
            # (oms.fanout), not a copy per page through the channel layer.
            await fanout.subscribe(group, self.order_changes)
            self.group = group
            # Quotes ride the same feed (marketdata.broadcast): prices name no account.
            await fanout.subscribe(MARKETDATA_GROUP, self.quotes)
            point = _resume_point(parse_qs(self.scope.get("query_string", b"").decode("latin1")))
            if point is None:
                await self.send(text_data='{"type": "subscribed"}')
            else:
                await self._replay(*point, subscribed=True)
        finally:
            await self._release()

    async def resume(self, since: int, epoch: str) -> None:
        self.holding = True
        try:
            await self._replay(since, epoch, subscribed=False)
        finally:
            await self._release()

    async def _release(self) -> None:
        """Send what arrived live while holding, in order, less what a replay already sent."""
        while self.held:
            seq, text = self.held.popleft()
            if not seq or seq > self.replayed_to:
                await self.send(text_data=text)
        self.holding = False

    async def _replay(self, since: int, epoch: str, *, subscribed: bool) -> None:
        try:
            found = await feed_history.resume_read(
                _redis(), group=self.group, since=since, epoch=epoch
            )
        except Exception:
            # Redis unreachable: the page cannot resume, and a snapshot is always right.
            logger.exception("reading the feed history of %s failed", self.group)
            found = feed_history.Resume(seq=0, epoch="", reason="unavailable")
        if subscribed:
            replay = len(found.messages) if found.ok else 0
            await self.send(text_data=json.dumps({"type": "subscribed", "resumed": replay}))
        if not found.ok:
            await self.send(
                text_data=json.dumps({"type": "resync", "reason": found.reason, "seq": found.seq})
            )
            return
        messages = found.messages
        accounts = await database_sync_to_async(feed_accounts)(
            self.scope["user"], scope=self.feed_scope
        )
        if accounts is not None and messages:
            messages = feed_history.rows_only(messages, account_ids=accounts)
        for text in messages:
            await self.send(text_data=text)
        self.replayed_to = max(self.replayed_to, found.seq)

    async def refuse(self, code: int, reason: str) -> None:
        # Access ended: not one more order message, even before the socket's close completes.
        if self.group:
            await fanout.unsubscribe(self.group, self.order_changes)
            await fanout.unsubscribe(MARKETDATA_GROUP, self.quotes)
        await super().refuse(code, reason)

    async def disconnect(self, code: int) -> None:
        if self.group:
            await fanout.unsubscribe(self.group, self.order_changes)
            await fanout.unsubscribe(MARKETDATA_GROUP, self.quotes)
        await super().disconnect(code)

    async def receive(self, text_data=None, bytes_data=None) -> None:
        # The feed is one-way; commands go through the REST API (CSRF, permissions, errors).
        # The one request it takes is a replay of what the page missed.
        if not self.group or not text_data:
            return
        try:
            message = json.loads(text_data)
        except ValueError:
            return
        if not isinstance(message, dict) or message.get("type") != "resume":
            return
        point = _resume_point(message)
        # A page asks once per gap; a client asking in a loop would make Redis read up to the
        # whole history each time, so one replay per RESUME_INTERVAL at most.
        now = time.monotonic()
        if point is None or now - self.last_resume < RESUME_INTERVAL:
            return
        self.last_resume = now
        await self.resume(*point)

    async def order_changes(self, seq: int, text: str) -> None:
        """One live message of the group, already encoded (called by oms.fanout)."""
        if self.holding:
            self.held.append((seq, text))
            return
        if seq and seq <= self.replayed_to:
            return
        await self.send(text_data=text)

    async def quotes(self, seq: int, text: str) -> None:
        """One push of quotes (marketdata.broadcast, through oms.fanout)."""
        await self.send(text_data=text)


class BlotterConsumer(OrdersConsumer):
    feed_scope = "blotter"
