"""A PM's amend and cancel of one order, the order's side of them: the order locked for its
PM, an amendment checked, applied at once before routing or recorded as a request to the
broker, a cancel done at once before routing or recorded as a request (orders.entry runs
them and asks the broker through the outbox)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError

from oms.db import within_transaction
from oms.errors import Conflict, DomainError, NotPermitted
from oms.errors import NotFound as DomainNotFound
from oms.selectors import accounts_visible_to

from . import broadcast
from .capture import (
    MAX_ORDER_QUANTITY,
    NEEDS_LIMIT,
    account_manageable_by,
    decimal_text,
    estimated_notional,
    jsonable,
    on_tick,
    order_input_validate,
)
from .lifecycle import OrderStatus, check_transition
from .models import Block, Order, TimeInForce
from .transitions import order_history_record, order_transition

AMENDABLE_FIELDS = ("quantity", "limit_price", "stop_price", "time_in_force", "expire_date")


# At the broker a replace carries only these (FIX OrderCancelReplaceRequest as we send it).
AMENDABLE_AT_BROKER = ("quantity", "limit_price", "time_in_force")


def order_for_actor(*, order_id: int, actor) -> Order:
    """For a PM's amend or cancel: lock the order (its block first, the order FIX and
    allocation lock in too); someone who may not see it gets a 404, one who may see but not
    trade its account a 403."""
    plain = Order.objects.select_related("account").filter(pk=order_id).first()
    if plain is None or not accounts_visible_to(actor).filter(pk=plain.account_id).exists():
        raise DomainNotFound(f"Order {order_id} not found.")
    if not account_manageable_by(user=actor, account=plain.account):
        raise NotPermitted(f"You may not change orders of account {plain.account.code}.")
    if plain.block_id is not None:
        Block.objects.select_for_update().filter(pk=plain.block_id).first()
    order = (
        Order.objects.select_for_update(of=("self",))
        .select_related("account", "security")
        .get(pk=order_id)
    )
    if order.block_id != plain.block_id:
        raise Conflict(f"Order {order_id} changed blocks meanwhile; try again.", code="order_moved")
    return order


def order_amend_prepare(
    *, order_id: int, actor, changes: Mapping[str, Any]
) -> tuple[Order, dict[str, Any]]:
    """The order locked for an amend by `actor`, and what the amendment changes (a field that
    cannot be amended is a 400, a change of nothing a DomainError)."""
    unknown = set(changes) - set(AMENDABLE_FIELDS)
    if unknown:
        raise ValidationError({name: ["This field cannot be amended."] for name in sorted(unknown)})
    order = order_for_actor(order_id=order_id, actor=actor)
    current = {name: getattr(order, name) for name in AMENDABLE_FIELDS}
    diff = {k: v for k, v in changes.items() if current[k] != v}
    if not diff:
        raise DomainError("The amendment changes nothing.", code="nothing_to_amend")
    return order, diff


@within_transaction
def order_amend_before_routing(*, order: Order, actor, as_of: datetime, diff) -> None:
    """Apply an amendment of an order not routed yet at once; it goes back to
    PENDING_COMPLIANCE (the caller checks it again)."""
    if order.block_id is not None:
        raise Conflict(
            f"Order {order.pk} is in block {order.block_id}; the desk must take it out first.",
            code="order_in_block",
        )
    merged = {
        "account": order.account.code,
        "symbol": order.security.symbol,
        "side": order.side,
        "order_type": order.order_type,
        "instructions": order.instructions,
        **{name: getattr(order, name) for name in AMENDABLE_FIELDS},
        **diff,
    }
    item = order_input_validate(pm=actor, data=merged, as_of=as_of)
    fields = {name: getattr(item, name) for name in diff}
    fields["leaves_qty"] = item.quantity - order.cum_qty
    fields["estimated_notional"] = estimated_notional(item, as_of)
    details = {"changes": jsonable(diff)}
    if order.status == OrderStatus.PENDING_COMPLIANCE:
        before = jsonable({name: getattr(order, name) for name in fields})
        for name, value in fields.items():
            setattr(order, name, value)
        order.version += 1
        order.save(update_fields=["version", "updated_at", *fields])
        order_history_record(
            order=order,
            kind="amend",
            as_of=as_of,
            actor=actor,
            from_status=order.status,
            to_status=order.status,
            details=details,
            before=before,
            after=jsonable(fields),
        )
        broadcast.order_changed_on_commit(order.pk)
    else:
        order_transition(
            order=order,
            to_status=OrderStatus.PENDING_COMPLIANCE,
            as_of=as_of,
            kind="amend",
            actor=actor,
            details=details,
            extra_fields={**fields, "compliance_status": ""},
        )


@within_transaction
def order_amend_request(*, order: Order, actor, as_of: datetime, diff) -> None:
    """Validate an amendment of an order at the broker and record the request; the caller
    asks the broker (the new terms apply when it confirms)."""
    refused = sorted(set(diff) - set(AMENDABLE_AT_BROKER))
    if refused:
        raise ValidationError(
            {name: ["Cannot be changed once the order is at the broker."] for name in refused}
        )
    check_transition(order.status, OrderStatus.PENDING_REPLACE)
    errors: dict[str, list[str]] = {}
    quantity = diff.get("quantity")
    if quantity is not None:
        if quantity <= order.cum_qty:
            errors["quantity"] = [f"Quantity must stay above the {order.cum_qty} already filled."]
        elif quantity > MAX_ORDER_QUANTITY or quantity % order.security.lot_size != 0:
            errors["quantity"] = [
                f"Quantity must be a multiple of the lot size "
                f"{decimal_text(order.security.lot_size)} and at most {MAX_ORDER_QUANTITY:,}."
            ]
    if "limit_price" in diff:
        limit_price = diff["limit_price"]
        if order.order_type not in NEEDS_LIMIT:
            errors["limit_price"] = [f"A {order.order_type} order takes no limit price."]
        elif limit_price is None or limit_price <= 0:
            errors["limit_price"] = ["The limit price must be greater than zero."]
        elif not on_tick(limit_price, order.security.tick_size):
            errors["limit_price"] = [
                f"The limit price {decimal_text(limit_price)} is not on the tick size "
                f"{decimal_text(order.security.tick_size)}."
            ]
    if diff.get("time_in_force") == TimeInForce.GTD:
        errors["time_in_force"] = ["An order at the broker cannot become GTD."]
    if errors:
        raise ValidationError(errors)
    order_history_record(
        order=order,
        kind="amend_request",
        as_of=as_of,
        actor=actor,
        from_status=order.status,
        to_status=order.status,
        details={"requested": jsonable(diff)},
        before=jsonable({name: getattr(order, name) for name in diff}),
        after=jsonable(diff),
    )


@within_transaction
def order_cancel_before_routing(*, order: Order, actor, as_of: datetime, reason: str = "") -> Order:
    """Cancel an order that was not routed (and is in no block) at once."""
    if order.block_id is not None:
        raise Conflict(
            f"Order {order.pk} is in block {order.block_id}; the desk must take it out first.",
            code="order_in_block",
        )
    return order_transition(
        order=order,
        to_status=OrderStatus.CANCELLED,
        as_of=as_of,
        kind="cancel",
        actor=actor,
        details={"reason": reason} if reason else None,
        extra_fields={"leaves_qty": Decimal(0)},
    )


@within_transaction
def order_cancel_request(*, order: Order, actor, as_of: datetime, reason: str = "") -> None:
    """Record a PM's request to cancel an order at the broker; the caller asks the broker
    (the order moves to PENDING_CANCEL with the outbox row)."""
    check_transition(order.status, OrderStatus.PENDING_CANCEL)
    details = {"reason": reason} if reason else None
    order_history_record(
        order=order,
        kind="cancel_request",
        as_of=as_of,
        actor=actor,
        from_status=order.status,
        to_status=order.status,
        details=details,
        before={"status": order.status},
        after=details,
    )
