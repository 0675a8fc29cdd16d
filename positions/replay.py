"""A position's arithmetic and its replay from the ledger: PositionState (quantity, cost basis,
realized P&L) and how a signed fill changes it, and the ledger rows a recompute replays. Reads
only: the write paths (positions.fills, positions.fills_setwise, positions.opening) and the
reconciliation (positions.selectors.reconcile_differences) both use it, so a position is
computed one way whether it is booked or checked."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal

from django.db.models import Q

from oms.bulk_rows import any_of
from oms.errors import DomainError
from oms.fields import DECIMAL_PLACES, ZERO
from oms.models import Security
from oms.money import ONE, Terms
from orders.models import BUY_SIDES, SELL_SIDES

from .models import Position, PositionFill

QUANTUM = Decimal(1).scaleb(-DECIMAL_PLACES)


def q8(value: Decimal) -> Decimal:
    """Round to the stored precision, the same way everywhere (incremental and replay)."""
    return value.quantize(QUANTUM, rounding=ROUND_HALF_EVEN)


@dataclass
class PositionState:
    """Quantity, cost basis (signed like the quantity: what the open position cost, in money)
    and realized P&L (money). The basis is the primary figure, so the average cost never
    drifts by rounding: it is derived from it, in the security's quoted price.

    `factor` is money per unit of quantity per unit of price (oms.money.Terms.price_factor):
    1 for a share, 1/100 for a bond quoted per 100 of face, the multiplier of a contract. The
    basis is clean (a bond's accrued interest is cash paid and received, not its cost)."""

    quantity: Decimal = ZERO
    cost_basis: Decimal = ZERO
    realized_pnl: Decimal = ZERO
    factor: Decimal = ONE

    @property
    def avg_cost(self) -> Decimal:
        return abs(q8(self.cost_basis / self.quantity / self.factor)) if self.quantity else ZERO

    @classmethod
    def opening(
        cls, *, quantity: Decimal, avg_cost: Decimal, factor: Decimal = ONE
    ) -> PositionState:
        return cls(quantity, q8(quantity * avg_cost * factor), ZERO, factor)


def position_state_apply(state: PositionState, *, delta: Decimal, price: Decimal) -> PositionState:
    """Apply a signed quantity (buys positive, sells negative) at a price.

    Adding to a position (or opening one) adds its cost to the basis (weighted average cost);
    reducing it releases the closed share of the basis and realizes the difference from the
    proceeds (for a short, profit when bought back cheaper); crossing zero closes the old
    side and opens the rest at the fill price. Amounts are quantity x price x the state's
    factor (a bond's face per 100, a contract's multiplier).
    """
    qty, basis, realized, factor = (
        state.quantity,
        state.cost_basis,
        state.realized_pnl,
        state.factor,
    )
    unit = price * factor
    if qty == 0 or (qty > 0) == (delta > 0):
        return PositionState(qty + delta, q8(basis + delta * unit), realized, factor)
    closed = min(abs(delta), abs(qty))
    direction = 1 if qty > 0 else -1
    released = basis if closed == abs(qty) else q8(basis * closed / abs(qty))
    realized = q8(realized + direction * closed * unit - released)
    new_qty = qty + delta
    if new_qty == 0:
        return PositionState(ZERO, ZERO, realized, factor)
    if (new_qty > 0) != (qty > 0):
        return PositionState(new_qty, q8(new_qty * unit), realized, factor)
    return PositionState(new_qty, basis - released, realized, factor)


def price_factors(security_ids) -> dict[int, Decimal]:
    """{security_id: money per unit of quantity per unit of price} (oms.money.Terms), one
    query; 1 for what is priced per unit."""
    ids = sorted(set(security_ids))
    if not ids:
        return {}
    return {
        pk: Terms.from_values(*conventions).price_factor
        for pk, *conventions in Security.objects.filter(pk__in=ids).values_list("pk", *Terms.FIELDS)
    }


def signed_quantity(*, side: str, quantity: Decimal) -> Decimal:
    if side in BUY_SIDES:
        return quantity
    if side in SELL_SIDES:
        return -quantity
    raise DomainError(f"Unknown side {side!r}.", code="invalid_side")


def replay_rows(qs):
    """The ledger rows a recompute replays, from a PositionFill queryset: bookings nobody
    reversed, and reversals whose booking lies before the position's opening balance (that
    booking is inside the opening figure, so its reversal acts as the opposite trade).
    Yields (id, account_id, security_id, signed quantity, price, reverses_id) in booking order;
    the caller drops rows at or before each position's opening_ledger_id, and reversals whose
    booking is after it."""
    rows = (
        qs.filter(Q(quantity__gt=0, reversed_by__isnull=True) | Q(quantity__lt=0))
        .order_by("id")
        .values_list("id", "account_id", "security_id", "side", "quantity", "price", "reverses_id")
    )
    for fill_id, account_id, security_id, side, quantity, price, reverses_id in rows.iterator(
        chunk_size=5000
    ):
        yield (
            fill_id,
            account_id,
            security_id,
            signed_quantity(side=side, quantity=quantity),
            price,
            reverses_id,
        )


def replays(fill_id: int, reverses_id: int | None, opening_ledger_id: int) -> bool:
    if fill_id <= opening_ledger_id:
        return False
    return reverses_id is None or reverses_id <= opening_ledger_id


def position_replay(position: Position) -> PositionState:
    """The position recomputed from its opening balance and the ledger since, in booking
    order, as if every reversed booking had never happened."""
    state = PositionState.opening(
        quantity=position.opening_quantity,
        avg_cost=position.opening_avg_cost,
        factor=price_factors([position.security_id])[position.security_id],
    )
    rows = PositionFill.objects.filter(
        account_id=position.account_id,
        security_id=position.security_id,
        id__gt=position.opening_ledger_id,
    )
    for fill_id, _a, _s, delta, price, reverses_id in replay_rows(rows):
        if replays(fill_id, reverses_id, position.opening_ledger_id):
            state = position_state_apply(state, delta=delta, price=price)
    return state


def positions_replay(
    positions: list[Position], *, factors: dict[int, Decimal] | None = None
) -> dict[tuple[int, int], PositionState]:
    """position_replay for several positions, reading their ledgers in one query (and their
    securities' price factors in another, unless the caller gives them)."""
    if factors is None or any(p.security_id not in factors for p in positions):
        factors = price_factors(p.security_id for p in positions)
    states = {
        (p.account_id, p.security_id): PositionState.opening(
            quantity=p.opening_quantity,
            avg_cost=p.opening_avg_cost,
            factor=factors[p.security_id],
        )
        for p in positions
    }
    opening = {(p.account_id, p.security_id): p.opening_ledger_id for p in positions}
    first = min(opening.values())
    rows = PositionFill.objects.filter(
        any_of(PositionFill, "account_id", sorted({p.account_id for p in positions})),
        any_of(PositionFill, "security_id", sorted({p.security_id for p in positions})),
        id__gt=first,
    ).exclude(
        # A reversal of a booking after every position's opening replays nowhere (replays()).
        quantity__lt=0,
        reverses_id__gt=max(opening.values()),
    )
    for fill_id, account_id, security_id, delta, price, reverses_id in replay_rows(rows):
        key = (account_id, security_id)
        if key in states and replays(fill_id, reverses_id, opening[key]):
            states[key] = position_state_apply(states[key], delta=delta, price=price)
    return states
