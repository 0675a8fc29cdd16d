"""Fills booked to orders (the booking ledger's order shares): cum, leaves, average price and
filled value kept exact and the status moved (filled, partially filled, or kept when a fill
races a cancel), set-wise for many orders (orders_fill_apply_many) or one (order_fill_apply)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.utils import timezone

from audit.services import audit_record_many
from oms.db import within_transaction
from oms.errors import Conflict, DomainError
from oms.money import average_price

from . import broadcast
from .lifecycle import OrderStatus, check_transition
from .models import Order, OrderEvent


@dataclass(frozen=True)
class OrderFill:
    """Shares booked to an order (negative: taken back) at a price. `value`, when given, is
    the exact change of the order's filled value (the booking ledger prices a share of several
    executions, or re-prices a day at its average with quantity 0); else quantity x price."""

    order: Order
    quantity: Decimal
    price: Decimal
    exec_ref: str
    value: Decimal | None = None


_FILL_KEEPS_STATUS = frozenset(
    {
        OrderStatus.PENDING_CANCEL,
        OrderStatus.PENDING_REPLACE,
        OrderStatus.CANCELLED,
        OrderStatus.DONE_FOR_DAY,
        OrderStatus.EXPIRED,
    }
)


_FILL_FIELDS = ("cum_qty", "leaves_qty", "avg_price", "filled_value")


def _fill_snapshot(order: Order) -> dict[str, Any]:
    return {
        name: getattr(order, name) for name in ("status", "version", "updated_at", *_FILL_FIELDS)
    }


def _fill_outcome(fill: OrderFill) -> tuple[str, dict[str, Any]]:
    """The status a fill moves its order to and the figures it sets, or the Conflict."""
    order, quantity, price = fill.order, fill.quantity, fill.price
    if quantity == 0 and not fill.value:
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
    new_value = order.filled_value + (price * quantity if fill.value is None else fill.value)
    avg = average_price(new_value, new_cum)
    fields = {
        "cum_qty": new_cum,
        "leaves_qty": order.quantity - new_cum,
        "avg_price": avg,
        "filled_value": new_value,
    }
    if quantity == 0:
        target = order.status  # a day re-priced at its average: the shares stay as they are
    elif new_cum == order.quantity:
        target = OrderStatus.FILLED
    elif quantity > 0 and order.status == OrderStatus.DONE_FOR_DAY:
        # A GTC order trading again on a later day is working again.
        target = OrderStatus.PARTIALLY_FILLED
    elif order.status in _FILL_KEEPS_STATUS:
        target = order.status  # a fill racing a cancel: book it, keep the pending/final state
    elif new_cum == 0:
        target = OrderStatus.WORKING
    else:
        target = OrderStatus.PARTIALLY_FILLED
    if target != order.status:
        check_transition(order.status, target)
    if target in (OrderStatus.CANCELLED, OrderStatus.EXPIRED, OrderStatus.REJECTED):
        fields["leaves_qty"] = Decimal(0)  # closed: nothing is left to work, whatever it holds
    return target, fields


@within_transaction
def orders_fill_apply_many(
    *, fills: list[OrderFill], as_of: datetime, actor=None, kind: str = "fill"
) -> list[Order]:
    """order_fill_apply for several locked orders (e.g. the slices of one execution, or of a
    run of executions, where an order may come more than once): the same order rows, order
    events and audit events as applying them one by one in this order, written with one
    UPDATE, one INSERT of events and one chain extension. Every fill is checked before
    anything is written: a Conflict or InvalidTransition leaves every order as it was.

    The events go in as values (oms.bulk_rows.rows_insert), not model instances: a wide block
    fills a thousand orders at once."""
    if not fills:
        return []
    now = timezone.now()
    actor_id = actor.pk if getattr(actor, "pk", None) else None
    events: list[tuple] = []
    audits: list[dict[str, Any]] = []
    kept = {f.order.pk: (f.order, _fill_snapshot(f.order)) for f in fills}
    try:
        for fill in fills:
            # One at a time: a later fill of the same order starts where the earlier one left it.
            target, fields = _fill_outcome(fill)
            order = fill.order
            details = {
                "quantity": str(fill.quantity),
                "price": str(fill.price),
                "exec_ref": fill.exec_ref,
            }
            if target == order.status:
                before: dict[str, Any] = {k: str(getattr(order, k)) for k in fields}
                after = {**fields, **details}
            else:
                before = {"status": order.status, **{k: getattr(order, k) for k in fields}}
                after = {"status": target, **fields, **details}
            # As _order_change: the order moves in memory, its event and audit are gathered.
            events.append((order.pk, as_of, kind, order.status, target, actor_id, details))
            order.status = target
            for name, value in fields.items():
                setattr(order, name, value)
            order.version += 1
            order.updated_at = now
            audits.append(
                {
                    "actor": actor,
                    "action": f"order.{kind}",
                    "obj": order,
                    "occurred_at": as_of,
                    "before": before,
                    "after": after,
                }
            )
    except DomainError:
        for order, snapshot in kept.values():
            for name, value in snapshot.items():
                setattr(order, name, value)
        raise
    from oms.bulk_rows import rows_insert, rows_update  # here, so this block stays together

    orders = [order for order, _ in kept.values()]
    names = ["status", "version", "updated_at", *_FILL_FIELDS]
    rows_update(orders, names)
    rows_insert(OrderEvent, _EVENT_FIELDS, events)
    audit_record_many(audits)
    for order in orders:
        broadcast.order_changed_on_commit(order.pk)
    return orders


_EVENT_FIELDS = ("order_id", "at", "kind", "from_status", "to_status", "actor_id", "details")


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
    orders_fill_apply_many(
        fills=[OrderFill(order=order, quantity=quantity, price=price, exec_ref=exec_ref)],
        as_of=as_of,
        actor=actor,
        kind=kind,
    )
    return order
