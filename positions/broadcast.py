"""Live position updates: services mark an account changed; after commit, one message per
account goes to its Channels group, and the positions page refetches what it shows."""

from __future__ import annotations

import logging

from asgiref.sync import async_to_sync
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
    layer = get_channel_layer()
    if layer is None or not account_ids:
        return
    send = async_to_sync(layer.group_send)
    for account_id in account_ids:
        try:
            send(account_group(account_id), {"type": "positions.changed", "account": account_id})
        except Exception:
            # The fill is committed; a lost push only delays the page until its next refresh.
            logger.exception("positions: publishing account %s failed", account_id)
