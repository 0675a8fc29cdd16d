"""Allocating block executions to accounts, finalising them with fees and money, and writing
the custodians' settlement files.

block_fill_allocate and block_fill_reverse run inside the FIX gateway's transaction (which has
locked the block); the others are top-level use cases with their own transaction."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Max

from audit.services import audit_record
from oms.errors import Conflict, DomainError, NotFound
from orders import services as order_services
from orders.models import BUY_SIDES, Block, Order
from positions import services as position_services

from .allocator import pro_rata
from .calendars import settlement_date
from .models import Allocation, AllocationPlan, AllocationSlice

PRICE_PLACES = Decimal("0.00000001")
CENT = Decimal("0.01")
ZERO = Decimal(0)
# A block in one of these has stopped executing: its allocations can be finalised.
DONE_STATUSES = frozenset(
    {
        Block.Status.FILLED,
        Block.Status.CANCELLED,
        Block.Status.DONE_FOR_DAY,
        Block.Status.EXPIRED,
        Block.Status.REJECTED,
    }
)


# --- the plan ---------------------------------------------------------------------------------


def _plan_lines(orders: Iterable[Order]) -> list[dict]:
    return [
        {
            "order": o.pk,
            "account": o.account_id,
            "quantity": str(o.quantity.quantize(PRICE_PLACES)),
        }
        for o in sorted(orders, key=lambda o: o.pk)
    ]


def plan_hash_of(lines: list[dict]) -> str:
    canonical = json.dumps(lines, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _rotation_next(*, security_id: int) -> int:
    # One atomic upsert: concurrent routes of the same security each get their own turn
    # without a read-modify-write race.
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO allocation_allocationrotation (security_id, counter) VALUES (%s, 1)
            ON CONFLICT (security_id)
            DO UPDATE SET counter = allocation_allocationrotation.counter + 1
            RETURNING counter
            """,
            [security_id],
        )
        return cursor.fetchone()[0] - 1


@transaction.atomic
def allocation_plan_fix(*, block: Block, actor, as_of: datetime) -> None:
    """Fix which orders share the block and in what proportion, and record the plan's SHA-256
    on the block, so any later change to the orders is visible (selectors.plan_drift)."""
    orders = list(Order.objects.filter(block_id=block.pk).order_by("pk"))
    if not orders:
        raise DomainError(f"Block {block.pk} has no orders to allocate to.", code="empty_block")
    lines = _plan_lines(orders)
    digest = plan_hash_of(lines)
    plan = AllocationPlan.objects.select_for_update().filter(block_id=block.pk).first()
    if plan is not None:
        if plan.plan_hash == digest:
            return
        if AllocationSlice.objects.filter(allocation__plan=plan).exists():
            raise Conflict(
                f"Block {block.pk} has allocations booked; its plan can no longer change.",
                code="plan_in_use",
            )
        before = {"plan_hash": plan.plan_hash, "lines": plan.lines}
        plan.allocations.all().delete()
        plan.lines, plan.plan_hash, plan.fixed_at = lines, digest, as_of
        plan.fixed_by = actor if getattr(actor, "pk", None) else None
        plan.save()
    else:
        before = None
        plan = AllocationPlan.objects.create(
            block=block,
            lines=lines,
            plan_hash=digest,
            rotation=_rotation_next(security_id=block.security_id),
            fixed_at=as_of,
            fixed_by=actor if getattr(actor, "pk", None) else None,
        )
    Allocation.objects.bulk_create(
        Allocation(
            plan=plan,
            block=block,
            order=o,
            account_id=o.account_id,
            plan_quantity=o.quantity,
            currency=block.security.currency,
        )
        for o in orders
    )
    Block.objects.filter(pk=block.pk).update(allocation_plan=lines, allocation_plan_hash=digest)
    block.allocation_plan, block.allocation_plan_hash = lines, digest
    audit_record(
        actor=actor,
        action="allocation.plan_fix",
        obj=block,
        occurred_at=as_of,
        before=before,
        after={"plan_hash": digest, "lines": lines, "rotation": plan.rotation},
    )


def _plan_locked(*, block: Block, actor, as_of: datetime) -> AllocationPlan:
    plan = AllocationPlan.objects.select_for_update().filter(block_id=block.pk).first()
    if plan is None:
        # A block filled without going through block_route (an internal cross, a test):
        # its plan is fixed from the orders it has now.
        allocation_plan_fix(block=block, actor=actor, as_of=as_of)
        plan = AllocationPlan.objects.select_for_update().get(block_id=block.pk)
    return plan


def _allocations_locked(plan: AllocationPlan) -> list[Allocation]:
    return list(Allocation.objects.select_for_update().filter(plan=plan).order_by("order_id", "pk"))


# --- booking ----------------------------------------------------------------------------------


@dataclass
class _Booking:
    allocation: Allocation
    quantity: Decimal
    price: Decimal


def _book(
    *,
    block: Block,
    bookings: list[_Booking],
    kind: str,
    execution_ref: str,
    trade_date: date,
    as_of: datetime,
    actor,
) -> list[AllocationSlice]:
    """Book each (allocation, quantity, price) on its order and its position, in order pk order,
    and record the slice that says so."""
    bookings = [b for b in bookings if b.quantity != 0]
    if not bookings:
        return []
    security = block.security
    settle = settlement_date(security=security, trade_date=trade_date)
    orders = {
        o.pk: o
        for o in order_services.orders_lock(order_ids=[b.allocation.order_id for b in bookings])
    }
    slices = []
    for b in sorted(bookings, key=lambda b: b.allocation.order_id):
        alloc = b.allocation
        order = orders[alloc.order_id]
        ref = f"{execution_ref}:{order.pk}"
        order_services.order_fill_apply(
            order=order,
            quantity=b.quantity,
            price=b.price,
            as_of=as_of,
            exec_ref=ref,
            actor=actor,
            kind="fill" if kind == AllocationSlice.Kind.FILL else f"allocation_{kind.lower()}",
        )
        position_services.position_fill_apply(
            account_id=alloc.account_id,
            security_id=security.pk,
            side=block.side,
            quantity=b.quantity,
            price=b.price,
            trade_date=trade_date,
            settle_date=settle,
            fill_ref=f"{kind.lower()}:{ref}",
            as_of=as_of,
        )
        alloc.quantity += b.quantity
        alloc.avg_price = order.avg_price
        if alloc.trade_date is None:
            alloc.trade_date, alloc.settle_date = trade_date, settle
        alloc.save(update_fields=["quantity", "avg_price", "trade_date", "settle_date"])
        slices.append(
            AllocationSlice(
                allocation=alloc,
                kind=kind,
                execution_ref=execution_ref,
                quantity=b.quantity,
                price=b.price,
                trade_date=trade_date,
                settle_date=settle,
                booked_at=as_of,
            )
        )
    return AllocationSlice.objects.bulk_create(slices)


def _reversal_price(alloc: Allocation, fallback: Decimal) -> Decimal:
    # Taking shares back at the account's own average price leaves that average unchanged.
    return alloc.avg_price if alloc.avg_price is not None else fallback


def _deltas(*, allocs: list[Allocation], targets: list[Decimal], price: Decimal) -> list[_Booking]:
    return [
        _Booking(a, t - a.quantity, price if t > a.quantity else _reversal_price(a, price))
        for a, t in zip(allocs, targets, strict=True)
        if t != a.quantity
    ]


def block_fill_allocate(
    *,
    block: Block,
    execution_ref: str,
    quantity: Decimal,
    price: Decimal,
    trade_date: date,
    as_of: datetime,
    actor=None,
) -> list[AllocationSlice]:
    """Split one execution of `quantity` at `price` across the block's orders.

    The block's cumulative executed quantity is re-split pro rata (allocator.pro_rata) and each
    order is booked the difference from what it already holds, at the execution's price, so
    positions move with every fill. The split is incremental (a later fill never takes shares
    back from an order) whenever that stays within one lot of the exact shares, which it does
    for ordinary fills; only after a bust or a manual adjustment can an order's target fall,
    and then the shares are taken back at that order's own average price. Finalising re-prices
    every account to the block's average (allocation_finalise).

    Runs in the caller's transaction, after it has locked the block and recorded the execution.
    A replayed execution_ref books nothing and returns the slices it booked the first time.
    """
    if quantity <= 0:
        raise DomainError("An execution's quantity must be positive.", code="invalid_quantity")
    with transaction.atomic():
        plan = _plan_locked(block=block, actor=actor, as_of=as_of)
        if plan.status == AllocationPlan.Status.FINALISED:
            raise Conflict(
                f"Block {block.pk}'s allocations are finalised; an execution cannot be added.",
                code="allocation_finalised",
            )
        booked = list(
            AllocationSlice.objects.filter(
                allocation__plan=plan, execution_ref=execution_ref, kind=AllocationSlice.Kind.FILL
            )
        )
        if booked:
            return booked
        allocs = _allocations_locked(plan)
        executed = sum((a.quantity for a in allocs), ZERO) + quantity
        targets = pro_rata(
            weights=[a.plan_quantity for a in allocs],
            executed=executed,
            lot=block.security.lot_size,
            rotation=plan.rotation,
            floors=[a.quantity for a in allocs],
        )
        return _book(
            block=block,
            bookings=_deltas(allocs=allocs, targets=targets, price=price),
            kind=AllocationSlice.Kind.FILL,
            execution_ref=execution_ref,
            trade_date=trade_date,
            as_of=as_of,
            actor=actor,
        )


def block_fill_reverse(*, block: Block, execution_ref: str, as_of: datetime, actor=None) -> None:
    """Bust: undo exactly what `execution_ref` booked, order by order, at the same prices.
    A second bust of the same execution changes nothing."""
    with transaction.atomic():
        plan = _plan_locked(block=block, actor=actor, as_of=as_of)
        if plan.status == AllocationPlan.Status.FINALISED:
            raise Conflict(
                f"Block {block.pk}'s allocations are finalised; Operations must handle the bust.",
                code="allocation_finalised",
            )
        slices = list(
            AllocationSlice.objects.filter(allocation__plan=plan, execution_ref=execution_ref)
        )
        fills = [s for s in slices if s.kind == AllocationSlice.Kind.FILL]
        if not fills or any(s.kind == AllocationSlice.Kind.BUST for s in slices):
            return
        allocs = {a.pk: a for a in _allocations_locked(plan)}
        _book(
            block=block,
            bookings=[_Booking(allocs[s.allocation_id], -s.quantity, s.price) for s in fills],
            kind=AllocationSlice.Kind.BUST,
            execution_ref=execution_ref,
            trade_date=fills[0].trade_date,
            as_of=as_of,
            actor=actor,
        )
