"""The street's executions of a block on its trading days: recorded set-wise, once per
execution (street_fills_record), and busted (street_fill_bust). A change on a finalised day
reopens it; the caller books the blocks afterwards (allocation.booking.blocks_book)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from django.db import transaction

from audit.services import audit_record, bulk_insert
from oms.bulk_rows import rows_update
from oms.calendars import settlement_date
from oms.errors import DomainError
from orders.models import Block

from .days import day_reopen
from .models import AllocationPlan, BlockDay, StreetFill
from .plans import plans_locked


@dataclass(frozen=True)
class BlockFill:
    """One execution of a block (`block` locked by the caller, with its security loaded)."""

    block: Block
    execution_ref: str
    quantity: Decimal
    price: Decimal
    trade_date: date


def _days_locked(keys: set[tuple[int, date]], blocks: dict[int, Block], plans) -> dict:
    """Get-or-create and lock the BlockDay rows of (block id, trade date) keys, pk order."""
    if not keys:
        return {}
    block_ids = sorted({b for b, _ in keys})
    found = {
        (d.block_id, d.trade_date): d
        for d in BlockDay.objects.select_for_update()
        .filter(block_id__in=block_ids, trade_date__in={t for _, t in keys})
        .order_by("pk")
    }
    missing = sorted(keys - set(found))
    if missing:
        BlockDay.objects.bulk_create(
            [
                BlockDay(
                    plan=plans[b],
                    block_id=b,
                    trade_date=t,
                    settle_date=settlement_date(security=blocks[b].security, trade_date=t),
                )
                for b, t in missing
            ],
            ignore_conflicts=True,
        )
        found.update(
            {
                (d.block_id, d.trade_date): d
                for d in BlockDay.objects.select_for_update()
                .filter(block_id__in=block_ids, trade_date__in={t for _, t in missing})
                .order_by("pk")
            }
        )
    return {k: found[k] for k in keys}


def street_fills_record(*, fills: list[BlockFill], as_of: datetime) -> set[int]:
    """Record executions on their blocks' trading days, in one statement per table; a
    replayed execution_ref records nothing. Returns the blocks that changed, for the caller
    to book once each (blocks_book) when its batch is done. A fill dated on a day already
    finalised reopens that day (it is booked again, under its next version)."""
    for f in fills:
        if f.quantity <= 0 or f.price <= 0:
            raise DomainError("An execution needs a positive quantity and price.", code="invalid")
    if not fills:
        return set()
    with transaction.atomic(savepoint=False):
        blocks = {f.block.pk: f.block for f in fills}
        # Read, not locked: recording needs only the plans' keys, and the booker holds a wide
        # block's plan while it books (the day rows below are what recording locks).
        plans = {p.block_id: p for p in AllocationPlan.objects.filter(block_id__in=list(blocks))}
        missing = {pk: b for pk, b in blocks.items() if pk not in plans}
        if missing:
            plans.update(plans_locked(missing, as_of=as_of))
        seen = set(
            StreetFill.objects.filter(
                block_id__in=list(blocks), execution_ref__in=[f.execution_ref for f in fills]
            ).values_list("block_id", "execution_ref")
        )
        fresh = []
        for f in fills:
            if (f.block.pk, f.execution_ref) not in seen:
                seen.add((f.block.pk, f.execution_ref))
                fresh.append(f)
        days = _days_locked({(f.block.pk, f.trade_date) for f in fresh}, blocks, plans)
        rows = []
        for f in fresh:
            day = days[(f.block.pk, f.trade_date)]
            if day.status == BlockDay.Status.FINALISED:
                day_reopen(day, block=f.block, as_of=as_of, why=f"late fill {f.execution_ref}")
            day.executed += f.quantity
            day.value += f.quantity * f.price
            rows.append(
                StreetFill(
                    day=day,
                    block=f.block,
                    execution_ref=f.execution_ref,
                    quantity=f.quantity,
                    price=f.price,
                    booked_at=as_of,
                )
            )
        bulk_insert(rows)
        rows_update(list(days.values()), ["executed", "value"])
        return {f.block.pk for f in fresh}


def street_fill_bust(
    *, block: Block, execution_ref: str, as_of: datetime, actor=None
) -> date | None:
    """A bust (or the first half of a correction): the execution stops counting on its day.
    Returns that trade date, or None when there is nothing to bust (unknown, or busted
    before). The caller books the block (blocks_book) afterwards; a finalised day is reopened
    and booked again."""
    with transaction.atomic(savepoint=False):
        fill = (
            StreetFill.objects.select_for_update()
            .filter(block_id=block.pk, execution_ref=execution_ref)
            .first()
        )
        if fill is None or fill.busted_at is not None:
            return None
        day = BlockDay.objects.select_for_update().get(pk=fill.day_id)
        if day.status == BlockDay.Status.FINALISED:
            day_reopen(day, block=block, as_of=as_of, why=f"bust of {execution_ref}")
        fill.busted_at = as_of
        fill.save(update_fields=["busted_at"])
        day.executed -= fill.quantity
        day.value -= fill.quantity * fill.price
        day.save(update_fields=["executed", "value"])
        audit_record(
            actor=actor,
            action="allocation.bust",
            obj=block,
            occurred_at=as_of,
            after={
                "execution_ref": execution_ref,
                "quantity": fill.quantity,
                "price": fill.price,
                "trade_date": day.trade_date,
            },
        )
        return day.trade_date
