"""One block's booking state for a pass (DayBooks): its trading days, its orders' shares and the
orders, locked, and what each order may take; what the pass books (order figures, positions and
cash, the booking ledger, shares) is gathered and written set-wise by flush(). The steps of a
day (allocation.days) and the use cases that book (allocation.booking, allocation.finalising)
work through it."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from decimal import Decimal
from typing import TypeVar

from django.db import models

from audit.services import bulk_insert
from oms.bulk_rows import rows_insert, rows_update
from oms.errors import Conflict
from oms.money import PRICE_PLACES, Notional, Terms, average_price, money_split, notional_rounded
from orders import services as order_services
from orders.models import SELL_SIDES, Block
from positions import services as position_services

from .allocator import pro_rata
from .models import AllocationPlan, BlockDay, Booking, OrderShare
from .plans import CLOSED_ORDERS

M = TypeVar("M", bound=models.Model)

VALUE_PLACES = Decimal(1).scaleb(-16)

ZERO = Decimal(0)

# A Booking's columns as DayBooks gathers them for rows_insert.
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


class DayBooks:
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
            price=price if price is not None else average_price(value, quantity),
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
                price=average_price(value, quantity),
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
        values = split_value(day.value, targets)
        if not day.executed:
            for oid, target, value in zip(self.order_ids, targets, values, strict=True):
                self.reprice(day, oid, target, value, ref)
            return
        # As finalising will: the average price, and the street gross split to the minor unit
        # (so an order alone in its account already holds its final booking).
        avg = average_price(day.value, day.executed)
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
                price=average_price(value, quantity) if quantity else PRICE_PLACES,
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
        insert_rows(self.new_shares)
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


def insert_rows(rows: list[M]) -> list[M]:
    if len(rows) >= COPY_FROM:
        return bulk_insert(rows)
    return type(rows[0]).objects.bulk_create(rows) if rows else rows


def split_value(value: Decimal, quantities: list[Decimal]) -> list[Decimal]:
    """`value` in proportion to `quantities`, to 16 places, adding up to `value` exactly."""
    total = sum(quantities, ZERO)
    if total == 0:
        return [ZERO] * len(quantities)
    parts = [(value * q / total).quantize(VALUE_PLACES) for q in quantities]
    last = max(i for i, q in enumerate(quantities) if q)
    parts[last] += value - sum(parts, ZERO)
    return parts
