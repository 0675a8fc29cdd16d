"""Websocket feeds of live order changes: the trader's blotter and a PM's own orders.

Thin: checks who is connecting, joins the one group they may follow, and forwards the
publisher's pre-serialised messages (orders.broadcast) untouched.
"""

from __future__ import annotations

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from .blotter_selectors import feed_for

# Custom close codes, mirroring HTTP: the page stops reconnecting on these.
CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403


class OrdersConsumer(AsyncWebsocketConsumer):
    feed_scope = "mine"

    async def connect(self) -> None:
        user = self.scope.get("user")
        self.group = None
        # Accept first so the page receives the close code (a refused handshake carries none).
        await self.accept()
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        group = await database_sync_to_async(feed_for)(user, scope=self.feed_scope)
        if group is None:
            await self.close(code=CLOSE_FORBIDDEN)
            return
        self.group = group
        await self.channel_layer.group_add(group, self.channel_name)
        await self.send(text_data='{"type": "subscribed"}')

    async def disconnect(self, code: int) -> None:
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(self, text_data=None, bytes_data=None) -> None:
        # The feed is one-way; commands go through the REST API (CSRF, permissions, errors).
        return None

    async def orders_changed(self, event: dict) -> None:
        await self.send(text_data=event["text"])


class BlotterConsumer(OrdersConsumer):
    feed_scope = "blotter"
