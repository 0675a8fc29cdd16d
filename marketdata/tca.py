"""Transaction cost analysis: the formulas, on plain numbers (no database), so they can be
checked on hand-computed examples.

Sign convention: a positive shortfall is a cost. A buy that paid more than the benchmark, or a
sell that received less, has a positive shortfall in basis points:
    buy:  (average price - benchmark) / benchmark * 10,000
    sell: (benchmark - average price) / benchmark * 10,000
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import ROUND_HALF_UP, Decimal

BPS = Decimal(10_000)
BUY_SIDES = frozenset({"BUY", "BUY_TO_COVER"})
TWO_PLACES = Decimal("0.01")


def shortfall_bps(
    *, side: str, average: Decimal | None, benchmark: Decimal | None
) -> Decimal | None:
    """Implementation shortfall of an execution at `average` against `benchmark`, in basis
    points, positive when it cost money; None when either is unknown (nothing filled, no
    benchmark)."""
    if average is None or not benchmark:
        return None
    diff = average - benchmark if side in BUY_SIDES else benchmark - average
    return (diff / benchmark * BPS).quantize(TWO_PLACES, ROUND_HALF_UP)


def vwap(trades: Iterable[tuple[Decimal, Decimal]]) -> Decimal | None:
    """Volume-weighted average price of (quantity, price) pairs."""
    volume = value = Decimal(0)
    for qty, price in trades:
        volume += qty
        value += qty * price
    return value / volume if volume else None


def mid(bid: Decimal | None, ask: Decimal | None) -> Decimal | None:
    if bid is None or ask is None:
        return None
    return (bid + ask) / 2


def weighted_bps(items: Iterable[tuple[Decimal | None, Decimal]]) -> Decimal | None:
    """The shortfall of a group: each (bps, notional) weighted by its executed notional, so
    a large order counts for what it traded. Items without a figure are left out."""
    total = weight = Decimal(0)
    for bps, notional in items:
        if bps is None or not notional:
            continue
        total += bps * notional
        weight += notional
    return (total / weight).quantize(TWO_PLACES, ROUND_HALF_UP) if weight else None


def rate(part: int | Decimal, whole: int | Decimal) -> Decimal | None:
    """A share as a percentage with two places (fill, reject and cancel rates)."""
    if not whole:
        return None
    return (Decimal(part) / Decimal(whole) * 100).quantize(TWO_PLACES, ROUND_HALF_UP)
