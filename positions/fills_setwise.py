"""Fills into positions and cash, the one write path of a booking: position_fills_apply
writes many at once (the slices of one execution, a block's shares) in a fixed number of round
trips; position_fill_apply is a batch of one."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from django.db import connection, transaction
from django.utils import timezone

from oms.bulk_rows import rows_insert, rows_update
from oms.errors import Conflict
from oms.models import Security
from oms.money import Terms

from . import broadcast
from .balances import rows_lock
from .fills import fill_check, fill_money, position_set
from .models import CashBalance, CashMovement, CashMovementKind, Position, PositionFill
from .replay import (
    PositionState,
    position_state_apply,
    positions_replay,
    signed_quantity,
)


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

    Reversals (quantity < 0) that come before the bookings (a booking day taken back, then
    booked again) are written in the same pass; a reversal after a booking starts a pass of
    its own (_runs). Runs inside the caller's transaction. Returns the ids of the bookings'
    ledger rows."""
    if not bookings:
        return []
    for b in bookings:
        fill_check(
            quantity=b.quantity,
            price=b.price,
            side=b.side,
            trade_date=b.trade_date,
            settle_date=b.settle_date,
        )
    ids: list[int] = []
    for reversals, booked in _runs(bookings):
        ids += _fills_apply(reversals=reversals, bookings=booked, as_of=as_of)
    return ids


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
    (quantity < 0) into the account's position and cash: a batch of one of
    position_fills_apply, so a booking is written one way whatever the number. `net_money`,
    when given, is the cash the booking moves (the allocation's money to the cent)."""
    booking = FillBooking(
        account_id=account_id,
        security_id=security_id,
        side=side,
        quantity=quantity,
        price=price,
        trade_date=trade_date,
        settle_date=settle_date,
        fill_ref=fill_ref,
        net_money=net_money,
    )
    with transaction.atomic():
        position_fills_apply(bookings=[booking], as_of=as_of)


def _runs(bookings: list[FillBooking]):
    """The bookings in order as runs of (reversals, then bookings): a reversal after a
    booking starts a run of its own, so it finds in the ledger what the runs before it
    wrote (a day booked, taken back and booked again in one call)."""
    start = 0
    for i in range(1, len(bookings) + 1):
        if i == len(bookings) or (bookings[i].quantity < 0 < bookings[i - 1].quantity):
            run = bookings[start:i]
            split = next((j for j, b in enumerate(run) if b.quantity > 0), len(run))
            yield run[:split], run[split:]
            start = i


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
    positions = rows_lock(
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
        replayed = positions_replay(
            [positions[(r.account_id, r.security_id)] for r in reversal_rows],
            factors={pk: t.price_factor for pk, t in terms.items()},
        )
        for key, state in replayed.items():
            position_set(positions[key], state)
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
        position_set(position, state)
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
    balances = rows_lock(CashBalance, "currency", {(r.account_id, r.currency) for r, _ in written})
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
