"""Websocket feed of position changes: a client follows the accounts it may see (or the one
it asks for) and is told which account changed; the page then refetches it through the API."""

from __future__ import annotations

import json
from urllib.parse import parse_qs

from channels.db import database_sync_to_async

from marketdata.broadcast import MARKETDATA_GROUP
from oms import fanout
from oms.access import CLOSE_FORBIDDEN, CLOSE_UNAUTHENTICATED, AccessCheckedConsumer
from oms.selectors import accounts_visible_to

from .broadcast import account_group

__all__ = ["PositionsConsumer", "CLOSE_FORBIDDEN", "CLOSE_UNAUTHENTICATED"]


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


class PositionsConsumer(AccessCheckedConsumer):
    def _requested(self) -> list[str]:
        query = parse_qs(self.scope.get("query_string", b"").decode())
        return [v for item in query.get("account", []) for v in item.split(",") if v]

    def may_follow(self, user) -> bool:
        # Once connected, the accounts it joined; before, the ones it asks for.
        joined = getattr(self, "account_ids", None)
        requested = [str(i) for i in joined] if joined else self._requested()
        return _followed_accounts(user, requested) is not None

    async def connect(self) -> None:
        self.groups_joined: list[str] = []
        self.account_ids: list[int] = []
        if not await self.open_checked():
            return
        account_ids = await database_sync_to_async(_followed_accounts)(
            self.scope["user"], self._requested()
        )
        for account_id in account_ids or []:
            group = account_group(account_id)
            await self.channel_layer.group_add(group, self.channel_name)
            self.groups_joined.append(group)
        self.account_ids = list(account_ids or [])
        # Quotes ride the same feed (marketdata.broadcast, through oms.fanout): prices name no
        # account.
        await fanout.subscribe(MARKETDATA_GROUP, self.quotes)
        self.follows_quotes = True
        await self.send(text_data=json.dumps({"type": "subscribed", "accounts": self.account_ids}))

    async def disconnect(self, code: int) -> None:
        for group in self.groups_joined:
            await self.channel_layer.group_discard(group, self.channel_name)
        if getattr(self, "follows_quotes", False):
            await fanout.unsubscribe(MARKETDATA_GROUP, self.quotes)
        await super().disconnect(code)

    async def receive(self, text_data=None, bytes_data=None) -> None:
        return None  # one-way feed

    async def quotes(self, seq: int, text: str) -> None:
        """One push of quotes (marketdata.broadcast, through oms.fanout)."""
        await self.send(text_data=text)

    async def positions_changed(self, event: dict) -> None:
        await self.send(text_data=json.dumps({"type": "changed", "account": event["account"]}))
