"""The booking ledger: a block's street fills become each order's share per trade date,
bookings into the accounts' positions and cash, and at the end of each day one allocation per
account at the day's average price with its money to the cent; then the custodians' files.

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
block); the others are top-level use cases with their own transaction."""

from __future__ import annotations

import hashlib
import json
import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import TypeVar

from django.conf import settings
from django.db import connection, models, transaction
from django.db.models import F, Func, IntegerField

from audit.services import audit_record, bulk_insert
from fixgateway.allocinstr import allocation_instruction_enqueue
from oms.bulk_rows import rows_insert, rows_update
from oms.calendars import settlement_date
from oms.csvio import write_csv
from oms.db import in_transaction, retry_on_conflict
from oms.errors import Conflict, DomainError, NotFound
from oms.models import Custodian
from oms.money import Notional, Terms, money_round, money_split, notional_rounded
from orders import services as order_services
from orders.lifecycle import OrderStatus
from orders.models import SELL_SIDES, Block, Order
from positions import services as position_services

from . import selectors
from .allocator import pro_rata
from .fees import charges_for, fee_rules_in_force
from .models import (
    Allocation,
    AllocationPlan,
    BlockDay,
    Booking,
    OrderShare,
    SettlementFile,
    StreetFill,
)

log = logging.getLogger(__name__)
M = TypeVar("M", bound=models.Model)

PRICE_PLACES = Decimal("0.00000001")
VALUE_PLACES = Decimal(1).scaleb(-16)
ZERO = Decimal(0)
# A block in one of these has stopped executing: its days can be finalised.
DONE_STATUSES = frozenset(
    {
        Block.Status.FILLED,
        Block.Status.CANCELLED,
        Block.Status.DONE_FOR_DAY,
        Block.Status.EXPIRED,
        Block.Status.REJECTED,
    }
)
# An order in one of these takes no further shares: it keeps what it holds.
CLOSED_ORDERS = frozenset({OrderStatus.CANCELLED, OrderStatus.REJECTED, OrderStatus.EXPIRED})


# --- the plan ---------------------------------------------------------------------------------


def plan_lines(orders: Iterable[Order]) -> list[dict]:
    """The plan as the block and the audit trail show it: each order with its account and
    its quantity now."""
    return [
        {
            "order": o.pk,
            "account": o.account_id,
            "quantity": str(o.quantity.quantize(PRICE_PLACES)),
            # A closed order keeps the block quantity it had filled when it closed: a later
            # bust gives it back leaves the broker may fill again, and they are its own.
            **({"closed_with": str(o.cum_qty)} if o.status in CLOSED_ORDERS else {}),
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


def allocation_plan_fix(
    *, block: Block, actor, as_of: datetime, orders: list[Order] | None = None
) -> AllocationPlan:
    """Record which orders share the block (its orders now, or `orders` for a block made by
    an internal cross) and their quantities; called at routing and again whenever the broker
    acknowledges a replace or cancel, so the plan on the block follows the orders."""
    with transaction.atomic(savepoint=False):
        if orders is None:
            orders = list(Order.objects.filter(block_id=block.pk).order_by("pk"))
        plan = AllocationPlan.objects.select_for_update().filter(block_id=block.pk).first()
        if plan is not None and not orders:
            orders = list(
                Order.objects.filter(pk__in=[line["order"] for line in plan.lines]).order_by("pk")
            )
        if not orders:
            raise DomainError(f"Block {block.pk} has no orders to allocate to.", code="empty_block")
        if plan is not None:
            # Orders that left the block keep their place: they may hold shares of it.
            kept = {line["order"] for line in plan.lines} - {o.pk for o in orders}
            if kept:
                orders = [*orders, *Order.objects.filter(pk__in=kept)]
        lines = plan_lines(orders)
        if plan is not None:
            earlier = {
                line["order"]: Decimal(line["closed_with"])
                for line in plan.lines
                if "closed_with" in line
            }
            for line in lines:
                if line["order"] in earlier and "closed_with" in line:
                    kept = max(earlier[line["order"]], Decimal(line["closed_with"]))
                    line["closed_with"] = str(kept)
        digest = plan_hash_of(lines)
        before = None
        if plan is not None:
            if plan.plan_hash == digest:
                return plan
            before = {"plan_hash": plan.plan_hash, "lines": plan.lines}
            plan.lines, plan.plan_hash, plan.fixed_at = lines, digest, as_of
            plan.fixed_by = actor if getattr(actor, "pk", None) else None
            plan.save(update_fields=["lines", "plan_hash", "fixed_at", "fixed_by"])
        else:
            plan = AllocationPlan.objects.create(
                block=block,
                lines=lines,
                plan_hash=digest,
                rotation=_rotation_next(security_id=block.security_id),
                fixed_at=as_of,
                fixed_by=actor if getattr(actor, "pk", None) else None,
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
        return plan


def _plans_locked(blocks: dict[int, Block], *, as_of: datetime) -> dict[int, AllocationPlan]:
    plans = {
        p.block_id: p
        for p in AllocationPlan.objects.select_for_update()
        .filter(block_id__in=list(blocks))
        .order_by("pk")
    }
    for block_id in sorted(set(blocks) - set(plans)):
        # A block filled without going through block_route (a test): its plan is fixed from
        # the orders it has now.
        plans[block_id] = allocation_plan_fix(block=blocks[block_id], actor=None, as_of=as_of)
    return plans


# --- street fills -----------------------------------------------------------------------------


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
            plans.update(_plans_locked(missing, as_of=as_of))
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
                _day_reopen(day, block=f.block, as_of=as_of, why=f"late fill {f.execution_ref}")
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
            _day_reopen(day, block=block, as_of=as_of, why=f"bust of {execution_ref}")
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


# --- booking ----------------------------------------------------------------------------------


# A Booking's columns as _DayBooks gathers them for rows_insert.
BOOKING_FIELDS = (
    "day_id",
    "account_id",
    "order_id",
    "kind",
    "fill_ref",
    "quantity",
    "price",
    "net_money",
    "reverses_id",
    "booked_at",
)


class _DayBooks:
    """One block's days, shares and orders, locked, with what a booking pass writes gathered
    to be written set-wise."""

    def __init__(
        self, *, block: Block, plan: AllocationPlan, as_of: datetime, actor, lock_days: bool = True
    ) -> None:
        self.block, self.plan, self.as_of, self.actor = block, plan, as_of, actor
        self.security = block.security
        # How a quantity at a price becomes money (a bond: per 100 of face plus accrued
        # interest to the settlement date; a future: times its multiplier).
        self.terms = Terms.of(self.security)
        days = BlockDay.objects.filter(block_id=block.pk).order_by("trade_date")
        if lock_days:
            self.days = list(days.select_for_update())
        else:
            # The booker (bookings_due_book): the days are read, not locked, so the reports'
            # applier keeps recording executions on them meanwhile (what comes after this
            # read is booked by the next pass; the plan's lock keeps passes apart). A day
            # reopened by a late change is finalised again by this pass: that one is locked.
            self.days = list(days)
            reopened = [
                d.pk for d in self.days if d.status == BlockDay.Status.OPEN and d.version > 1
            ]
            if reopened:
                locked = {
                    d.pk: d
                    for d in BlockDay.objects.select_for_update()
                    .filter(pk__in=reopened)
                    .order_by("pk")
                }
                self.days = [locked.get(d.pk, d) for d in self.days]
        self.order_ids = sorted(line["order"] for line in plan.lines)
        self.closed_with = {
            line["order"]: Decimal(line["closed_with"])
            for line in plan.lines
            if "closed_with" in line
        }
        self.orders = {o.pk: o for o in order_services.orders_lock(order_ids=self.order_ids)}
        self.shares: dict[tuple[int, int], OrderShare] = {
            (s.day_id, s.order_id): s
            for s in OrderShare.objects.select_for_update().filter(day__in=self.days).order_by("pk")
        }
        self.order_fills: list[order_services.OrderFill] = []
        self.position_bookings: list[position_services.FillBooking] = []
        self.bookings: list[tuple] = []  # BOOKING_FIELDS
        self.new_shares: list[OrderShare] = []
        self.changed_shares: dict[int, OrderShare] = {}

    # - what each order may take

    def share(self, day: BlockDay, order_id: int) -> OrderShare:
        key = (day.pk, order_id)
        share = self.shares.get(key)
        if share is None:
            order = self.orders[order_id]
            share = OrderShare(day=day, order=order, account_id=order.account_id)
            self.shares[key] = share
            self.new_shares.append(share)
        return share

    def held(self, day: BlockDay, order_id: int) -> Decimal:
        share = self.shares.get((day.pk, order_id))
        return share.quantity if share else ZERO

    def capacity(self, day: BlockDay, *, late: bool = False) -> list[Decimal]:
        """What each order may hold on `day`: its quantity (or, closed, what it had filled when
        it closed) less what its other days hold. The later days count too: a day reopened by
        a late bust or correction is split again among orders whose later days are booked, and
        must not give an order more than it has left. `late`: a closed order may take up to its
        quantity too (fills the broker reports after confirming a cancel of the whole block)."""
        # One walk over the shares (not one per order and day): what each order holds on its
        # other days, and on every day.
        elsewhere: dict[int, Decimal] = defaultdict(Decimal)
        total: dict[int, Decimal] = defaultdict(Decimal)
        for (day_id, oid), share in self.shares.items():
            total[oid] += share.quantity
            if day_id != day.pk:
                elsewhere[oid] += share.quantity
        result = []
        for oid in self.order_ids:
            order = self.orders[oid]
            held = total.get(oid, ZERO)
            if order.status in CLOSED_ORDERS and not late:
                weight = max(held, self.closed_with.get(oid, ZERO))
            else:
                weight = max(order.quantity, held)
            result.append(max(weight - elsewhere.get(oid, ZERO), ZERO))
        return result

    def targets(self, day: BlockDay) -> list[Decimal]:
        if day.executed == 0:
            return [ZERO] * len(self.order_ids)
        capacity = self.capacity(day)
        if day.executed > sum(capacity, ZERO):
            # More than the open orders and what the closed ones had filled: the broker filled
            # after cancelling (a late fill). The closed orders take it, up to their quantity.
            capacity = self.capacity(day, late=True)
        if day.executed > sum(capacity, ZERO):
            raise Conflict(
                f"Block {self.block.pk} executed {day.executed} on {day.trade_date}; its orders "
                f"can take {sum(capacity, ZERO)}.",
                code="overfill",
            )
        weights = [c if c > 0 else ZERO for c in capacity]
        return pro_rata(
            weights=weights,
            executed=day.executed,
            lot=self.security.lot_size,
            rotation=self.plan.rotation,
            floors=[
                min(self.held(day, oid), c) for oid, c in zip(self.order_ids, weights, strict=True)
            ],
        )

    # - writing

    def _position(
        self, *, day, account_id, order_id, quantity, price, net_money, kind, ref, reverses=None
    ) -> None:
        """A booking of the ledger (as the values rows_insert writes: a wide block books
        thousands) and the position and cash booking it stands for."""
        self.bookings.append(
            (
                day.pk,
                account_id,
                order_id,
                kind,
                ref,
                quantity,
                price,
                net_money,
                reverses,
                self.as_of,
            )
        )
        self.position_bookings.append(
            position_services.FillBooking(
                account_id=account_id,
                security_id=self.security.pk,
                side=self.block.side,
                quantity=quantity,
                price=price,
                trade_date=day.trade_date,
                settle_date=day.settle_date,
                fill_ref=ref,
                currency=self.security.currency,
                net_money=net_money,
                terms=self.terms,
            )
        )

    def _cash(self, money: Notional) -> Decimal:
        """What booking `money` (to the minor unit) does to cash: buys pay the clean amount
        and the accrued interest, sells receive them."""
        return money.total if self.block.side in SELL_SIDES else -money.total

    def money(self, day: BlockDay, quantity: Decimal, value: Decimal) -> Notional:
        """`quantity` traded for `value` (quantity x price summed over its executions) as money
        to the minor unit: the clean amount and the accrued interest to the day's settlement
        date, each rounded once (oms.money.notional: the one place prices become money)."""
        return notional_rounded(
            terms=self.terms,
            quantity=quantity,
            value=value,
            on=day.settle_date,
            currency=self.security.currency,
        )

    def street_split(self, day: BlockDay, weights: list[Decimal]) -> list[Notional]:
        """The day's street money (its clean amount and accrued interest, each rounded once)
        split to the minor unit in proportion to `weights`: the parts add up to the street's
        figures exactly (oms.money.money_split)."""
        street = self.money(day, day.executed, day.value)
        currency = self.security.currency
        cleans = money_split(total=street.clean, weights=weights, currency=currency)
        accrued = (
            money_split(total=street.accrued, weights=weights, currency=currency)
            if street.accrued
            else [street.accrued] * len(weights)  # no coupon: nothing to split, wide or not
        )
        return [Notional(c, a) for c, a in zip(cleans, accrued, strict=True)]

    def _fill_booking(
        self,
        day: BlockDay,
        order_id: int,
        quantity: Decimal,
        value: Decimal,
        *,
        price: Decimal | None = None,
        net_money: Decimal | None = None,
    ):
        """The order's account books `quantity` worth `value` into its position and cash (at
        `price` and `net_money` when the caller has them to the cent already)."""
        self._position(
            day=day,
            account_id=self.orders[order_id].account_id,
            order_id=order_id,
            quantity=quantity,
            price=price if price is not None else (value / quantity).quantize(PRICE_PLACES),
            net_money=(
                net_money if net_money is not None else self._cash(self.money(day, quantity, value))
            ),
            kind=Booking.Kind.FILL,
            ref=f"B{self.block.pk}:{day.trade_date:%Y%m%d}:O{order_id}",
        )

    def give(self, day: BlockDay, order_id: int, quantity: Decimal, value: Decimal, ref: str):
        """Book `quantity` more shares worth `value` to the order on the day."""
        share = self.share(day, order_id)
        self.order_fills.append(
            order_services.OrderFill(
                order=self.orders[order_id],
                quantity=quantity,
                price=(value / quantity).quantize(PRICE_PLACES),
                exec_ref=ref,
                value=value,
            )
        )
        self._fill_booking(day, order_id, quantity, value)
        share.quantity += quantity
        share.value += value
        self.changed_shares[id(share)] = share

    def rebook(self, day: BlockDay, targets: list[Decimal], ref: str) -> None:
        """Book the day again from scratch: every live booking reversed, each order given its
        target at the day's average price."""
        self.reverse_live(day)
        values = _split_value(day.value, targets)
        if not day.executed:
            for oid, target, value in zip(self.order_ids, targets, values, strict=True):
                self.reprice(day, oid, target, value, ref)
            return
        # As finalising will: the average price, and the street gross split to the minor unit
        # (so an order alone in its account already holds its final booking).
        avg = (day.value / day.executed).quantize(PRICE_PLACES)
        grosses = self.street_split(day, targets)
        for oid, target, value, gross in zip(self.order_ids, targets, values, grosses, strict=True):
            self.reprice(day, oid, target, value, ref)
            if target:
                self._fill_booking(day, oid, target, value, price=avg, net_money=self._cash(gross))

    def reprice(self, day: BlockDay, order_id: int, quantity: Decimal, value: Decimal, ref: str):
        """Set the order's share of the day to `quantity` worth `value` (its positions are
        booked separately)."""
        share = self.share(day, order_id)
        dq, dv = quantity - share.quantity, value - share.value
        if dq == 0 and dv == 0:
            return
        self.order_fills.append(
            order_services.OrderFill(
                order=self.orders[order_id],
                quantity=dq,
                price=(value / quantity).quantize(PRICE_PLACES) if quantity else PRICE_PLACES,
                exec_ref=ref,
                value=dv,
            )
        )
        share.quantity, share.value = quantity, value
        self.changed_shares[id(share)] = share

    def live(self, day: BlockDay) -> list[tuple]:
        """The day's bookings nothing has reversed: (pk, account_id, order_id, quantity,
        price, net_money, fill_ref), in booking order. Flushes first: what is gathered is
        part of them."""
        self.flush()
        # The day is locked by the caller, so its bookings cannot change under us.
        return list(
            Booking.objects.filter(day=day, quantity__gt=0, reversed_by__isnull=True)
            .order_by("pk")
            .values_list(
                "pk", "account_id", "order_id", "quantity", "price", "net_money", "fill_ref"
            )
        )

    def reverse_live(
        self, day: BlockDay, *, live: list[tuple] | None = None, keep: frozenset[int] = frozenset()
    ) -> None:
        """Reverse every live booking of the day (positions and cash exactly undone), but
        those of the accounts in `keep`. The reversals are written by the next flush, before
        what is booked after them, so the positions and cash of a day booked again are written
        once (position_fills_apply takes reversals followed by bookings in one pass)."""
        if live is None:
            live = self.live(day)  # reversals need their originals in the ledger
        for pk, account_id, order_id, quantity, price, net_money, fill_ref in live:
            if account_id in keep:
                continue
            self._position(
                day=day,
                account_id=account_id,
                order_id=order_id,
                quantity=-quantity,
                price=price,
                net_money=-net_money,
                kind=Booking.Kind.REVERSAL,
                ref=fill_ref,
                reverses=pk,
            )

    def flush(self) -> None:
        """Write what is gathered: order figures, positions and cash, the ledger, shares."""
        if self.order_fills:
            order_services.orders_fill_apply_many(
                fills=self.order_fills, as_of=self.as_of, actor=self.actor, kind="fill"
            )
        if self.position_bookings:
            position_services.position_fills_apply(
                bookings=self.position_bookings, as_of=self.as_of
            )
        rows_insert(Booking, BOOKING_FIELDS, self.bookings, copy_from=COPY_FROM)
        _insert(self.new_shares)
        new = {id(s) for s in self.new_shares}
        changed = [s for key, s in self.changed_shares.items() if key not in new]
        if changed:
            rows_update(changed, ["quantity", "value"])
        self.order_fills, self.position_bookings, self.bookings = [], [], []
        self.new_shares, self.changed_shares = [], {}


# From this many rows on, an insert goes by COPY (audit.services.bulk_insert: the same rows
# and keys as bulk_create, without its cost per value on a wide block); below, one INSERT is
# one round trip where COPY takes two (the keys, then the data).
COPY_FROM = 20


def _insert(rows: list[M]) -> list[M]:
    if len(rows) >= COPY_FROM:
        return bulk_insert(rows)
    return type(rows[0]).objects.bulk_create(rows) if rows else rows


def _split_value(value: Decimal, quantities: list[Decimal]) -> list[Decimal]:
    """`value` in proportion to `quantities`, to 16 places, adding up to `value` exactly."""
    total = sum(quantities, ZERO)
    if total == 0:
        return [ZERO] * len(quantities)
    parts = [(value * q / total).quantize(VALUE_PLACES) for q in quantities]
    last = max(i for i, q in enumerate(quantities) if q)
    parts[last] += value - sum(parts, ZERO)
    return parts


def _day_book(books: _DayBooks, day: BlockDay) -> None:
    held_total = sum((books.held(day, oid) for oid in books.order_ids), ZERO)
    if books.plan.adjusted and held_total == day.executed:
        return  # Operations split this day by hand; nothing new came in since
    targets = books.targets(day)
    held = [books.held(day, oid) for oid in books.order_ids]
    deltas = [t - h for t, h in zip(targets, held, strict=True)]
    ref = f"book:{books.block.pk}:{day.trade_date:%Y%m%d}"
    if _booked_by_booker(len(books.order_ids)) and any(deltas) and any(held):
        # A wide block's day is booked again at its running average at every pass: each
        # account holds one live booking of the day (what finalising keeps), not one per pass.
        books.rebook(day, targets, ref)
        return
    if all(d >= 0 for d in deltas):
        if not any(deltas):
            return
        # The usual case: shares only grow, at the price of the executions not booked yet.
        booked_value = sum(
            (
                books.shares[(day.pk, oid)].value
                for oid in books.order_ids
                if (day.pk, oid) in books.shares
            ),
            ZERO,
        )
        values = _split_value(day.value - booked_value, deltas)
        for oid, delta, value in zip(books.order_ids, deltas, values, strict=True):
            if delta:
                books.give(day, oid, delta, value, ref)
        return
    # Shares taken back (a bust, a correction down): the day is booked again from scratch at
    # its average price, every share at the same price.
    books.rebook(day, targets, ref)


def _day_finalise(books: _DayBooks, day: BlockDay) -> list[Allocation]:
    """Every account's shares of the day as one allocation at the day's average price:
    gross to the minor unit (the accounts add up to the street gross), commission and fees by
    instrument and market, positions and cash booked again at that price."""
    block, security, as_of = books.block, books.security, books.as_of
    currency = security.currency
    ref = f"final:{block.pk}:{day.trade_date:%Y%m%d}:v{day.version}"
    live = books.live(day)
    allocations: list[Allocation] = []
    if day.executed:
        avg = (day.value / day.executed).quantize(PRICE_PLACES)
        targets = [books.held(day, oid) for oid in books.order_ids]
        values = _split_value(day.value, targets)
        for oid, target, value in zip(books.order_ids, targets, values, strict=True):
            books.reprice(day, oid, target, value, ref)
        by_account: dict[int, Decimal] = defaultdict(Decimal)
        for oid, target in zip(books.order_ids, targets, strict=True):
            if target:
                by_account[books.orders[oid].account_id] += target
        accounts = sorted(by_account)
        # The street's clean amount and accrued interest (a bond's, to the settlement date),
        # each rounded once and split to the cent: the accounts add up to the street.
        street = books.money(day, day.executed, day.value)
        street_gross = street.clean
        moneys = books.street_split(day, [by_account[a] for a in accounts])
        finals = {
            account_id: (by_account[account_id], avg, books._cash(money))
            for account_id, money in zip(accounts, moneys, strict=True)
        }
        # An account whose day is one live booking of its final quantity, price and money (a
        # day booked in one pass: the usual case) keeps it; the others are booked again at
        # the average. The positions and cash are the same either way, at a fraction of the
        # rows for a wide block.
        by_live: dict[int, list[tuple]] = defaultdict(list)
        for row in live:
            by_live[row[1]].append(row)
        keep = frozenset(
            account_id
            for account_id, rows in by_live.items()
            if len(rows) == 1 and tuple(rows[0][3:6]) == finals.get(account_id)
        )
        books.reverse_live(day, live=live, keep=keep)
        rules = fee_rules_in_force(side=block.side, trade_date=day.trade_date)
        for account_id, money in zip(accounts, moneys, strict=True):
            gross = money.clean
            quantity = by_account[account_id]
            if account_id not in keep:
                books._position(
                    day=day,
                    account_id=account_id,
                    order_id=None,
                    quantity=quantity,
                    price=avg,
                    net_money=finals[account_id][2],
                    kind=Booking.Kind.FINAL,
                    ref=f"A{block.pk}:{day.trade_date:%Y%m%d}:{account_id}:v{day.version}",
                )
            charges = charges_for(
                security=security,
                side=block.side,
                quantity=quantity,
                gross=gross,
                trade_date=day.trade_date,
                broker=block.broker,
                rules=rules,
            )
            paid = charges.commission + charges.fees
            net = money.total - paid if block.side in SELL_SIDES else money.total + paid
            allocations.append(
                Allocation(
                    day=day,
                    block=block,
                    account_id=account_id,
                    version=day.version,
                    trade_date=day.trade_date,
                    settle_date=day.settle_date,
                    side=block.side,
                    quantity=quantity,
                    avg_price=avg,
                    gross_amount=gross,
                    accrued_interest=money.accrued,
                    commission=charges.commission,
                    fees=charges.fees,
                    fee_breakdown={k: str(v) for k, v in charges.breakdown.items()},
                    net_amount=net,
                    currency=currency,
                    finalised_at=as_of,
                )
            )
        books.flush()
        position_services.cash_adjust_many(
            adjustments=[
                position_services.CashAdjustment(
                    account_id=alloc.account_id,
                    currency=currency,
                    amount=-(alloc.commission + alloc.fees),
                    settle_date=alloc.settle_date,
                    reason=f"commission and fees, block {block.pk} on {day.trade_date}",
                    ref=f"allocation:{alloc.pk}",
                )
                for alloc in _insert(allocations)
            ],
            as_of=as_of,
        )
        day.avg_price, day.street_gross = avg, street_gross
    else:
        books.reverse_live(day, live=live)
        books.flush()
        day.avg_price, day.street_gross = None, ZERO
    day.status = BlockDay.Status.FINALISED
    day.finalised_at = as_of
    day.save(update_fields=["status", "avg_price", "street_gross", "finalised_at"])
    audit_record(
        actor=books.actor,
        action="allocation.finalise",
        obj=block,
        occurred_at=as_of,
        after={
            "trade_date": day.trade_date,
            "version": day.version,
            "avg_price": day.avg_price,
            "executed": day.executed,
            "street_gross": day.street_gross,
            "allocations": {str(a.account_id): str(a.quantity) for a in allocations},
        },
    )
    # The broker's 35=J (for brokers that take them), queued with the day: sent after commit.
    allocation_instruction_enqueue(
        block=block,
        trade_date=day.trade_date,
        version=day.version,
        avg_price=day.avg_price,
        by_account_id={a.account_id: a.quantity for a in allocations},
        as_of=as_of,
    )
    return allocations


def _day_reopen(day: BlockDay, *, block: Block, as_of: datetime, why: str) -> None:
    """Cancel a finalised day's allocations (charges given back, marked replaced) so it can be
    booked again under the next version; blocks_book finalises it again in the same
    transaction, since its trading is over."""
    current = list(Allocation.objects.select_for_update().filter(day=day, replaced_at__isnull=True))
    position_services.cash_adjust_many(
        adjustments=[
            position_services.CashAdjustment(
                account_id=alloc.account_id,
                currency=alloc.currency,
                amount=alloc.commission + alloc.fees,
                settle_date=alloc.settle_date,
                reason=f"reverses commission and fees of allocation {alloc.pk}",
                ref=f"allocation:{alloc.pk}:reversal",
            )
            for alloc in current
        ],
        as_of=as_of,
    )
    for alloc in current:
        alloc.replaced_at = as_of
    rows_update(current, ["replaced_at"])
    audit_record(
        action="allocation.reopen",
        obj=block,
        occurred_at=as_of,
        before={"trade_date": day.trade_date, "version": day.version},
        after={"version": day.version + 1, "reason": why},
    )
    day.status = BlockDay.Status.OPEN
    day.version += 1
    day.finalised_at = None
    day.save(update_fields=["status", "version", "finalised_at"])


def blocks_book(
    *, block_ids: Iterable[int], as_of: datetime, actor=None, lock_days: bool = True
) -> None:
    """Bring each block's shares, order figures, positions and cash in line with its live
    street fills and its orders' quantities now: once per block per batch of reports, whatever
    the number of fills in it. A day reopened by a late change is finalised again and the
    custodian files already written for its date get a new version. `lock_days=False`: the
    booker's pass, which leaves the days to the reports' applier (see _DayBooks)."""
    dates_rebooked: set[date] = set()
    with transaction.atomic(savepoint=False):
        blocks = {
            b.pk: b
            for b in Block.objects.select_related("security", "broker")
            .filter(pk__in=set(block_ids))
            .order_by("pk")
        }
        plans = _plans_locked(blocks, as_of=as_of)
        for block_id in sorted(blocks):
            books = _DayBooks(
                block=blocks[block_id],
                plan=plans[block_id],
                as_of=as_of,
                actor=actor,
                lock_days=lock_days,
            )
            for day in books.days:
                if day.status == BlockDay.Status.OPEN:
                    _day_book(books, day)
            books.flush()
            for day in books.days:
                # Reopened by a late change in this transaction (only then is an open day
                # past its first version): its trading is over, so it is final again at once.
                if day.status == BlockDay.Status.OPEN and day.version > 1:
                    _day_finalise(books, day)
                    dates_rebooked.add(day.trade_date)
        for trade_date in sorted(dates_rebooked):
            _files_reissue(trade_date=trade_date, as_of=as_of, actor=actor)


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
    wide = [pk for pk in ids if _booked_by_booker(widths.get(pk, 0))]
    narrow = sorted(set(ids) - set(wide))
    if narrow:
        blocks_book(block_ids=narrow, as_of=as_of)
    return wide


def _booked_by_booker(orders: int) -> bool:
    """A block of this many orders is booked by the booker, not with its reports."""
    return orders > settings.OMS_BOOKING_INLINE_MAX_ORDERS


def block_book_due(*, block: Block, as_of: datetime) -> None:
    """Book what the block executed and its orders do not hold yet, before something changes
    its orders (a replace or cancel acknowledged): the executions before the change are
    shared by the orders as they were."""
    if selectors.blocks_booking_due(block_ids=[block.pk]):
        blocks_book(block_ids=[block.pk], as_of=as_of)


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
            message = _failure_message(exc)
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


def _files_reissue(*, trade_date: date, as_of: datetime, actor) -> None:
    """A new version of every custodian file already written for the date whose content the
    rebooking changed (a custodian never sent a file waits for the after-close job)."""
    for custodian_id in sorted(
        set(
            SettlementFile.objects.filter(trade_date=trade_date).values_list(
                "custodian_id", flat=True
            )
        )
    ):
        settlement_file_generate(
            custodian_id=custodian_id, trade_date=trade_date, as_of=as_of, actor=actor
        )


# --- finalising -------------------------------------------------------------------------------


def day_finalisable(day: BlockDay, block: Block, as_of: datetime) -> bool:
    return block.status in DONE_STATUSES or day.trade_date < as_of.date()


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
    books = _DayBooks(block=block, plan=plan, as_of=as_of, actor=actor)
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
    _day_book(books, day)
    books.flush()
    return _day_finalise(books, day)


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


def _failure_message(exc: Exception) -> str:
    """What a person in Operations reads of a booking that failed: a domain error's message,
    else the exception's type and text."""
    return getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"


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
            message = _failure_message(exc)
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
    books = _DayBooks(block=block, plan=plan, as_of=as_of, actor=actor)
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


# --- settlement files -----------------------------------------------------------------------

SETTLEMENT_COLUMNS = [
    "trade_id",
    "version",
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
    "accrued_interest",
    "commission",
    "fees",
    "net_amount",
    "currency",
    "executing_broker",
]


def settlement_rows(*, custodian_id: int, trade_date: date) -> list[dict[str, str]]:
    """The current allocations of the custodian's accounts traded on the date: one row per
    account, block and trade date. The trade id stays the same across versions, so a new
    version of the file shows a rebooked trade as changed."""
    allocs = (
        Allocation.objects.filter(
            account__custodian_id=custodian_id, trade_date=trade_date, replaced_at__isnull=True
        )
        .select_related("account", "block__security", "block__broker")
        .order_by("block_id", "account_id")
    )
    rows = []
    for a in allocs:
        security = a.block.security
        rows.append(
            {
                "trade_id": f"A{a.block_id}-{a.account.code}-{a.trade_date:%Y%m%d}",
                "version": str(a.version),
                "trade_date": a.trade_date.isoformat(),
                "settlement_date": a.settle_date.isoformat(),
                "account": a.account.code,
                "custodian_account": a.account.custodian_account,
                "symbol": security.symbol,
                "isin": security.isin or "",
                "side": a.side,
                "quantity": f"{a.quantity.normalize():f}",
                "price": f"{a.avg_price.normalize():f}",
                "gross_amount": str(money_round(a.gross_amount, a.currency)),
                "accrued_interest": str(money_round(a.accrued_interest, a.currency)),
                "commission": str(money_round(a.commission, a.currency)),
                "fees": str(money_round(a.fees, a.currency)),
                "net_amount": str(money_round(a.net_amount, a.currency)),
                "currency": a.currency,
                "executing_broker": a.block.broker.code if a.block.broker else "INTERNAL",
            }
        )
    return rows


def _file_content(rows: list[dict[str, str]]) -> tuple[str, str]:
    content = write_csv(SETTLEMENT_COLUMNS, ([r[c] for c in SETTLEMENT_COLUMNS] for r in rows))
    return content, hashlib.sha256(content.encode()).hexdigest()


def settlement_file_content(*, custodian_id: int, trade_date: date) -> tuple[str, str]:
    """The file's content and checksum as a new version would have them now."""
    return _file_content(settlement_rows(custodian_id=custodian_id, trade_date=trade_date))


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


@retry_on_conflict
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
    content, checksum = _file_content(rows)
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
        differences=(
            {**_differences(previous_rows, rows), "replaces": latest.filename} if latest else {}
        ),
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
        Allocation.objects.filter(trade_date=trade_date, replaced_at__isnull=True).values_list(
            "account__custodian_id", flat=True
        )
    ) | set(
        SettlementFile.objects.filter(trade_date=trade_date).values_list("custodian_id", flat=True)
    )
    return [
        settlement_file_generate(custodian_id=cid, trade_date=trade_date, as_of=as_of, actor=actor)
        for cid in sorted(custodian_ids)
    ]


@retry_on_conflict
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
