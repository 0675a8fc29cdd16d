"""Websocket feed of position changes: a client follows the accounts it may see (or the one
it asks for) and is told which account changed; the page then refetches it through the API."""

from __future__ import annotations

import json
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from oms.selectors import accounts_visible_to

from .broadcast import account_group

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403


def _followed_accounts(user, requested: list[str]) -> list[int] | None:
    visible = set(accounts_visible_to(user).values_list("pk", flat=True))
    if not requested:
        return sorted(visible)
    try:
        wanted = {int(v) for v in requested}
    except ValueError:
        return None
    # Asking for an account one may not see is refused outright, not silently narrowed.
    return sorted(wanted) if wanted <= visible else None


class PositionsConsumer(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        user = self.scope.get("user")
        self.groups_joined: list[str] = []
        # Accept first so the page receives the close code (a refused handshake carries none).
        await self.accept()
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        query = parse_qs(self.scope.get("query_string", b"").decode())
        requested = [v for item in query.get("account", []) for v in item.split(",") if v]
        account_ids = await database_sync_to_async(_followed_accounts)(user, requested)
        if account_ids is None:
            await self.close(code=CLOSE_FORBIDDEN)
            return
        for account_id in account_ids:
            group = account_group(account_id)
            await self.channel_layer.group_add(group, self.channel_name)
            self.groups_joined.append(group)
        await self.send(text_data=json.dumps({"type": "subscribed", "accounts": account_ids}))

    async def disconnect(self, code: int) -> None:
        for group in self.groups_joined:
            await self.channel_layer.group_discard(group, self.channel_name)

    async def receive(self, text_data=None, bytes_data=None) -> None:
        return None  # one-way feed

    async def positions_changed(self, event: dict) -> None:
        await self.send(text_data=json.dumps({"type": "changed", "account": event["account"]}))
