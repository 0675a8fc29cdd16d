"""An order's lifecycle written: orders locked in pk order, moved by the lifecycle table
(order_transition for one, orders_transition_bulk set-wise for many), each move with its order
event and audit row and pushed to the blotter after commit."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from django.db.models import F
from django.utils import timezone

from audit.services import audit_record, audit_record_many, bulk_insert
from oms.bulk_rows import any_of
from oms.db import retry_on_conflict, within_transaction
from oms.errors import DomainError

from . import broadcast
from .lifecycle import check_transition
from .models import Order, OrderEvent


def orders_lock(*, order_ids: list[int]) -> list[Order]:
    """Lock orders in pk order (one fixed order everywhere, so two writers never deadlock)."""
    return list(
        Order.objects.select_for_update(of=("self",))
        .filter(any_of(Order, "id", order_ids))  # one array parameter, however many orders
        .order_by("pk")
    )


def order_lock(*, order_id: int) -> Order:
    return Order.objects.select_for_update(of=("self",)).get(pk=order_id)


@within_transaction
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


def order_history_record(
    *,
    order: Order,
    kind: str,
    as_of: datetime,
    actor=None,
    from_status: str,
    to_status: str,
    details: dict[str, Any] | None = None,
    before: Any = None,
    after: Any = None,
) -> None:
    """What happened to the order, twice over: in its own history (OrderEvent) and in the
    firm's audit trail (action "order.<kind>"), in the caller's transaction."""
    order_event_record(
        order=order,
        kind=kind,
        as_of=as_of,
        actor=actor,
        from_status=from_status,
        to_status=to_status,
        details=details,
    )
    audit_record(
        actor=actor,
        action=f"order.{kind}",
        obj=order,
        occurred_at=as_of,
        before=before,
        after=after,
    )


@within_transaction
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
    order_history_record(
        order=order,
        kind=kind,
        as_of=as_of,
        actor=actor,
        from_status=current,
        to_status=to_status,
        details=details,
        before=before,
        after={"status": to_status, **(extra_fields or {}), **(details or {})},
    )
    broadcast.order_changed_on_commit(order.pk)
    return order


def _order_change(
    *,
    order: Order,
    to_status: str,
    fields: Mapping[str, Any],
    before: dict[str, Any],
    after: dict[str, Any],
    details: dict[str, Any],
    kind: str,
    actor,
    as_of: datetime,
    now: datetime,
) -> tuple[OrderEvent, dict[str, Any]]:
    """Move a locked order in memory (status, fields, version) and return its order event and
    the keyword arguments of its audit event, for the caller to write set-wise."""
    current = order.status
    order.status = to_status
    for name, value in fields.items():
        setattr(order, name, value)
    order.version += 1
    order.updated_at = now
    event = OrderEvent(
        order=order,
        kind=kind,
        at=as_of,
        actor=actor if getattr(actor, "pk", None) else None,
        from_status=current,
        to_status=to_status,
        details=details,
    )
    audit = {
        "actor": actor,
        "action": f"order.{kind}",
        "obj": order,
        "occurred_at": as_of,
        "before": before,
        "after": after,
    }
    return event, audit


@within_transaction
def orders_transition_bulk(
    *,
    orders: list[Order],
    to_status: str,
    as_of: datetime,
    kind: str,
    actor=None,
    details_by_order: Mapping[int, dict[str, Any]] | None = None,
    extra_fields_by_order: Mapping[int, dict[str, Any]] | None = None,
) -> list[Order]:
    """order_transition for many locked orders at once, with the same rows as a result: each
    order saved, one order event and one audit event each (in the orders' order), pushed on
    commit. Every order is checked against the lifecycle table first: one that may not move
    raises InvalidTransition and nothing is applied.

    The writes are set-wise (one UPDATE per distinct set of changes, one INSERT of events, one
    chain extension), so a 10,000-order program costs a handful of round trips, not 10,000.
    """
    if not orders:
        return []
    details_by_order = details_by_order or {}
    extra_fields_by_order = extra_fields_by_order or {}
    for order in orders:
        check_transition(order.status, to_status)
    if len({order.pk for order in orders}) != len(orders):
        raise DomainError("An order appears twice in one transition.", code="duplicate_order")
    now = timezone.now()
    events: list[OrderEvent] = []
    audits: list[dict[str, Any]] = []
    by_names: dict[tuple[str, ...], list[Order]] = {}
    for order in orders:
        extra = extra_fields_by_order.get(order.pk) or {}
        details = details_by_order.get(order.pk) or {}
        event, audit = _order_change(
            order=order,
            to_status=to_status,
            fields=extra,
            before={"status": order.status, **{k: getattr(order, k) for k in extra}},
            after={"status": to_status, **extra, **details},
            details=details,
            kind=kind,
            actor=actor,
            as_of=as_of,
            now=now,
        )
        by_names.setdefault(tuple(sorted(extra)), []).append(order)
        events.append(event)
        audits.append(audit)
    for names, members in by_names.items():
        _orders_update(orders=members, names=names, to_status=to_status, now=now)
    bulk_insert(events)
    audit_record_many(audits)
    for order in orders:
        broadcast.order_changed_on_commit(order.pk)
    return orders


# More distinct value sets than this among orders changing the same fields: one bulk_update
# (a CASE per field) beats an UPDATE per value set.
_MAX_UPDATES_PER_FIELD_SET = 4


def _orders_update(*, orders: list[Order], names: tuple[str, ...], to_status: str, now) -> None:
    """Write status, version, updated_at and the fields `names` of orders already changed in
    memory: one UPDATE per distinct set of values, or one bulk_update when they all differ."""
    by_values: dict[tuple, list[Order]] = {}
    try:
        for order in orders:
            by_values.setdefault(tuple(getattr(order, n) for n in names), []).append(order)
    except TypeError:  # an unhashable value (a JSON field): let bulk_update write each row
        by_values = {}
    if not by_values or len(by_values) > _MAX_UPDATES_PER_FIELD_SET:
        Order.objects.bulk_update(orders, ["status", "version", "updated_at", *names])
        return
    for values, members in by_values.items():
        # The rows are locked and their version was read under the lock, so F("version") + 1
        # is what each order now holds in memory.
        Order.objects.filter(pk__in=[o.pk for o in members]).update(
            status=to_status,
            version=F("version") + 1,
            updated_at=now,
            **dict(zip(names, values, strict=True)),
        )


@retry_on_conflict
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
