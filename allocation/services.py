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
from django.db.models import Exists, OuterRef

from audit.services import audit_record, bulk_insert
from oms.bulk_rows import rows_update
from oms.csvio import write_csv
from oms.errors import Conflict, DomainError, NotFound
from oms.models import Custodian
from orders import services as order_services
from orders.models import SELL_SIDES, Block, Order
from positions import services as position_services

from .allocator import pro_rata
from .calendars import settlement_date
from .models import (
    Allocation,
    AllocationExecution,
    AllocationPlan,
    AllocationSlice,
    SettlementFile,
)

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


# --- booking ---------------------------------------------------------------------------------
#
# The position keeper reverses only whole earlier bookings (same reference, size and price), so
# every share an order holds through this block is a live slice, and taking shares back means
# reversing slices (newest first) and re-booking whatever was reversed beyond the need.


def _order_event_kind(kind: str) -> str:
    """The order event a booking of this slice kind records: a fill, or an allocation change."""
    return "fill" if kind == AllocationSlice.Kind.FILL else f"allocation_{kind.lower()}"


class _Bookings:
    """Shares booked to allocations, gathered in booking order and written set-wise: each
    order's fill, the ledger's booking, and the allocation's new figures. The slices come back
    unsaved from write(), for the caller to insert as suits its size."""

    def __init__(self, *, kind: str, as_of: datetime, actor) -> None:
        self.kind, self.as_of, self.actor = kind, as_of, actor
        self.order_fills: list[order_services.OrderFill] = []
        self.bookings: list[position_services.FillBooking] = []
        self.slices: list[AllocationSlice] = []
        self.touched: dict[int, Allocation] = {}

    def add(
        self,
        alloc: Allocation,
        quantity: Decimal,
        *,
        order: Order,
        block: Block,
        price,
        execution_ref: str,
        trade_date: date,
        settle: date,
    ) -> None:
        fill_ref = f"{self.kind.lower()}:{execution_ref}:{alloc.order_id}"
        self.order_fills.append(
            order_services.OrderFill(
                order=order, quantity=quantity, price=price, exec_ref=execution_ref
            )
        )
        self.bookings.append(
            position_services.FillBooking(
                account_id=alloc.account_id,
                security_id=block.security.pk,
                side=block.side,
                quantity=quantity,
                price=price,
                trade_date=trade_date,
                settle_date=settle,
                fill_ref=fill_ref,
                currency=block.security.currency,
            )
        )
        self.slices.append(
            AllocationSlice(
                allocation=alloc,
                kind=self.kind,
                execution_ref=execution_ref,
                fill_ref=fill_ref,
                quantity=quantity,
                price=price,
                trade_date=trade_date,
                settle_date=settle,
                booked_at=self.as_of,
            )
        )
        alloc.quantity += quantity
        if alloc.trade_date is None:
            alloc.trade_date, alloc.settle_date = trade_date, settle
        self.touched[alloc.pk] = alloc

    def write(self, orders: dict[int, Order]) -> list[AllocationSlice]:
        order_services.orders_fill_apply_many(
            fills=self.order_fills,
            as_of=self.as_of,
            actor=self.actor,
            kind=_order_event_kind(self.kind),
        )
        position_services.position_fills_apply(bookings=self.bookings, as_of=self.as_of)
        allocs = list(self.touched.values())
        for alloc in allocs:
            alloc.avg_price = orders[alloc.order_id].avg_price
        rows_update(allocs, ["quantity", "avg_price", "trade_date", "settle_date"])
        return self.slices


class _Books:
    """The orders, allocations and live bookings of one block, locked for one use case."""

    def __init__(self, *, block: Block, plan: AllocationPlan, as_of: datetime, actor) -> None:
        self.block, self.plan, self.as_of, self.actor = block, plan, as_of, actor
        self.security = block.security
        self.allocs = _allocations_locked(plan)
        self.orders: dict[int, Order] = {}

    def lock_orders(self, order_ids: Iterable[int]) -> None:
        wanted = sorted(set(order_ids) - set(self.orders))
        if wanted:
            for order in order_services.orders_lock(order_ids=wanted):
                self.orders[order.pk] = order

    def live(self, alloc: Allocation) -> list[AllocationSlice]:
        return list(
            AllocationSlice.objects.filter(
                allocation=alloc, quantity__gt=0, reversed_by__isnull=True
            ).order_by("id")
        )

    def _apply(self, alloc: Allocation, *, quantity, price, fill_ref, exec_ref, kind, trade_date):
        settle = settlement_date(security=self.security, trade_date=trade_date)
        order = self.orders[alloc.order_id]
        order_services.order_fill_apply(
            order=order,
            quantity=quantity,
            price=price,
            as_of=self.as_of,
            exec_ref=exec_ref,
            actor=self.actor,
            kind=_order_event_kind(kind),
        )
        position_services.position_fill_apply(
            account_id=alloc.account_id,
            security_id=self.security.pk,
            side=self.block.side,
            quantity=quantity,
            price=price,
            trade_date=trade_date,
            settle_date=settle,
            fill_ref=fill_ref,
            as_of=self.as_of,
        )
        alloc.quantity += quantity
        alloc.avg_price = order.avg_price
        if alloc.trade_date is None:
            alloc.trade_date, alloc.settle_date = trade_date, settle
        alloc.save(update_fields=["quantity", "avg_price", "trade_date", "settle_date"])
        return settle

    def book(self, alloc, *, quantity, price, kind, execution_ref, trade_date) -> AllocationSlice:
        fill_ref = f"{kind.lower()}:{execution_ref}:{alloc.order_id}"
        settle = self._apply(
            alloc,
            quantity=quantity,
            price=price,
            fill_ref=fill_ref,
            exec_ref=execution_ref,
            kind=kind,
            trade_date=trade_date,
        )
        return AllocationSlice.objects.create(
            allocation=alloc,
            kind=kind,
            execution_ref=execution_ref,
            fill_ref=fill_ref,
            quantity=quantity,
            price=price,
            trade_date=trade_date,
            settle_date=settle,
            booked_at=self.as_of,
        )

    def book_many(
        self, deltas: list[tuple[Allocation, Decimal]], *, price, kind, execution_ref, trade_date
    ) -> list[AllocationSlice]:
        """book() for several allocations at once (each a different order), with the same rows
        as booking them one by one in this order, written set-wise: the hot path of every
        execution report."""
        if not deltas:
            return []
        self.lock_orders(a.order_id for a, _ in deltas)
        settle = settlement_date(security=self.security, trade_date=trade_date)
        books = _Bookings(kind=kind, as_of=self.as_of, actor=self.actor)
        for alloc, quantity in deltas:
            books.add(
                alloc,
                quantity,
                order=self.orders[alloc.order_id],
                block=self.block,
                price=price,
                execution_ref=execution_ref,
                trade_date=trade_date,
                settle=settle,
            )
        return AllocationSlice.objects.bulk_create(books.write(self.orders))

    def reverse(self, alloc, original: AllocationSlice, *, kind, execution_ref) -> AllocationSlice:
        self._apply(
            alloc,
            quantity=-original.quantity,
            price=original.price,
            fill_ref=original.fill_ref,
            exec_ref=execution_ref,
            kind=kind,
            trade_date=original.trade_date,
        )
        return AllocationSlice.objects.create(
            allocation=alloc,
            kind=kind,
            execution_ref=execution_ref,
            fill_ref=original.fill_ref,
            quantity=-original.quantity,
            price=original.price,
            trade_date=original.trade_date,
            settle_date=original.settle_date,
            reverses=original,
            booked_at=self.as_of,
        )

    def take_back(self, alloc, quantity: Decimal, *, kind, execution_ref) -> None:
        """Remove `quantity` from the order, newest bookings first; each share left keeps the
        price it was booked at."""
        for original in reversed(self.live(alloc)):
            if quantity <= 0:
                break
            self.reverse(alloc, original, kind=kind, execution_ref=execution_ref)
            quantity -= original.quantity
            if quantity < 0:
                self.book(
                    alloc,
                    quantity=-quantity,
                    price=original.price,
                    kind=kind,
                    execution_ref=f"{execution_ref}:rebook{original.pk}",
                    trade_date=original.trade_date,
                )
        if quantity > 0:
            raise Conflict(f"Allocation {alloc.pk} holds less than is to be taken back.")

    def move_to(self, targets: list[Decimal], *, price: Decimal, kind, execution_ref, trade_date):
        """Bring every allocation to its target: increases at `price`, decreases by taking
        back. Decreases go first so no order is ever over-filled on the way."""
        changes = [(a, t - a.quantity) for a, t in zip(self.allocs, targets, strict=True)]
        self.lock_orders(a.order_id for a, d in changes if d)
        for alloc, delta in changes:
            if delta < 0:
                self.take_back(alloc, -delta, kind=kind, execution_ref=execution_ref)
        self.book_many(
            [(alloc, delta) for alloc, delta in changes if delta > 0],
            price=price,
            kind=kind,
            execution_ref=execution_ref,
            trade_date=trade_date,
        )


def _executed(plan: AllocationPlan) -> tuple[Decimal, Decimal | None]:
    """The block's executed quantity and average price, from the executions not busted."""
    quantity, value = ZERO, ZERO
    for ex in plan.executions.filter(busted_at__isnull=True):
        quantity += ex.quantity
        value += ex.quantity * ex.price
    return quantity, ((value / quantity).quantize(PRICE_PLACES) if quantity else None)


def _check_open(plan: AllocationPlan, what: str) -> None:
    if plan.status == AllocationPlan.Status.FINALISED:
        raise Conflict(
            f"Block {plan.block_id}'s allocations are finalised; {what}.",
            code="allocation_finalised",
        )


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
    positions move with every fill. We chose the incremental scheme: a further fill never takes
    shares back from an order, as long as that keeps everyone within one lot of the exact
    share, which holds for ordinary fills. Only after a bust or a manual adjustment can an
    order's target fall; then shares are taken back by reversing its newest bookings (each
    remaining share keeps its price). Every account ends at the block's average price when the
    block is finalised (allocation_finalise re-books any account whose average differs).

    Runs in the caller's transaction, after it has locked the block and recorded the execution.
    A replayed execution_ref books nothing and returns the slices it booked the first time.
    """
    if quantity <= 0 or price <= 0:
        raise DomainError("An execution needs a positive quantity and price.", code="invalid")
    # No savepoint: the caller's transaction (the FIX gateway's own savepoint) is what a
    # failure rolls back, and this runs for every execution report.
    with transaction.atomic(savepoint=False):
        plan = (
            AllocationPlan.objects.select_for_update()
            .filter(block_id=block.pk)
            .annotate(
                replayed=Exists(
                    AllocationExecution.objects.filter(
                        plan=OuterRef("pk"), execution_ref=execution_ref
                    )
                )
            )
            .first()
        )
        if plan is None:
            plan = _plan_locked(block=block, actor=actor, as_of=as_of)
            plan.replayed = plan.executions.filter(execution_ref=execution_ref).exists()
        _check_open(plan, "an execution cannot be added")
        if plan.replayed:
            return list(
                AllocationSlice.objects.filter(
                    allocation__plan=plan, execution_ref=execution_ref
                ).order_by("id")
            )
        AllocationExecution.objects.create(
            plan=plan,
            execution_ref=execution_ref,
            quantity=quantity,
            price=price,
            trade_date=trade_date,
            booked_at=as_of,
        )
        books = _Books(block=block, plan=plan, as_of=as_of, actor=actor)
        executed = sum((a.quantity for a in books.allocs), ZERO) + quantity
        targets = pro_rata(
            weights=[a.plan_quantity for a in books.allocs],
            executed=executed,
            lot=block.security.lot_size,
            rotation=plan.rotation,
            floors=[a.quantity for a in books.allocs],
        )
        changes = [(a, t - a.quantity) for a, t in zip(books.allocs, targets, strict=True)]
        if all(delta >= 0 for _, delta in changes):
            # The usual case: every order only gains, so what is booked is exactly these slices.
            return books.book_many(
                [(a, delta) for a, delta in changes if delta],
                price=price,
                kind=AllocationSlice.Kind.FILL,
                execution_ref=execution_ref,
                trade_date=trade_date,
            )
        first_id = AllocationSlice.objects.order_by("-id").values_list("id", flat=True).first()
        books.move_to(
            targets,
            price=price,
            kind=AllocationSlice.Kind.FILL,
            execution_ref=execution_ref,
            trade_date=trade_date,
        )
        return list(
            AllocationSlice.objects.filter(allocation__plan=plan, id__gt=first_id or 0).order_by(
                "id"
            )
        )


class NotIncremental(DomainError):
    """A run of executions block_fills_allocate will not take: one of them needs judgement
    (shares taken back, a replay, a plan not fixed yet, a finalised plan). Nothing changed:
    the caller books them one by one through block_fill_allocate."""


@dataclass(frozen=True)
class BlockFill:
    """One execution for block_fills_allocate; `block` is locked by the caller, with its
    security loaded."""

    block: Block
    execution_ref: str
    quantity: Decimal
    price: Decimal
    trade_date: date


def block_fills_allocate(*, fills: list[BlockFill], as_of: datetime, actor=None) -> None:
    """block_fill_allocate for a run of executions in arrival order (several per block,
    several blocks), with the same rows it would write for them one by one, in a fixed number
    of statements for the whole run: the hot path of a burst of execution reports.

    Only the usual case goes this way: every execution only adds to each order's share (the
    incremental split holds). Anything else raises NotIncremental before a row is written."""
    if not fills:
        return
    refs = [f.execution_ref for f in fills]
    if len(set(refs)) != len(refs):
        raise NotIncremental("An execution appears twice in the run.", code="not_incremental")
    for f in fills:
        if f.quantity <= 0 or f.price <= 0:
            raise DomainError("An execution needs a positive quantity and price.", code="invalid")
    with transaction.atomic(savepoint=False):
        blocks = {f.block.pk: f.block for f in fills}
        plans = {
            p.block_id: p
            for p in AllocationPlan.objects.select_for_update()
            .filter(block_id__in=blocks)
            .annotate(
                replayed=Exists(
                    AllocationExecution.objects.filter(plan=OuterRef("pk"), execution_ref__in=refs)
                )
            )
            .order_by("pk")
        }
        if len(plans) != len(blocks) or any(p.replayed for p in plans.values()):
            raise NotIncremental("A plan is missing or replayed.", code="not_incremental")
        for plan in plans.values():
            _check_open(plan, "an execution cannot be added")
        allocs_of: dict[int, list[Allocation]] = {}
        for alloc in (
            Allocation.objects.select_for_update()
            .filter(plan__in=list(plans.values()))
            .order_by("order_id", "pk")
        ):
            allocs_of.setdefault(alloc.plan_id, []).append(alloc)
        orders = {
            o.pk: o
            for o in order_services.orders_lock(
                order_ids=sorted(a.order_id for allocs in allocs_of.values() for a in allocs)
            )
        }
        settles: dict[tuple[int, date], date] = {}
        executions: list[AllocationExecution] = []
        books = _Bookings(kind=AllocationSlice.Kind.FILL, as_of=as_of, actor=actor)
        for f in fills:
            plan, security = plans[f.block.pk], f.block.security
            allocs = allocs_of.get(plan.pk, [])
            targets = pro_rata(
                weights=[a.plan_quantity for a in allocs],
                executed=sum((a.quantity for a in allocs), ZERO) + f.quantity,
                lot=security.lot_size,
                rotation=plan.rotation,
                floors=[a.quantity for a in allocs],
            )
            deltas = [(a, t - a.quantity) for a, t in zip(allocs, targets, strict=True)]
            if any(delta < 0 for _, delta in deltas):
                raise NotIncremental("An execution takes shares back.", code="not_incremental")
            key = (security.pk, f.trade_date)
            if key not in settles:
                settles[key] = settlement_date(security=security, trade_date=f.trade_date)
            settle = settles[key]
            executions.append(
                AllocationExecution(
                    plan=plan,
                    execution_ref=f.execution_ref,
                    quantity=f.quantity,
                    price=f.price,
                    trade_date=f.trade_date,
                    booked_at=as_of,
                )
            )
            for alloc, delta in deltas:
                if delta:
                    books.add(
                        alloc,
                        delta,
                        order=orders[alloc.order_id],
                        block=f.block,
                        price=f.price,
                        execution_ref=f.execution_ref,
                        trade_date=f.trade_date,
                        settle=settle,
                    )
        bulk_insert(executions)
        bulk_insert(books.write(orders))


def block_fill_reverse(*, block: Block, execution_ref: str, as_of: datetime, actor=None) -> None:
    """Bust: undo what `execution_ref` booked, per order and position, with negative quantities
    through the same calls (the exact bookings reversed). A second bust changes nothing."""
    with transaction.atomic():
        plan = _plan_locked(block=block, actor=actor, as_of=as_of)
        _check_open(plan, "Operations must handle the bust")
        execution = plan.executions.select_for_update().filter(execution_ref=execution_ref).first()
        if execution is None or execution.busted_at is not None:
            return
        execution.busted_at = as_of
        execution.save(update_fields=["busted_at"])
        books = _Books(block=block, plan=plan, as_of=as_of, actor=actor)
        by_alloc = {a.pk: a for a in books.allocs}
        slices = list(
            AllocationSlice.objects.filter(
                allocation__plan=plan,
                kind=AllocationSlice.Kind.FILL,
                execution_ref__startswith=execution_ref,
            ).order_by("-id")
        )
        slices = [
            s
            for s in slices
            if s.execution_ref == execution_ref
            or s.execution_ref.startswith(f"{execution_ref}:rebook")
        ]
        books.lock_orders(by_alloc[s.allocation_id].order_id for s in slices)
        bust_ref = f"bust:{execution_ref}"
        for s in slices:  # newest first: the exact inverse of what the execution did
            alloc = by_alloc[s.allocation_id]
            if s.quantity > 0 and not AllocationSlice.objects.filter(reverses=s).exists():
                books.reverse(alloc, s, kind=AllocationSlice.Kind.BUST, execution_ref=bust_ref)
            elif s.quantity > 0:
                # A later execution already took this booking back; remove as many shares.
                books.take_back(
                    alloc, s.quantity, kind=AllocationSlice.Kind.BUST, execution_ref=bust_ref
                )
            else:
                original = s.reverses
                books.book(
                    alloc,
                    quantity=original.quantity,
                    price=original.price,
                    kind=AllocationSlice.Kind.BUST,
                    execution_ref=f"{bust_ref}:restore{original.pk}",
                    trade_date=original.trade_date,
                )
        audit_record(
            actor=actor,
            action="allocation.bust",
            obj=block,
            occurred_at=as_of,
            after={"execution_ref": execution_ref, "quantity": execution.quantity},
        )


# --- adjusting and finalising ---------------------------------------------------------------


def _plan_for(*, block_id: int) -> tuple[Block, AllocationPlan]:
    block = Block.objects.select_related("security", "broker").filter(pk=block_id).first()
    if block is None:
        raise NotFound(f"Block {block_id} does not exist.")
    plan = AllocationPlan.objects.select_for_update().filter(block_id=block_id).first()
    if plan is None:
        raise NotFound(f"Block {block_id} has no allocation plan (it was never routed).")
    return block, plan


@transaction.atomic
def allocation_adjust(
    *,
    block_id: int,
    quantities: dict[int, Decimal],
    reason: str,
    actor,
    as_of: datetime,
) -> list[Allocation]:
    """Operations re-splits a block before it is finalised: {order_id: new quantity}. The new
    split must still add up to the executed quantity; moved shares go at the block's average."""
    reason = (reason or "").strip()
    if not reason:
        raise DomainError("Give a reason for the adjustment.", code="reason_required")
    block, plan = _plan_for(block_id=block_id)
    _check_open(plan, "they can no longer be adjusted")
    books = _Books(block=block, plan=plan, as_of=as_of, actor=actor)
    known = {a.order_id for a in books.allocs}
    if set(quantities) - known:
        raise DomainError(
            f"Orders {sorted(set(quantities) - known)} are not in block {block.pk}.",
            code="unknown_order",
        )
    targets = [quantities.get(a.order_id, a.quantity) for a in books.allocs]
    for alloc, target in zip(books.allocs, targets, strict=True):
        if target < 0 or target > alloc.plan_quantity:
            raise DomainError(
                f"Order {alloc.order_id} can take between 0 and {alloc.plan_quantity}.",
                code="invalid_quantity",
            )
    executed, avg = _executed(plan)
    if sum(targets, ZERO) != executed:
        raise DomainError(
            f"The allocations add up to {sum(targets, ZERO)}, the block executed {executed}.",
            code="allocation_sum",
        )
    before = {str(a.order_id): str(a.quantity) for a in books.allocs}
    if executed:
        trade_date = min(plan.executions.values_list("trade_date", flat=True))
        books.move_to(
            targets,
            price=avg,
            kind=AllocationSlice.Kind.ADJUST,
            execution_ref=f"adjust:{block.pk}:{as_of.isoformat()}",
            trade_date=trade_date,
        )
    plan.adjusted = True
    plan.save(update_fields=["adjusted"])
    audit_record(
        actor=actor,
        action="allocation.adjust",
        obj=block,
        occurred_at=as_of,
        before=before,
        after={
            "quantities": {str(a.order_id): str(a.quantity) for a in books.allocs},
            "reason": reason,
        },
    )
    return books.allocs


def _money(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def fees_for(
    *, side: str, quantity: Decimal, price: Decimal, broker
) -> tuple[Decimal, Decimal, Decimal, Decimal]:
    """(gross, commission, fees, net) for one account's allocation: commission per the broker
    (basis points of gross plus a per-share rate), a regulatory fee on sells (a rate of gross,
    settings.OMS_REGULATORY_FEE_RATE); net is what changes hands on settlement."""
    gross = _money(quantity * price)
    commission = ZERO
    if broker is not None:
        commission = _money(
            gross * broker.commission_bps / Decimal(10_000) + quantity * broker.commission_per_share
        )
    fees = ZERO
    if side in SELL_SIDES:
        fees = _money(gross * Decimal(str(settings.OMS_REGULATORY_FEE_RATE)))
    net = gross - commission - fees if side in SELL_SIDES else gross + commission + fees
    return gross, commission, fees, net


@transaction.atomic
def allocation_finalise(*, block: Block, as_of: datetime, actor=None) -> list[Allocation]:
    """Close the block's allocations once it has stopped executing: every account at the
    block's average price (re-booked where its own average differs), then commission and fees
    booked as cash on the settlement date (the gross already moved with the fills)."""
    block = Block.objects.select_related("security", "broker").get(pk=block.pk)
    if block.status not in DONE_STATUSES:
        raise Conflict(
            f"Block {block.pk} is {block.status}; it is finalised once it is done.",
            code="block_not_done",
        )
    plan = _plan_locked(block=block, actor=actor, as_of=as_of)
    _check_open(plan, "they were finalised before")
    books = _Books(block=block, plan=plan, as_of=as_of, actor=actor)
    executed, avg = _executed(plan)
    if plan.adjusted or not executed:
        targets = [a.quantity for a in books.allocs]
    else:
        targets = pro_rata(
            weights=[a.plan_quantity for a in books.allocs],
            executed=executed,
            lot=block.security.lot_size,
            rotation=plan.rotation,
        )
    if executed:
        trade_date = min(plan.executions.values_list("trade_date", flat=True))
        final_ref = f"final:{block.pk}"
        books.lock_orders(a.order_id for a in books.allocs)
        for alloc in books.allocs:
            if any(s.price != avg for s in books.live(alloc)):
                books.take_back(
                    alloc, alloc.quantity, kind=AllocationSlice.Kind.FINAL, execution_ref=final_ref
                )
        books.move_to(
            targets,
            price=avg,
            kind=AllocationSlice.Kind.FINAL,
            execution_ref=final_ref,
            trade_date=trade_date,
        )
    for alloc in books.allocs:
        alloc.finalised_at = as_of
        alloc.avg_price = avg if alloc.quantity else None
        alloc.currency = block.security.currency
        if alloc.quantity:
            alloc.gross_amount, alloc.commission, alloc.fees, alloc.net_amount = fees_for(
                side=block.side, quantity=alloc.quantity, price=avg, broker=block.broker
            )
            charges = alloc.commission + alloc.fees
            if charges:
                position_services.cash_adjust(
                    account_id=alloc.account_id,
                    currency=alloc.currency,
                    amount=-charges,
                    settle_date=alloc.settle_date,
                    reason=f"commission and fees, block {block.pk}",
                    ref=f"allocation:{alloc.pk}",
                    as_of=as_of,
                )
        alloc.save()
    plan.status = AllocationPlan.Status.FINALISED
    plan.avg_price = avg
    plan.finalised_at = as_of
    plan.save(update_fields=["status", "avg_price", "finalised_at"])
    audit_record(
        actor=actor,
        action="allocation.finalise",
        obj=block,
        occurred_at=as_of,
        after={
            "avg_price": avg,
            "executed": executed,
            "allocations": {str(a.order_id): str(a.quantity) for a in books.allocs},
        },
    )
    return books.allocs


def allocations_finalise_done(*, as_of: datetime, actor=None) -> list[int]:
    """Finalise every block that has stopped executing (the after-close job); each in its own
    transaction so one failure does not hold back the rest."""
    block_ids = list(
        AllocationPlan.objects.filter(
            status=AllocationPlan.Status.OPEN, block__status__in=DONE_STATUSES
        )
        .order_by("block_id")
        .values_list("block_id", flat=True)
    )
    done = []
    for block_id in block_ids:
        block = Block.objects.get(pk=block_id)
        allocation_finalise(block=block, as_of=as_of, actor=actor)
        done.append(block_id)
    return done


# --- settlement files -----------------------------------------------------------------------

SETTLEMENT_COLUMNS = [
    "trade_id",
    "trade_date",
    "settlement_date",
    "account",
    "custodian_account",
    "symbol",
    "isin",
    "side",
    "quantity",
    "price",
    "gross_amount",
    "commission",
    "fees",
    "net_amount",
    "currency",
    "executing_broker",
]


def settlement_rows(*, custodian_id: int, trade_date: date) -> list[dict[str, str]]:
    """The finalised, non-empty allocations of the custodian's accounts traded on the date."""
    allocs = (
        Allocation.objects.filter(
            account__custodian_id=custodian_id,
            trade_date=trade_date,
            finalised_at__isnull=False,
            quantity__gt=0,
        )
        .select_related("account", "block__security", "block__broker")
        .order_by("pk")
    )
    rows = []
    for a in allocs:
        security = a.block.security
        rows.append(
            {
                "trade_id": f"ALLOC-{a.pk}",
                "trade_date": a.trade_date.isoformat(),
                "settlement_date": a.settle_date.isoformat(),
                "account": a.account.code,
                "custodian_account": a.account.custodian_account,
                "symbol": security.symbol,
                "isin": security.isin or "",
                "side": a.block.side,
                "quantity": f"{a.quantity.normalize():f}",
                "price": f"{a.avg_price.normalize():f}",
                "gross_amount": str(a.gross_amount.quantize(CENT)),
                "commission": str(a.commission.quantize(CENT)),
                "fees": str(a.fees.quantize(CENT)),
                "net_amount": str(a.net_amount.quantize(CENT)),
                "currency": a.currency,
                "executing_broker": a.block.broker.code if a.block.broker else "",
            }
        )
    return rows


def _differences(previous: list[dict], current: list[dict]) -> dict:
    old = {r["trade_id"]: r for r in previous}
    new = {r["trade_id"]: r for r in current}
    changed = {}
    for trade_id in sorted(old.keys() & new.keys()):
        fields = {
            k: [old[trade_id].get(k), new[trade_id].get(k)]
            for k in SETTLEMENT_COLUMNS
            if old[trade_id].get(k) != new[trade_id].get(k)
        }
        if fields:
            changed[trade_id] = fields
    return {
        "added": sorted(new.keys() - old.keys()),
        "removed": sorted(old.keys() - new.keys()),
        "changed": changed,
    }


def _rows_of(content: str) -> list[dict]:
    import csv
    import io

    return list(csv.DictReader(io.StringIO(content)))


@transaction.atomic
def settlement_file_generate(
    *, custodian_id: int, trade_date: date, as_of: datetime, actor=None
) -> tuple[SettlementFile, bool]:
    """Write the custodian's file for the date. If the content is what the latest version
    already says, that version is returned (created=False); otherwise a new version, listing
    what differs from the previous one."""
    custodian = Custodian.objects.select_for_update().filter(pk=custodian_id).first()
    if custodian is None:
        raise NotFound(f"Custodian {custodian_id} does not exist.")
    rows = settlement_rows(custodian_id=custodian_id, trade_date=trade_date)
    content = write_csv(SETTLEMENT_COLUMNS, ([r[c] for c in SETTLEMENT_COLUMNS] for r in rows))
    checksum = hashlib.sha256(content.encode()).hexdigest()
    latest = (
        SettlementFile.objects.filter(custodian=custodian, trade_date=trade_date)
        .order_by("-version")
        .first()
    )
    if latest is not None and latest.checksum == checksum:
        return latest, False
    version = latest.version + 1 if latest else 1
    previous_rows = _rows_of(latest.content) if latest else []
    created = SettlementFile.objects.create(
        custodian=custodian,
        trade_date=trade_date,
        version=version,
        filename=f"settlement_{custodian.code}_{trade_date:%Y%m%d}_v{version}.csv",
        content=content,
        checksum=checksum,
        row_count=len(rows),
        differences=_differences(previous_rows, rows) if latest else {},
        previous=latest,
        created_at=as_of,
        created_by=actor if getattr(actor, "pk", None) else None,
    )
    audit_record(
        actor=actor,
        action="settlement_file.generate",
        obj=created,
        occurred_at=as_of,
        after={"checksum": checksum, "rows": len(rows), "version": version},
    )
    return created, True


def settlement_files_generate(
    *, trade_date: date, as_of: datetime, actor=None
) -> list[tuple[SettlementFile, bool]]:
    """Files for every custodian with finalised trades on the date (or an earlier version)."""
    custodian_ids = set(
        Allocation.objects.filter(
            trade_date=trade_date, finalised_at__isnull=False, quantity__gt=0
        ).values_list("account__custodian_id", flat=True)
    ) | set(
        SettlementFile.objects.filter(trade_date=trade_date).values_list("custodian_id", flat=True)
    )
    return [
        settlement_file_generate(custodian_id=cid, trade_date=trade_date, as_of=as_of, actor=actor)
        for cid in sorted(custodian_ids)
    ]


@transaction.atomic
def settlement_file_download(*, file_id: int, actor, as_of: datetime) -> SettlementFile:
    """The file to hand out, with the download on the audit trail."""
    sf = SettlementFile.objects.select_related("custodian").filter(pk=file_id).first()
    if sf is None:
        raise NotFound(f"Settlement file {file_id} does not exist.")
    audit_record(
        actor=actor,
        action="settlement_file.download",
        obj=sf,
        occurred_at=as_of,
        after={"checksum": sf.checksum, "version": sf.version},
    )
    return sf
