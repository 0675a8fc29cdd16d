"""Live position updates: services mark an account changed; after commit, one message per
account goes to its Channels group, and the positions page refetches what it shows."""

from __future__ import annotations

import logging

from channels.layers import get_channel_layer

from oms.publish import changed_on_commit, submit

logger = logging.getLogger(__name__)


def account_group(account_id: int) -> str:
    return f"positions.account.{account_id}"


def position_changed_on_commit(account_id: int) -> None:
    changed_on_commit("positions", account_id, publish_position_changes)


def publish_position_changes(account_ids: list[int]) -> None:
    """Hand the messages to this process's publisher thread and return at once: the caller
    (often the FIX callback thread) never waits on Redis, and it works from threads that run
    an event loop of their own. Failures are logged: the fill is committed either way."""
    if not account_ids:
        return
    submit(lambda: _send(list(account_ids)), what="position changes")


async def _send(account_ids: list[int]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    for account_id in account_ids:
        await layer.group_send(
            account_group(account_id), {"type": "positions.changed", "account": account_id}
        )
