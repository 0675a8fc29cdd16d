"""Websocket feeds of live order changes: the trader's blotter and a PM's own orders.

Thin: checks who is connecting, joins the one group they may follow, and forwards the
publisher's pre-serialised messages (orders.broadcast) untouched.
"""

from __future__ import annotations

from channels.db import database_sync_to_async

from marketdata.broadcast import MARKETDATA_GROUP
from oms.access import CLOSE_FORBIDDEN, CLOSE_UNAUTHENTICATED, AccessCheckedConsumer

from .blotter_selectors import feed_for

__all__ = ["BlotterConsumer", "OrdersConsumer", "CLOSE_FORBIDDEN", "CLOSE_UNAUTHENTICATED"]


class OrdersConsumer(AccessCheckedConsumer):
    feed_scope = "mine"

    def may_follow(self, user) -> bool:
        return feed_for(user, scope=self.feed_scope) is not None

    async def connect(self) -> None:
        self.group = None
        if not await self.open_checked():
            return
        self.group = await database_sync_to_async(feed_for)(
            self.scope["user"], scope=self.feed_scope
        )
        await self.channel_layer.group_add(self.group, self.channel_name)
        # Quotes ride the same feed (marketdata.broadcast): prices name no account.
        await self.channel_layer.group_add(MARKETDATA_GROUP, self.channel_name)
        await self.send(text_data='{"type": "subscribed"}')

    async def disconnect(self, code: int) -> None:
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)
            await self.channel_layer.group_discard(MARKETDATA_GROUP, self.channel_name)
        await super().disconnect(code)

    async def receive(self, text_data=None, bytes_data=None) -> None:
        # The feed is one-way; commands go through the REST API (CSRF, permissions, errors).
        return None

    async def orders_changed(self, event: dict) -> None:
        await self.send(text_data=event["text"])

    async def marketdata_quotes(self, event: dict) -> None:
        await self.send(text_data=event["text"])


class BlotterConsumer(OrdersConsumer):
    feed_scope = "blotter"
