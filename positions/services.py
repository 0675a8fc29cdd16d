"""Writing holdings and cash. Every fill goes through position_fill_apply, every other cash
movement (commission, fees, corrections) through cash_adjust; both record a ledger row, so
positions_reconcile can recompute everything from the opening balances and the ledger."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from audit.services import audit_record, bulk_insert
from oms.bulk_rows import any_of, rows_insert, rows_update
from oms.db import retry_on_conflict
from oms.errors import Conflict, DomainError
from oms.fields import DECIMAL_PLACES, ZERO
from oms.models import Account, Security
from oms.money import ONE, Terms, money_round, notional
from orders.models import BUY_SIDES, SELL_SIDES

from . import broadcast
from .models import CashBalance, CashMovement, CashMovementKind, FxRate, Position, PositionFill

QUANTUM = Decimal(1).scaleb(-DECIMAL_PLACES)


def q8(value: Decimal) -> Decimal:
    """Round to the stored precision, the same way everywhere (incremental and replay)."""
    return value.quantize(QUANTUM, rounding=ROUND_HALF_EVEN)


# --- the arithmetic of one position -------------------------------------------------------


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


def fill_money(
    *, security: Security | Terms, quantity: Decimal, price: Decimal, settle_date: date, currency
) -> Decimal:
    """The money of a booking nobody priced to the cent (a fill booked directly, not through
    allocation): oms.money.notional of quantity at price, a bond's accrued interest to the
    settlement date included, rounded once (oms.money.money_round). Unsigned."""
    terms = security if isinstance(security, Terms) else Terms.of(security)
    n = notional(terms=terms, quantity=quantity, price=price, on=settle_date)
    return money_round(n.total, currency)


def signed_quantity(*, side: str, quantity: Decimal) -> Decimal:
    if side in BUY_SIDES:
        return quantity
    if side in SELL_SIDES:
        return -quantity
    raise DomainError(f"Unknown side {side!r}.", code="invalid_side")


# --- locking and get-or-create under concurrency -------------------------------------------


def _position_lock(*, account_id: int, security_id: int) -> Position:
    # ON CONFLICT DO NOTHING: two first fills on a new position both get here safely.
    Position.objects.bulk_create(
        [Position(account_id=account_id, security_id=security_id)], ignore_conflicts=True
    )
    return Position.objects.select_for_update(of=("self",)).get(
        account_id=account_id, security_id=security_id
    )


def _cash_lock(*, account_id: int, currency: str) -> CashBalance:
    CashBalance.objects.bulk_create(
        [CashBalance(account_id=account_id, currency=currency)], ignore_conflicts=True
    )
    return CashBalance.objects.select_for_update(of=("self",)).get(
        account_id=account_id, currency=currency
    )


def _cash_move(
    *,
    account_id: int,
    currency: str,
    amount: Decimal,
    settle_date: date,
    kind: str,
    ref: str,
    reason: str,
    as_of: datetime,
    fill: PositionFill | None = None,
) -> CashMovement:
    """Book money on a settlement date; it counts as settled at once if that date has come."""
    balance = _cash_lock(account_id=account_id, currency=currency)
    settled_now = settle_date <= as_of.date()
    movement = CashMovement.objects.create(
        account_id=account_id,
        currency=currency,
        amount=amount,
        settle_date=settle_date,
        kind=kind,
        ref=ref,
        reason=reason,
        fill=fill,
        is_settled=settled_now,
        booked_at=as_of,
    )
    balance.projected = F("projected") + amount
    update = ["projected", "updated_at"]
    if settled_now:
        balance.settled = F("settled") + amount
        update.append("settled")
    balance.save(update_fields=update)
    return movement


# --- the write path of every fill ----------------------------------------------------------


def position_fill_apply(
    *,
    account_id: int,
    security_id: int,
    side: str,
    quantity: Decimal,
    price: Decimal,
    trade_date: date,
    settle_date: date,
    fill_ref: str,
    as_of: datetime,
    net_money: Decimal | None = None,
) -> None:
    """Book a fill (quantity > 0) or reverse an earlier booking of that size at that price
    (quantity < 0) into the account's position and cash. `net_money`, when given, is the cash
    the booking moves (the allocation's money to the cent); otherwise quantity x price.

    Runs inside the caller's transaction (allocation, in the FIX callback); locks the position
    row, then the cash row. Gross money moves projected cash on settle_date.
    """
    _fill_check(
        quantity=quantity, price=price, side=side, trade_date=trade_date, settle_date=settle_date
    )
    with transaction.atomic():
        position = _position_lock(account_id=account_id, security_id=security_id)
        seq = (
            PositionFill.objects.filter(
                account_id=account_id, security_id=security_id, fill_ref=fill_ref
            ).count()
            + 1
        )
        if quantity > 0:
            _book(
                position,
                side,
                quantity,
                price,
                trade_date,
                settle_date,
                fill_ref,
                seq,
                as_of,
                net_money=net_money,
            )
        else:
            _reverse(position, side, -quantity, price, fill_ref, seq, as_of)
    broadcast.position_changed_on_commit(account_id)


@dataclass(frozen=True)
class FillBooking:
    """One booking for position_fills_apply: what position_fill_apply takes, plus the
    security's currency when the caller has it at hand (saves reading it again)."""

    account_id: int
    security_id: int
    side: str
    quantity: Decimal
    price: Decimal
    trade_date: date
    settle_date: date
    fill_ref: str
    currency: str = ""
    # The cash it moves, when the caller has it to the cent; else oms.money.notional of
    # quantity at price (a bond's accrued interest to settle_date), rounded to the cent.
    net_money: Decimal | None = None
    # The security's conventions (oms.money.Terms), when the caller has them (saves a read).
    terms: Terms | None = None


def position_fills_apply(*, bookings: list[FillBooking], as_of: datetime) -> list[int]:
    """position_fill_apply for several bookings at once (the slices of one execution, a
    block's shares), with the same ledger rows, cash movements and balances as calling it once
    per booking in this order, but a fixed number of round trips: positions and cash rows are
    locked in one statement each (pk order), and rows are written with one INSERT or UPDATE
    per table.

    Reversals (quantity < 0) that come before every booking (a booking day taken back, then
    booked again) go the same way (_fills_apply); a reversal after a booking goes one booking
    at a time (_fills_apply_with_reversals).
    Runs inside the caller's transaction. Returns the ids of the bookings' ledger rows."""
    if not bookings:
        return []
    for b in bookings:
        _fill_check(
            quantity=b.quantity,
            price=b.price,
            side=b.side,
            trade_date=b.trade_date,
            settle_date=b.settle_date,
        )
    split = next((i for i, b in enumerate(bookings) if b.quantity > 0), len(bookings))
    if any(b.quantity < 0 for b in bookings[split:]):
        _fills_apply_with_reversals(bookings, as_of=as_of)
        return []
    return _fills_apply(reversals=bookings[:split], bookings=bookings[split:], as_of=as_of)


# The rows of one call follow the accounts of a block (not the number of its fills): COPY
# pays its second round trip from this many on.
COPY_FROM = 20
# The ledger's and the cash ladder's columns, in the order rows_insert takes them.
_FILL_FIELDS = (
    "account_id",
    "security_id",
    "fill_ref",
    "seq",
    "side",
    "quantity",
    "price",
    "trade_date",
    "settle_date",
    "currency",
    "net_money",
    "reverses_id",
    "booked_at",
)
_MOVEMENT_FIELDS = (
    "account_id",
    "currency",
    "amount",
    "settle_date",
    "kind",
    "reason",
    "ref",
    "fill_id",
    "is_settled",
    "in_opening",
    "booked_at",
)


@dataclass
class _Row:
    """A ledger row to write (a booking or a reversal), with what its cash movement says."""

    account_id: int
    security_id: int
    fill_ref: str
    seq: int
    side: str
    quantity: Decimal
    price: Decimal
    trade_date: date
    settle_date: date
    currency: str
    net_money: Decimal
    reverses_id: int | None
    reason: str

    def values(self, as_of: datetime) -> tuple:
        return (
            self.account_id,
            self.security_id,
            self.fill_ref,
            self.seq,
            self.side,
            self.quantity,
            self.price,
            self.trade_date,
            self.settle_date,
            self.currency,
            self.net_money,
            self.reverses_id,
            as_of,
        )


def _fills_apply(
    *, reversals: list[FillBooking], bookings: list[FillBooking], as_of: datetime
) -> list[int]:
    """The reversals, then the bookings, set-wise. Each reversal takes back the latest
    booking of its size and price under its reference that nothing has reversed yet (a
    Conflict if there is none), with a ledger row and a cash movement undoing it; a position
    with reversals is then where a replay of its ledger puts it (replayed once, not once per
    reversal), and the bookings apply on top. The rows go in as values (rows_insert), not
    model instances: a wide block books thousands. Returns the bookings' ledger ids."""
    everything = [*reversals, *bookings]
    positions = _rows_lock(
        Position, "security_id", {(b.account_id, b.security_id) for b in everything}
    )
    seen = _fills_counted(everything)
    terms = _terms(everything)
    reversal_rows = _reversal_rows(reversals, seen) if reversals else []
    reversal_ids = rows_insert(
        PositionFill, _FILL_FIELDS, [r.values(as_of) for r in reversal_rows], copy_from=COPY_FROM
    )
    if reversal_rows:
        # Exact undo: each position becomes what it would be had those bookings never happened.
        replayed = _positions_replay(
            [positions[(r.account_id, r.security_id)] for r in reversal_rows],
            factors={pk: t.price_factor for pk, t in terms.items()},
        )
        for key, state in replayed.items():
            _position_set(positions[key], state)
    currencies = _currencies(bookings) if bookings else {}
    rows: list[_Row] = []
    for b in bookings:
        key = (b.account_id, b.security_id, b.fill_ref)
        seen[key] = seen.get(key, 0) + 1
        delta = signed_quantity(side=b.side, quantity=b.quantity)
        rows.append(
            _Row(
                account_id=b.account_id,
                security_id=b.security_id,
                fill_ref=b.fill_ref,
                seq=seen[key],
                side=b.side,
                quantity=b.quantity,
                price=b.price,
                trade_date=b.trade_date,
                settle_date=b.settle_date,
                currency=currencies[b.security_id],
                net_money=(
                    _signed_money(b, terms[b.security_id], currencies[b.security_id])
                    if b.net_money is None
                    else b.net_money
                ),
                reverses_id=None,
                reason=f"{b.side} {b.quantity} @ {b.price}",
            )
        )
        position = positions[(b.account_id, b.security_id)]
        state = position_state_apply(
            PositionState(
                position.quantity,
                position.cost_basis,
                position.realized_pnl,
                terms[b.security_id].price_factor,
            ),
            delta=delta,
            price=b.price,
        )
        _position_set(position, state)
    fill_ids = rows_insert(
        PositionFill, _FILL_FIELDS, [r.values(as_of) for r in rows], copy_from=COPY_FROM
    )
    now = timezone.now()
    for position in positions.values():
        position.updated_at = now
    rows_update(
        list(positions.values()),
        ["quantity", "avg_cost", "cost_basis", "realized_pnl", "updated_at"],
    )
    written = [*zip(reversal_rows, reversal_ids, strict=True), *zip(rows, fill_ids, strict=True)]
    balances = _rows_lock(CashBalance, "currency", {(r.account_id, r.currency) for r, _ in written})
    settled_by = as_of.date()
    movements = []
    for row, fill_id in written:
        settled_now = row.settle_date <= settled_by
        movements.append(
            (
                row.account_id,
                row.currency,
                row.net_money,
                row.settle_date,
                CashMovementKind.TRADE if row.quantity > 0 else CashMovementKind.TRADE_REVERSAL,
                row.reason,
                row.fill_ref,
                fill_id,
                settled_now,
                False,
                as_of,
            )
        )
        # The rows are locked and were read under the lock: adding here is what F() + amount
        # would do in the database.
        balance = balances[(row.account_id, row.currency)]
        balance.projected += row.net_money
        if settled_now:
            balance.settled += row.net_money
        balance.updated_at = now
    rows_insert(CashMovement, _MOVEMENT_FIELDS, movements, copy_from=COPY_FROM)
    rows_update(list(balances.values()), ["projected", "settled", "updated_at"])
    for account_id in sorted({b.account_id for b in everything}):
        broadcast.position_changed_on_commit(account_id)
    return fill_ids


def _reversal_rows(reversals: list[FillBooking], seen: dict[tuple, int]) -> list[_Row]:
    """The ledger rows of reversals in order (`seen` counts the rows under each reference),
    each taking back the latest open booking of its size and price."""
    open_bookings: dict[tuple, list[_Open]] = {}
    for row in _open_bookings({(b.account_id, b.security_id, b.fill_ref) for b in reversals}):
        open_bookings.setdefault(row.key, []).append(row)  # latest first
    rows: list[_Row] = []
    for b in reversals:
        quantity = -b.quantity
        candidates = open_bookings.get((b.account_id, b.security_id, b.fill_ref), [])
        at = next(
            (
                i
                for i, f in enumerate(candidates)
                if f.side == b.side and f.quantity == quantity and f.price == b.price
            ),
            None,
        )
        if at is None:
            raise Conflict(
                f"No booking of {b.side} {quantity} @ {b.price} under {b.fill_ref!r} is left "
                "to reverse.",
                code="nothing_to_reverse",
            )
        original = candidates.pop(at)
        key = (b.account_id, b.security_id, b.fill_ref)
        seen[key] = seen.get(key, 0) + 1
        rows.append(
            _Row(
                account_id=b.account_id,
                security_id=b.security_id,
                fill_ref=b.fill_ref,
                seq=seen[key],
                side=b.side,
                quantity=-quantity,
                price=b.price,
                trade_date=original.trade_date,
                settle_date=original.settle_date,
                currency=original.currency,
                net_money=-original.net_money,
                reverses_id=original.id,
                reason=f"reverses {original.fill_ref}#{original.seq}",
            )
        )
    return rows


def _fills_apply_with_reversals(bookings: list[FillBooking], *, as_of: datetime) -> None:
    """Bookings and reversals in order, one at a time; a position that had a reversal is
    recomputed from its ledger once at the end rather than after each reversal (a day booked
    again reverses many bookings of the same positions)."""
    reversed_positions: dict[tuple[int, int], Position] = {}
    with transaction.atomic():
        for b in bookings:
            position = _position_lock(account_id=b.account_id, security_id=b.security_id)
            seq = (
                PositionFill.objects.filter(
                    account_id=b.account_id, security_id=b.security_id, fill_ref=b.fill_ref
                ).count()
                + 1
            )
            if b.quantity > 0:
                _book(
                    position,
                    b.side,
                    b.quantity,
                    b.price,
                    b.trade_date,
                    b.settle_date,
                    b.fill_ref,
                    seq,
                    as_of,
                    net_money=b.net_money,
                )
            else:
                _reverse(position, b.side, -b.quantity, b.price, b.fill_ref, seq, as_of, False)
                reversed_positions[(b.account_id, b.security_id)] = position
        for key in sorted(reversed_positions):
            position = _position_lock(account_id=key[0], security_id=key[1])
            _position_save(position, position_replay(position))
    for account_id in sorted({b.account_id for b in bookings}):
        broadcast.position_changed_on_commit(account_id)


@dataclass(frozen=True)
class _Open:
    """A booking (quantity > 0) of the ledger that no reversal points at."""

    id: int
    account_id: int
    security_id: int
    fill_ref: str
    seq: int
    side: str
    quantity: Decimal
    price: Decimal
    trade_date: date
    settle_date: date
    currency: str
    net_money: Decimal

    @property
    def key(self) -> tuple[int, int, str]:
        return (self.account_id, self.security_id, self.fill_ref)


def _open_bookings(keys: set[tuple[int, int, str]]) -> list[_Open]:
    """The open bookings under these (account, security, fill_ref) keys, latest first: one
    probe of the ledger's unique index per key (see _fills_counted)."""
    keys = sorted(keys)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT f.id, f.account_id, f.security_id, f.fill_ref, f.seq, f.side, f.quantity, "
            "f.price, f.trade_date, f.settle_date, f.currency, f.net_money "
            "FROM unnest(%s::bigint[], %s::bigint[], %s::text[]) AS k(account_id, security_id, "
            "fill_ref) JOIN positions_positionfill f ON f.account_id = k.account_id "
            "AND f.security_id = k.security_id AND f.fill_ref = k.fill_ref "
            "WHERE f.quantity > 0 AND NOT EXISTS "
            "(SELECT 1 FROM positions_positionfill r WHERE r.reverses_id = f.id) "
            "ORDER BY f.id DESC",
            [[k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys]],
        )
        return [_Open(*row) for row in cursor.fetchall()]


def _positions_replay(
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


def _fill_check(*, quantity, price, side, trade_date, settle_date) -> None:
    if quantity == 0:
        raise DomainError("A fill needs a non-zero quantity.", code="invalid_quantity")
    if price <= 0:
        raise DomainError("A fill needs a positive price.", code="invalid_price")
    if settle_date < trade_date:
        raise DomainError("Settlement cannot precede the trade.", code="invalid_settle_date")
    signed_quantity(side=side, quantity=Decimal(1))  # validates side


def _rows_lock(model, second: str, keys: set[tuple]) -> dict[tuple, Any]:
    """Get-or-create and lock the Position or CashBalance rows of (account_id, `second`)
    keys, in pk order: one SELECT ... FOR UPDATE when they all exist (the usual case)."""

    def select(wanted: set[tuple]) -> dict[tuple, Any]:
        by_second: dict[Any, list[int]] = {}
        for account_id, other in wanted:
            by_second.setdefault(other, []).append(account_id)
        condition = Q()
        for other, account_ids in by_second.items():
            # One array parameter, not a placeholder per account (any_of): a wide block's
            # thousands of accounts.
            condition |= Q(any_of(model, "account_id", sorted(account_ids)), **{second: other})
        rows = model.objects.select_for_update(of=("self",)).filter(condition).order_by("pk")
        return {(r.account_id, getattr(r, second)): r for r in rows}

    found = select(keys)
    missing = keys - set(found)
    if missing:
        # ON CONFLICT DO NOTHING: two first fills on a new row both get here safely.
        model.objects.bulk_create(
            [model(account_id=a, **{second: o}) for a, o in sorted(missing)],
            ignore_conflicts=True,
        )
        found.update(select(missing))
    return found


def _terms(bookings: list[FillBooking]) -> dict[int, Terms]:
    """{security_id: its conventions} of the bookings' securities: as the caller gave them,
    else read in one query."""
    known = {b.security_id: b.terms for b in bookings if b.terms is not None}
    wanted = {b.security_id for b in bookings} - set(known)
    if wanted:
        known.update(
            (pk, Terms.from_values(*conventions))
            for pk, *conventions in Security.objects.filter(pk__in=wanted).values_list(
                "pk", *Terms.FIELDS
            )
        )
    return known


def _signed_money(b: FillBooking, terms: Terms, currency: str) -> Decimal:
    """The cash a booking without net_money moves: buys pay, sells receive."""
    money = fill_money(
        security=terms,
        quantity=b.quantity,
        price=b.price,
        settle_date=b.settle_date,
        currency=currency,
    )
    return -money if signed_quantity(side=b.side, quantity=b.quantity) > 0 else money


def _currencies(bookings: list[FillBooking]) -> dict[int, str]:
    known = {b.security_id: b.currency for b in bookings if b.currency}
    wanted = {b.security_id for b in bookings} - set(known)
    if wanted:
        known.update(Security.objects.filter(pk__in=wanted).values_list("pk", "currency"))
    return known


def _fills_counted(bookings: list[FillBooking]) -> dict[tuple, int]:
    """How many ledger rows each (account, security, fill_ref) has already: the next seq.

    One probe of the ledger's unique index per key, joined to the keys' arrays: a filter of
    IN lists on account, security and fill_ref makes PostgreSQL (before 17) walk the index
    for every combination of the three lists, millions of probes for a wide block."""
    keys = sorted({(b.account_id, b.security_id, b.fill_ref) for b in bookings})
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT f.account_id, f.security_id, f.fill_ref, count(*) "
            "FROM unnest(%s::bigint[], %s::bigint[], %s::text[]) AS k(account_id, security_id, "
            "fill_ref) JOIN positions_positionfill f ON f.account_id = k.account_id "
            "AND f.security_id = k.security_id AND f.fill_ref = k.fill_ref "
            "GROUP BY f.account_id, f.security_id, f.fill_ref",
            [[k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys]],
        )
        return {(a, s, r): n for a, s, r, n in cursor.fetchall()}


def _book(
    position, side, quantity, price, trade_date, settle_date, fill_ref, seq, as_of, net_money=None
):
    security = Security.objects.get(pk=position.security_id)
    currency, terms = security.currency, Terms.of(security)
    delta = signed_quantity(side=side, quantity=quantity)
    if net_money is None:
        money = fill_money(
            security=terms,
            quantity=quantity,
            price=price,
            settle_date=settle_date,
            currency=currency,
        )
        net_money = -money if delta > 0 else money
    fill = PositionFill.objects.create(
        account_id=position.account_id,
        security_id=position.security_id,
        fill_ref=fill_ref,
        seq=seq,
        side=side,
        quantity=quantity,
        price=price,
        trade_date=trade_date,
        settle_date=settle_date,
        currency=currency,
        net_money=net_money,
        booked_at=as_of,
    )
    state = position_state_apply(
        PositionState(
            position.quantity, position.cost_basis, position.realized_pnl, terms.price_factor
        ),
        delta=delta,
        price=price,
    )
    _position_save(position, state)
    _cash_move(
        account_id=position.account_id,
        currency=currency,
        amount=net_money,
        settle_date=settle_date,
        kind=CashMovementKind.TRADE,
        ref=fill_ref,
        reason=f"{side} {quantity} @ {price}",
        as_of=as_of,
        fill=fill,
    )


def _reverse(position, side, quantity, price, fill_ref, seq, as_of, replay=True):
    original = (
        PositionFill.objects.filter(
            account_id=position.account_id,
            security_id=position.security_id,
            fill_ref=fill_ref,
            side=side,
            quantity=quantity,
            price=price,
            reversed_by__isnull=True,
        )
        .order_by("-id")
        .first()
    )
    if original is None:
        raise Conflict(
            f"No booking of {side} {quantity} @ {price} under {fill_ref!r} is left to reverse.",
            code="nothing_to_reverse",
        )
    reversal = PositionFill.objects.create(
        account_id=position.account_id,
        security_id=position.security_id,
        fill_ref=fill_ref,
        seq=seq,
        side=side,
        quantity=-quantity,
        price=price,
        trade_date=original.trade_date,
        settle_date=original.settle_date,
        currency=original.currency,
        net_money=-original.net_money,
        reverses=original,
        booked_at=as_of,
    )
    # Exact undo: the position becomes what it would be had the booking never happened (the
    # caller replays once itself when it reverses many bookings of one position).
    if replay:
        _position_save(position, position_replay(position))
    _cash_move(
        account_id=position.account_id,
        currency=original.currency,
        amount=-original.net_money,
        settle_date=original.settle_date,
        kind=CashMovementKind.TRADE_REVERSAL,
        ref=fill_ref,
        reason=f"reverses {original.fill_ref}#{original.seq}",
        as_of=as_of,
        fill=reversal,
    )


def _position_set(position: Position, state: PositionState) -> None:
    position.quantity = state.quantity
    position.avg_cost = state.avg_cost
    position.cost_basis = state.cost_basis
    position.realized_pnl = state.realized_pnl


def _position_save(position: Position, state: PositionState) -> None:
    _position_set(position, state)
    position.save(
        update_fields=["quantity", "avg_cost", "cost_basis", "realized_pnl", "updated_at"]
    )


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


# --- cash ----------------------------------------------------------------------------------


def cash_adjust(
    *,
    account_id: int,
    currency: str,
    amount: Decimal,
    settle_date: date,
    reason: str,
    ref: str,
    as_of: datetime,
) -> None:
    """Book commission, fees or a correction (signed: negative takes cash out)."""
    if amount == 0:
        return
    if not (len(currency) == 3 and currency.isalpha() and currency.isupper()):
        raise DomainError(f"{currency!r} is not an ISO currency code.", code="invalid_currency")
    with transaction.atomic():
        _cash_move(
            account_id=account_id,
            currency=currency,
            amount=amount,
            settle_date=settle_date,
            kind=CashMovementKind.ADJUSTMENT,
            ref=ref,
            reason=reason,
            as_of=as_of,
        )
    broadcast.position_changed_on_commit(account_id)


@dataclass(frozen=True)
class CashAdjustment:
    """One cash_adjust for cash_adjust_many."""

    account_id: int
    currency: str
    amount: Decimal
    settle_date: date
    reason: str
    ref: str


def cash_adjust_many(*, adjustments: list[CashAdjustment], as_of: datetime) -> None:
    """cash_adjust for several adjustments (a block's commission and fees, one per account),
    with the same movements and balances as calling it once for each in this order: the
    balances locked in one statement (pk order), the movements written with one COPY, the
    balances with one UPDATE. Runs inside the caller's transaction."""
    adjustments = [a for a in adjustments if a.amount != 0]
    for a in adjustments:
        if not (len(a.currency) == 3 and a.currency.isalpha() and a.currency.isupper()):
            raise DomainError(
                f"{a.currency!r} is not an ISO currency code.", code="invalid_currency"
            )
    if not adjustments:
        return
    balances = _rows_lock(
        CashBalance, "currency", {(a.account_id, a.currency) for a in adjustments}
    )
    settled_by = as_of.date()
    now = timezone.now()
    movements = []
    for a in adjustments:
        settled_now = a.settle_date <= settled_by
        movements.append(
            CashMovement(
                account_id=a.account_id,
                currency=a.currency,
                amount=a.amount,
                settle_date=a.settle_date,
                kind=CashMovementKind.ADJUSTMENT,
                ref=a.ref,
                reason=a.reason,
                is_settled=settled_now,
                booked_at=as_of,
            )
        )
        balance = balances[(a.account_id, a.currency)]
        balance.projected += a.amount
        if settled_now:
            balance.settled += a.amount
        balance.updated_at = now
    bulk_insert(movements)
    rows_update(list(balances.values()), ["projected", "settled", "updated_at"])
    for account_id in sorted({a.account_id for a in adjustments}):
        broadcast.position_changed_on_commit(account_id)


def cash_settle_due(*, as_of: datetime) -> int:
    """Move every booked movement whose settlement date has come into settled cash.
    Run at the start of each day (positions_settle); returns how many movements settled."""
    settled = 0
    with transaction.atomic():
        due = (
            CashMovement.objects.filter(is_settled=False, settle_date__lte=as_of.date())
            .values_list("account_id", "currency")
            .distinct()
        )
        for account_id, currency in sorted(set(due)):
            balance = _cash_lock(account_id=account_id, currency=currency)
            rows = CashMovement.objects.select_for_update().filter(
                account_id=account_id,
                currency=currency,
                is_settled=False,
                settle_date__lte=as_of.date(),
            )
            total = sum((m.amount for m in rows), ZERO)
            count = rows.update(is_settled=True)
            balance.settled = F("settled") + total
            balance.save(update_fields=["settled", "updated_at"])
            settled += count
            broadcast.position_changed_on_commit(account_id)
    return settled


# --- FX rates ------------------------------------------------------------------------------


def fx_rate_set(*, base: str, quote: str, rate: Decimal, as_of_date: date) -> FxRate:
    if rate <= 0:
        raise DomainError("An FX rate must be positive.", code="invalid_rate")
    obj, _ = FxRate.objects.update_or_create(
        base=base, quote=quote, as_of_date=as_of_date, defaults={"rate": rate}
    )
    return obj


# --- start of day --------------------------------------------------------------------------


@dataclass(frozen=True)
class OpeningPosition:
    account: Account
    security: Security
    quantity: Decimal
    avg_cost: Decimal


@dataclass(frozen=True)
class OpeningCash:
    account: Account
    currency: str
    amount: Decimal


def _last_fill_id() -> int:
    return PositionFill.objects.order_by("-id").values_list("id", flat=True).first() or 0


@retry_on_conflict
def opening_balances_load(
    *,
    positions: list[OpeningPosition],
    cash: list[OpeningCash],
    replace: bool = False,
    actor=None,
    source: str = "",
) -> tuple[int, int]:
    """Set start-of-day positions and cash. Without `replace`, existing rows are left alone
    (so loading the demo twice changes nothing). With it, the loaded figures become the new
    opening balance: bookings made before the load count as included in it (the custodian's
    file already reflects them), projected cash keeps the movements still to settle."""
    created = 0
    last_fill = _last_fill_id()
    for item in sorted(positions, key=lambda p: (p.account.pk, p.security.pk)):
        state = PositionState.opening(
            quantity=item.quantity,
            avg_cost=item.avg_cost,
            factor=Terms.of(item.security).price_factor,
        )
        values = {
            "quantity": item.quantity,
            "avg_cost": state.avg_cost,
            "cost_basis": state.cost_basis,
            "realized_pnl": ZERO,
            "opening_quantity": item.quantity,
            "opening_avg_cost": item.avg_cost,
            "opening_ledger_id": last_fill,
        }
        if replace:
            position = _position_lock(account_id=item.account.pk, security_id=item.security.pk)
            for name, value in values.items():
                setattr(position, name, value)
            position.save()
        else:
            _, was_created = Position.objects.get_or_create(
                account=item.account, security=item.security, defaults=values
            )
            created += was_created
    cash_created = 0
    for item in sorted(cash, key=lambda c: (c.account.pk, c.currency)):
        if replace:
            balance = _cash_lock(account_id=item.account.pk, currency=item.currency)
            pending = sum(
                (
                    m.amount
                    for m in CashMovement.objects.filter(
                        account_id=item.account.pk, currency=item.currency, is_settled=False
                    )
                ),
                ZERO,
            )
            # The custodian's settled figure already holds every settled movement; movements
            # still to settle stay on the ladder on top of it.
            CashMovement.objects.filter(
                account_id=item.account.pk, currency=item.currency, is_settled=True
            ).update(in_opening=True)
            balance.settled = item.amount
            balance.opening_settled = item.amount
            balance.projected = item.amount + pending
            balance.save()
        else:
            _, was_created = CashBalance.objects.get_or_create(
                account=item.account,
                currency=item.currency,
                defaults={
                    "settled": item.amount,
                    "projected": item.amount,
                    "opening_settled": item.amount,
                },
            )
            cash_created += was_created
    if actor is not None:
        audit_record(
            actor=actor,
            action="positions.opening_load",
            object_type="positions.opening",
            object_repr=source or "opening balances",
            after={
                "positions": len(positions),
                "cash": len(cash),
                "replace": replace,
                "source": source,
            },
        )
    for account_id in {p.account.pk for p in positions} | {c.account.pk for c in cash}:
        broadcast.position_changed_on_commit(account_id)
    return created, cash_created
