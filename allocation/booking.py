"""Booking passes: a block's shares, order figures, positions and cash brought in line with its
live street fills and its orders' quantities now (blocks_book), with its reports for a narrow
block (blocks_book_with_reports), before its orders change (block_book_due), and by the booker
for the wide ones (bookings_due_book, each block in its own transaction)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime

from django.db import transaction
from django.db.models import F, Func, IntegerField

from oms.db import in_transaction
from orders.models import Block

from . import selectors
from .daybooks import DayBooks
from .days import booked_by_booker, day_book, day_finalise
from .models import AllocationPlan, BlockDay
from .plans import plans_locked
from .settlement_files import files_reissue

log = logging.getLogger(__name__)


def blocks_book(
    *, block_ids: Iterable[int], as_of: datetime, actor=None, lock_days: bool = True
) -> None:
    """Bring each block's shares, order figures, positions and cash in line with its live
    street fills and its orders' quantities now: once per block per batch of reports, whatever
    the number of fills in it. A day reopened by a late change is finalised again and the
    custodian files already written for its date get a new version. `lock_days=False`: the
    booker's pass, which leaves the days to the reports' applier (see DayBooks)."""
    dates_rebooked: set[date] = set()
    with transaction.atomic(savepoint=False):
        blocks = {
            b.pk: b
            for b in Block.objects.select_related("security", "broker")
            .filter(pk__in=set(block_ids))
            .order_by("pk")
        }
        plans = plans_locked(blocks, as_of=as_of)
        for block_id in sorted(blocks):
            books = DayBooks(
                block=blocks[block_id],
                plan=plans[block_id],
                as_of=as_of,
                actor=actor,
                lock_days=lock_days,
            )
            for day in books.days:
                if day.status == BlockDay.Status.OPEN:
                    day_book(books, day)
            books.flush()
            for day in books.days:
                # Reopened by a late change in this transaction (only then is an open day
                # past its first version): its trading is over, so it is final again at once.
                if day.status == BlockDay.Status.OPEN and day.version > 1:
                    day_finalise(books, day)
                    dates_rebooked.add(day.trade_date)
        for trade_date in sorted(dates_rebooked):
            files_reissue(trade_date=trade_date, as_of=as_of, actor=actor)


def block_book(*, block: Block, as_of: datetime, actor=None) -> None:
    blocks_book(block_ids=[block.pk], as_of=as_of, actor=actor)


def blocks_book_with_reports(*, block_ids: Iterable[int], as_of: datetime) -> list[int]:
    """What the reports' applier calls once per run of trades: books the blocks of at most
    OMS_BOOKING_INLINE_MAX_ORDERS orders now, in the reports' transaction, and leaves the
    wider ones to the booker (bookings_due_book), so a report's cost does not grow with the
    block's width. Returns the blocks left to the booker."""
    ids = sorted(set(block_ids))
    if not ids:
        return []
    widths = dict(
        AllocationPlan.objects.filter(block_id__in=ids)
        .annotate(
            width=Func(F("lines"), function="jsonb_array_length", output_field=IntegerField())
        )
        .values_list("block_id", "width")
    )
    wide = [pk for pk in ids if booked_by_booker(widths.get(pk, 0))]
    narrow = sorted(set(ids) - set(wide))
    if narrow:
        blocks_book(block_ids=narrow, as_of=as_of)
    return wide


def block_book_due(*, block: Block, as_of: datetime) -> None:
    """Book what the block executed and its orders do not hold yet, before something changes
    its orders (a replace or cancel acknowledged): the executions before the change are
    shared by the orders as they were."""
    if selectors.blocks_booking_due(block_ids=[block.pk]):
        blocks_book(block_ids=[block.pk], as_of=as_of)


def failure_message(exc: Exception) -> str:
    """What a person in Operations reads of a booking that failed: a domain error's message,
    else the exception's type and text."""
    return getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"


@dataclass
class BookingPassOutcome:
    booked: list[int]
    failed: list[tuple[int, str]]


def bookings_due_book(*, as_of: datetime) -> BookingPassOutcome:
    """The booker: every block whose executions are not all booked (a wide block's, left by
    the reports' applier) is booked, each in its own transaction, once however many reports
    came in since its last pass. A block another pass is booking is skipped; one that fails
    goes to the exceptions list (kind booking_failed) and the others go on."""
    from oms.services import exception_open, exceptions_resolve_for

    outcome = BookingPassOutcome([], [])
    for block_id in selectors.blocks_booking_due():
        ref = f"block:{block_id}:booking"

        def book(block_id: int = block_id) -> bool:
            plan = (
                AllocationPlan.objects.select_for_update(skip_locked=True)
                .filter(block_id=block_id)
                .first()
            )
            if plan is None:
                return False  # another pass holds it
            blocks_book(block_ids=[block_id], as_of=as_of, lock_days=False)
            return True

        try:
            booked = in_transaction(book, durable=True)
        except Exception as exc:  # one failing block must not hold back the others
            log.exception("booking block %s failed", block_id)
            message = failure_message(exc)
            outcome.failed.append((block_id, message))
            exception_open(
                kind="booking_failed",
                ref=ref,
                summary=f"Block {block_id}: its executions could not be booked to its "
                f"orders: {message}",
                detail={"block": block_id, "error": message},
                source="allocation",
                block_id=block_id,
                as_of=as_of,
            )
            continue
        if booked:
            outcome.booked.append(block_id)
            exceptions_resolve_for(
                kind="booking_failed", ref=ref, note="booked by the booker", as_of=as_of
            )
    return outcome
