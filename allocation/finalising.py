"""A block's trading days closed: finalised one at a time (allocation_day_finalise), every open
day of a block (the Operations page's button), every day whose trading is over (the after-close
job, allocations_finalise_due); and an open day re-split by hand by Operations
(allocation_adjust). Each is its own transaction."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from django.db import transaction

from audit.services import audit_record
from oms.db import retry_on_conflict
from oms.errors import Conflict, DomainError, NotFound
from orders.models import Block

from .booking import failure_message
from .daybooks import ZERO, DayBooks
from .days import day_book, day_finalisable, day_finalise
from .models import Allocation, AllocationPlan, BlockDay, OrderShare

log = logging.getLogger(__name__)


@retry_on_conflict
def allocation_day_finalise(
    *, block_id: int, trade_date: date, as_of: datetime, actor=None
) -> list[Allocation]:
    """Finalise one trading day of a block: its trading is over (the block is done, or the
    date is past), so its allocations are fixed at the day's average price."""
    block = Block.objects.select_for_update(of=("self",)).select_related("security", "broker")
    block = block.filter(pk=block_id).first()
    if block is None:
        raise NotFound(f"Block {block_id} does not exist.")
    plan = AllocationPlan.objects.select_for_update().filter(block_id=block_id).first()
    if plan is None:
        raise NotFound(f"Block {block_id} has no allocation plan (it was never routed).")
    books = DayBooks(block=block, plan=plan, as_of=as_of, actor=actor)
    day = next((d for d in books.days if d.trade_date == trade_date), None)
    if day is None:
        raise NotFound(f"Block {block_id} did not trade on {trade_date}.")
    if day.status == BlockDay.Status.FINALISED:
        raise Conflict(
            f"Block {block_id} on {trade_date} is finalised already.", code="day_finalised"
        )
    if not day_finalisable(day, block, as_of):
        raise Conflict(
            f"Block {block_id} is {block.status} and {trade_date} is today: it is finalised "
            "once it is done or the day is over.",
            code="block_not_done",
        )
    day_book(books, day)
    books.flush()
    return day_finalise(books, day)


def allocation_finalise(*, block: Block, as_of: datetime, actor=None) -> list[Allocation]:
    """Finalise every open trading day of a block (the Operations page's button)."""
    with transaction.atomic():
        days = list(
            BlockDay.objects.filter(block_id=block.pk, status=BlockDay.Status.OPEN)
            .order_by("trade_date")
            .values_list("trade_date", flat=True)
        )
        if not days:
            raise Conflict(f"Block {block.pk} has no open trading day.", code="nothing_to_finalise")
        allocations = []
        for trade_date in days:
            allocations += allocation_day_finalise(
                block_id=block.pk, trade_date=trade_date, as_of=as_of, actor=actor
            )
        return allocations


@dataclass
class FinaliseOutcome:
    finalised: list[tuple[int, date]]
    failed: list[tuple[int, date, str]]


def allocations_finalise_due(*, as_of: datetime, actor=None) -> FinaliseOutcome:
    """The after-close job: finalise every open trading day whose trading is over, each in its
    own transaction; a day that fails is reported in the exceptions list and the others go on.
    A day that succeeds later clears its exception."""
    from oms.services import exception_open, exceptions_resolve_for

    due = list(
        BlockDay.objects.filter(status=BlockDay.Status.OPEN)
        .select_related("block")
        .order_by("block_id", "trade_date")
    )
    outcome = FinaliseOutcome([], [])
    for day in due:
        if not day_finalisable(day, day.block, as_of):
            continue
        ref = f"block:{day.block_id}:{day.trade_date.isoformat()}"
        try:
            allocation_day_finalise(
                block_id=day.block_id, trade_date=day.trade_date, as_of=as_of, actor=actor
            )
        except Exception as exc:  # one failing day must not hold back the others
            log.exception("finalising block %s on %s failed", day.block_id, day.trade_date)
            message = failure_message(exc)
            outcome.failed.append((day.block_id, day.trade_date, message))
            exception_open(
                kind="booking_failed",
                ref=ref,
                summary=f"Block {day.block_id} on {day.trade_date} could not be finalised: "
                f"{message}",
                detail={"block": day.block_id, "trade_date": day.trade_date.isoformat()},
                source="allocation",
                block_id=day.block_id,
                as_of=as_of,
            )
            continue
        outcome.finalised.append((day.block_id, day.trade_date))
        exceptions_resolve_for(
            kind="booking_failed", ref=ref, note="finalised by the after-close job", as_of=as_of
        )
    return outcome


@retry_on_conflict
def allocation_adjust(
    *,
    block_id: int,
    trade_date: date,
    quantities: dict[int, Decimal],
    reason: str,
    actor,
    as_of: datetime,
) -> list[OrderShare]:
    """Operations re-splits an open trading day by hand: {order_id: new quantity}. The new
    split must add up to what the street executed that day; every share is booked again at
    the day's average price, and finalising keeps the split."""
    reason = (reason or "").strip()
    if not reason:
        raise DomainError("Give a reason for the adjustment.", code="reason_required")
    block = Block.objects.select_related("security", "broker").filter(pk=block_id).first()
    plan = AllocationPlan.objects.select_for_update().filter(block_id=block_id).first()
    if block is None or plan is None:
        raise NotFound(f"Block {block_id} has no allocation plan (it was never routed).")
    books = DayBooks(block=block, plan=plan, as_of=as_of, actor=actor)
    day = next((d for d in books.days if d.trade_date == trade_date), None)
    if day is None:
        raise NotFound(f"Block {block_id} did not trade on {trade_date}.")
    if day.status != BlockDay.Status.OPEN:
        raise Conflict(
            f"Block {block_id} on {trade_date} is finalised; it can no longer be adjusted.",
            code="allocation_finalised",
        )
    unknown = set(quantities) - set(books.order_ids)
    if unknown:
        raise DomainError(
            f"Orders {sorted(unknown)} are not in block {block_id}.", code="unknown_order"
        )
    capacity = books.capacity(day)
    targets = []
    for oid, cap in zip(books.order_ids, capacity, strict=True):
        target = quantities.get(oid, books.held(day, oid))
        if target < 0 or target > cap:
            raise DomainError(f"Order {oid} can take between 0 and {cap}.", code="invalid_quantity")
        targets.append(target)
    if sum(targets, ZERO) != day.executed:
        raise DomainError(
            f"The allocations add up to {sum(targets, ZERO)}, the block executed "
            f"{day.executed} on {trade_date}.",
            code="allocation_sum",
        )
    before = {str(oid): str(books.held(day, oid)) for oid in books.order_ids}
    books.rebook(day, targets, f"adjust:{block_id}:{trade_date:%Y%m%d}")
    books.flush()
    plan.adjusted = True
    plan.save(update_fields=["adjusted"])
    audit_record(
        actor=actor,
        action="allocation.adjust",
        obj=block,
        occurred_at=as_of,
        before=before,
        after={
            "trade_date": trade_date,
            "quantities": {
                str(oid): str(t) for oid, t in zip(books.order_ids, targets, strict=True)
            },
            "reason": reason,
        },
    )
    return [books.shares[(day.pk, oid)] for oid in books.order_ids if (day.pk, oid) in books.shares]
