"""The booking ledger: the allocation app's write surface for the other apps. A block's street
fills become each order's share per trade date, bookings into the accounts' positions and
cash, and at the end of each day one allocation per account at the day's average price with
its money to the cent; then the custodians' files.

Booking follows state, not events. `blocks_book` brings a block's shares and bookings in line
with its live street fills and its orders' current quantities; everything that changes either
records the change and calls it: a fill or a batch of fills (`street_fills_record`), a bust or
correction (`street_fill_bust`), an acknowledged replace or cancel, an internal cross. So a
single fill is a batch of one, an amended order never exceeds its new quantity, and a cancelled
order never receives another share: the split is pro rata to what each order may still take
(its current quantity, or what it holds once it is closed), with what it already holds on the
day as a floor.

Intraday, the shares move at the price of the executions they come from; when a day is
finalised, every account's shares are booked again as one allocation at the day's average
price, gross rounded to the currency's minor unit so the accounts add up exactly to the street
gross (oms.money.money_split places the residual cent), with commission and fees. A late bust,
correction or fill on a finalised day reverses that day's bookings and charges and books it
again under the next version (cancel and rebill), and a custodian file already written for the
date gets a new version that says what changed.

block-level functions run inside the caller's transaction (the FIX gateway has locked the
block); the others are top-level use cases with their own transaction.

The work is done by one module per job, named here so callers need one import:
- allocation.plans: the allocation plan (allocation_plan_fix);
- allocation.street_fills: the street's executions recorded and busted;
- allocation.booking: booking passes (blocks_book, blocks_book_with_reports, block_book_due,
  the booker's bookings_due_book);
- allocation.finalising: days finalised (one, a block's, the after-close job's) and adjusted;
- allocation.days: the steps of one trading day (book, finalise, reopen);
- allocation.daybooks: a block's booking state for a pass, written set-wise;
- allocation.settlement_files: the custodians' files written;
- allocation.settlement_content: what a file says (reads, shared with allocation.selectors)."""

from __future__ import annotations

from .booking import (
    BookingPassOutcome,
    block_book,
    block_book_due,
    blocks_book,
    blocks_book_with_reports,
    bookings_due_book,
)
from .days import day_finalisable
from .finalising import (
    FinaliseOutcome,
    allocation_adjust,
    allocation_day_finalise,
    allocation_finalise,
    allocations_finalise_due,
)
from .plans import allocation_plan_fix
from .settlement_content import settlement_file_content, settlement_rows
from .settlement_files import (
    settlement_file_download,
    settlement_file_generate,
    settlement_files_generate,
)
from .street_fills import BlockFill, street_fill_bust, street_fills_record

__all__ = [
    "BlockFill",
    "BookingPassOutcome",
    "FinaliseOutcome",
    "allocation_adjust",
    "allocation_day_finalise",
    "allocation_finalise",
    "allocation_plan_fix",
    "allocations_finalise_due",
    "block_book",
    "block_book_due",
    "blocks_book",
    "blocks_book_with_reports",
    "bookings_due_book",
    "day_finalisable",
    "settlement_file_content",
    "settlement_file_download",
    "settlement_file_generate",
    "settlement_files_generate",
    "settlement_rows",
    "street_fill_bust",
    "street_fills_record",
]
