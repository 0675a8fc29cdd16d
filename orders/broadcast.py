"""Live order updates for the blotter and My orders pages.

Services call order_changed_on_commit(order_id); after the transaction commits the changed
orders are published to the websocket groups. The publishing itself belongs to the blotter
(issue 6): until it lands, changes are only collected per transaction and dropped.
"""

from __future__ import annotations

from django.db import transaction

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
    """Push the current state of these orders to every client allowed to see them."""
    # Implemented by the blotter (issue 6).
    return None
