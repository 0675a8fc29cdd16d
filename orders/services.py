"""Writing orders. Every change goes through order_transition (guarded by the lifecycle table,
row-locked, audited, pushed to the blotter after commit)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import transaction

from audit.services import audit_record
from oms.errors import Conflict

from . import broadcast
from .lifecycle import OrderStatus, check_transition
from .models import Order, OrderEvent


def orders_lock(*, order_ids: list[int]) -> list[Order]:
    """Lock orders in pk order (one fixed order everywhere, so two writers never deadlock)."""
    return list(
        Order.objects.select_for_update(of=("self",)).filter(pk__in=order_ids).order_by("pk")
    )


def order_lock(*, order_id: int) -> Order:
    return Order.objects.select_for_update(of=("self",)).get(pk=order_id)


def order_event_record(
    *,
    order: Order,
    kind: str,
    as_of: datetime,
    actor=None,
    from_status: str = "",
    to_status: str = "",
    details: dict[str, Any] | None = None,
) -> OrderEvent:
    return OrderEvent.objects.create(
        order=order,
        kind=kind,
        at=as_of,
        actor=actor if getattr(actor, "pk", None) else None,
        from_status=from_status,
        to_status=to_status,
        details=details or {},
    )


def order_transition(
    *,
    order: Order,
    to_status: str,
    as_of: datetime,
    kind: str,
    actor=None,
    details: dict[str, Any] | None = None,
    extra_fields: dict[str, Any] | None = None,
) -> Order:
    """Move a locked order to `to_status` if the lifecycle table allows it.

    The caller holds the row lock (orders_lock/order_lock) inside its transaction. Also saves
    `extra_fields`, writes the order event and the audit event, and pushes the change on commit.
    """
    current = order.status
    check_transition(current, to_status)
    before = {"status": current, **{k: getattr(order, k) for k in (extra_fields or {})}}
    order.status = to_status
    for name, value in (extra_fields or {}).items():
        setattr(order, name, value)
    order.version += 1
    order.save(update_fields=["status", "version", "updated_at", *(extra_fields or {})])
    order_event_record(
        order=order,
        kind=kind,
        as_of=as_of,
        actor=actor,
        from_status=current,
        to_status=to_status,
        details=details,
    )
    audit_record(
        actor=actor,
        action=f"order.{kind}",
        obj=order,
        occurred_at=as_of,
        before=before,
        after={"status": to_status, **(extra_fields or {}), **(details or {})},
    )
    broadcast.order_changed_on_commit(order.pk)
    return order


def order_fill_apply(
    *,
    order: Order,
    quantity: Decimal,
    price: Decimal,
    as_of: datetime,
    exec_ref: str,
    actor=None,
    kind: str = "fill",
) -> Order:
    """Book `quantity` at `price` on a locked order (negative quantity reverses an earlier fill
    at that price, for busts and corrections). Keeps cum, leaves and average price exact and
    moves the status: filled when nothing is left, partially filled otherwise."""
    if quantity == 0:
        raise Conflict("A fill of zero changes nothing.", code="empty_fill")
    new_cum = order.cum_qty + quantity
    if new_cum < 0:
        raise Conflict(
            f"Reversing {-quantity} would take order {order.pk} below zero filled.",
            code="negative_fill",
        )
    if new_cum > order.quantity:
        raise Conflict(
            f"Overfill: order {order.pk} would have {new_cum} filled of {order.quantity}.",
            code="overfill",
            details={"order": order.pk, "cum_qty": str(new_cum)},
        )
    old_value = (order.avg_price or Decimal(0)) * order.cum_qty
    new_value = old_value + price * quantity
    avg = (new_value / new_cum).quantize(Decimal("0.00000001")) if new_cum else None
    fields = {"cum_qty": new_cum, "leaves_qty": order.quantity - new_cum, "avg_price": avg}
    details = {"quantity": str(quantity), "price": str(price), "exec_ref": exec_ref}
    if new_cum == order.quantity:
        target = OrderStatus.FILLED
    elif order.status in (
        OrderStatus.PENDING_CANCEL,
        OrderStatus.PENDING_REPLACE,
        OrderStatus.CANCELLED,
        OrderStatus.DONE_FOR_DAY,
        OrderStatus.EXPIRED,
    ):
        target = order.status  # a fill racing a cancel: book it, keep the pending/final state
    elif new_cum == 0:
        target = OrderStatus.WORKING
    else:
        target = OrderStatus.PARTIALLY_FILLED
    if target == order.status:
        # Same status (a further partial fill, or a fill after a cancel): no transition to check.
        before = {k: str(getattr(order, k)) for k in fields}
        for name, value in fields.items():
            setattr(order, name, value)
        order.version += 1
        order.save(update_fields=["version", "updated_at", *fields])
        order_event_record(
            order=order,
            kind=kind,
            as_of=as_of,
            actor=actor,
            from_status=order.status,
            to_status=order.status,
            details=details,
        )
        audit_record(
            actor=actor,
            action=f"order.{kind}",
            obj=order,
            occurred_at=as_of,
            before=before,
            after={**fields, **details},
        )
        broadcast.order_changed_on_commit(order.pk)
        return order
    return order_transition(
        order=order,
        to_status=target,
        as_of=as_of,
        kind=kind,
        actor=actor,
        details=details,
        extra_fields=fields,
    )


@transaction.atomic
def order_set_status(
    *,
    order_id: int,
    to_status: str,
    as_of: datetime,
    kind: str,
    actor=None,
    details: dict[str, Any] | None = None,
) -> Order:
    """Lock one order and move it (for callers that have nothing else to change)."""
    order = order_lock(order_id=order_id)
    return order_transition(
        order=order, to_status=to_status, as_of=as_of, kind=kind, actor=actor, details=details
    )
