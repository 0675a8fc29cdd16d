"""Writing holdings and cash: the positions app's write surface for the other apps. Every fill
goes through position_fill_apply (or position_fills_apply for many), every other cash movement
(commission, fees, corrections) through cash_adjust; both record a ledger row, so
positions_reconcile can recompute everything from the opening balances and the ledger.

The work is done by one module per job, named here so callers need one import:
- positions.fills_setwise: fills booked, many at once (position_fills_apply, FillBooking) or
  one (position_fill_apply, a batch of one);
- positions.fills: a booking's checks, its money and a position's new state;
- positions.cash: cash adjustments, settling, FX rates;
- positions.opening: start-of-day positions and cash;
- positions.balances: the locked rows they all write through;
- positions.replay: a position's arithmetic and its replay from the ledger (reads, shared with
  positions.selectors)."""

from __future__ import annotations

from .cash import CashAdjustment, cash_adjust, cash_adjust_many, cash_settle_due, fx_rate_set
from .fills_setwise import FillBooking, position_fill_apply, position_fills_apply
from .opening import OpeningCash, OpeningPosition, opening_balances_load

__all__ = [
    "CashAdjustment",
    "FillBooking",
    "OpeningCash",
    "OpeningPosition",
    "cash_adjust",
    "cash_adjust_many",
    "cash_settle_due",
    "fx_rate_set",
    "opening_balances_load",
    "position_fill_apply",
    "position_fills_apply",
]
