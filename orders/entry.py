"""Order entry, the PM's use cases: submit an order (capture, pre-trade compliance, staging),
amend it and cancel it (at once before routing; at the broker through the FIX outbox).

A workflow: it spans orders (the order's own rules and lifecycle, orders.services), compliance
(compliance.services) and the FIX gateway's outbox (fixgateway.outbound). Each public function
is one transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from django.db import IntegrityError

from allocation.services import allocation_plan_fix, block_book_due
from compliance.services import compliance_check_orders
from fixgateway import outbound
from oms.db import in_transaction, retry_on_conflict

from .lifecycle import BEFORE_ROUTING
from .models import Order, TimeInForce
from .services import (
    order_amend_before_routing,
    order_amend_prepare,
    order_amend_request,
    order_cancel_before_routing,
    order_cancel_request,
    order_data_fingerprint,
    order_for_actor,
    order_input_validate,
    order_insert,
    order_replay,
    orders_stage,
)


def orders_check_and_stage(*, order_ids: list[int], actor, as_of: datetime) -> dict[int, str]:
    """Run pre-trade compliance on new or amended orders, then stage the ones that passed so
    they appear on the trading desk. Returns the compliance verdict per order."""
    verdicts = compliance_check_orders(order_ids=order_ids, actor=actor, as_of=as_of)
    passed = [order_id for order_id, verdict in verdicts.items() if verdict == "PASS"]
    if passed:
        orders_stage(order_ids=passed, actor=actor, as_of=as_of)
    return verdicts


def order_create(
    *,
    pm,
    account: str,
    symbol: str,
    side: str,
    quantity: Decimal,
    order_type: str,
    as_of: datetime,
    limit_price: Decimal | None = None,
    stop_price: Decimal | None = None,
    time_in_force: str = TimeInForce.DAY,
    expire_date: date | None = None,
    instructions: str = "",
    idempotency_key: str | None = None,
) -> tuple[Order, bool]:
    """Validate and create one order, check it and stage it if it passes, all in one
    transaction. With an idempotency key, a retry of the same request returns the original
    order (created=False); the same key with a different request is a Conflict."""
    data = {
        "account": account,
        "symbol": symbol,
        "side": side,
        "quantity": quantity,
        "order_type": order_type,
        "limit_price": limit_price,
        "stop_price": stop_price,
        "time_in_force": time_in_force,
        "expire_date": expire_date,
        "instructions": instructions,
    }
    fingerprint = order_data_fingerprint(data=data) if idempotency_key else ""
    if idempotency_key:
        replay = order_replay(pm=pm, key=idempotency_key, fingerprint=fingerprint)
        if replay is not None:
            return replay, False
    item = order_input_validate(pm=pm, data=data, as_of=as_of)

    def insert_and_check() -> Order:
        order = order_insert(
            pm=pm,
            item=item,
            as_of=as_of,
            idempotency_key=idempotency_key,
            idempotency_fingerprint=fingerprint,
        )
        orders_check_and_stage(order_ids=[order.pk], actor=pm, as_of=as_of)
        return order

    try:
        order = in_transaction(insert_and_check, durable=True)
    except IntegrityError as exc:
        # Two retries raced: the other one inserted first and its order is the answer.
        if idempotency_key and "order_idempotency_key_unique" in str(exc):
            replay = order_replay(pm=pm, key=idempotency_key, fingerprint=fingerprint)
            if replay is not None:
                return replay, False
        raise
    order.refresh_from_db()
    return order, True


@retry_on_conflict(durable=True)
def order_amend(*, order_id: int, actor, as_of: datetime, changes: Mapping[str, Any]) -> Order:
    """Change quantity, prices or time in force. Before routing the change applies at once and
    the order goes back through compliance; at the broker it becomes a cancel/replace request
    (PENDING_REPLACE) that the FIX gateway sends."""
    order, diff = order_amend_prepare(order_id=order_id, actor=actor, changes=changes)
    if order.status in BEFORE_ROUTING:
        order_amend_before_routing(order=order, actor=actor, as_of=as_of, diff=diff)
        orders_check_and_stage(order_ids=[order.pk], actor=actor, as_of=as_of)
    else:
        order_amend_request(order=order, actor=actor, as_of=as_of, diff=diff)
        # The gateway writes the outbox row and moves the order to PENDING_REPLACE; the new
        # terms apply when the broker confirms. Unchanged terms go as None (the gateway's
        # "keep").
        _routed_order_replace(
            order=order,
            actor=actor,
            as_of=as_of,
            quantity=diff.get("quantity"),
            limit_price=diff.get("limit_price"),
            time_in_force=diff.get("time_in_force"),
        )
    order.refresh_from_db()
    return order


@retry_on_conflict(durable=True)
def order_cancel(*, order_id: int, actor, as_of: datetime, reason: str = "") -> Order:
    """Cancel at once before routing; at the broker, ask the FIX gateway to cancel (it moves
    the order to PENDING_CANCEL and sends the request)."""
    order = order_for_actor(order_id=order_id, actor=actor)
    if order.status in BEFORE_ROUTING:
        return order_cancel_before_routing(order=order, actor=actor, as_of=as_of, reason=reason)
    order_cancel_request(order=order, actor=actor, as_of=as_of, reason=reason)
    _routed_order_cancel(order=order, actor=actor, as_of=as_of)
    order.refresh_from_db()
    return order


def _routed_order_cancel(*, order: Order, actor, as_of: datetime) -> None:
    block = outbound.routed_block_lock(order=order)
    # The order's leaves decide the block's reduction: what the block executed must be its
    # orders' first (a wide block's executions may wait for the booker).
    block_book_due(block=block, as_of=as_of)
    if outbound.order_cancel_enqueue(order=order, block=block, actor=actor, as_of=as_of):
        allocation_plan_fix(block=block, actor=actor, as_of=as_of)


def _routed_order_replace(
    *,
    order: Order,
    actor,
    as_of: datetime,
    quantity: Decimal | None,
    limit_price: Decimal | None,
    time_in_force: str | None,
) -> None:
    block = outbound.routed_block_lock(order=order)
    # As for a cancel: the block's executions are its orders' before their leaves change.
    block_book_due(block=block, as_of=as_of)
    outbound.order_replace_enqueue(
        order=order,
        block=block,
        actor=actor,
        as_of=as_of,
        quantity=quantity,
        limit_price=limit_price,
        time_in_force=time_in_force,
    )
