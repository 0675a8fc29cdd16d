"""The steps of one trading day of a block, inside a use case's transaction: book what the
street executed to the orders (day_book: shares only grow at the price of the new executions,
or the day is booked again from scratch at its average), finalise it (day_finalise: one
allocation per account at the day's average price, money to the cent, commission and fees, the
broker's allocation instruction) and reopen a finalised day for a late change (day_reopen)."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from decimal import Decimal

from django.conf import settings

from audit.services import audit_record
from fixgateway.allocinstr import allocation_instruction_enqueue
from oms.bulk_rows import rows_update
from oms.db import within_transaction
from oms.money import average_price
from orders.models import SELL_SIDES, Block
from positions import services as position_services

from .daybooks import ZERO, DayBooks, insert_rows, split_value
from .fees import charges_for, fee_rules_in_force
from .models import Allocation, BlockDay, Booking

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


def day_finalisable(day: BlockDay, block: Block, as_of: datetime) -> bool:
    return block.status in DONE_STATUSES or day.trade_date < as_of.date()


def booked_by_booker(orders: int) -> bool:
    """A block of this many orders is booked by the booker, not with its reports."""
    return orders > settings.OMS_BOOKING_INLINE_MAX_ORDERS


@within_transaction
def day_book(books: DayBooks, day: BlockDay) -> None:
    held_total = sum((books.held(day, oid) for oid in books.order_ids), ZERO)
    if books.plan.adjusted and held_total == day.executed:
        return  # Operations split this day by hand; nothing new came in since
    targets = books.targets(day)
    held = [books.held(day, oid) for oid in books.order_ids]
    deltas = [t - h for t, h in zip(targets, held, strict=True)]
    ref = f"book:{books.block.pk}:{day.trade_date:%Y%m%d}"
    if booked_by_booker(len(books.order_ids)) and any(deltas) and any(held):
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
        values = split_value(day.value - booked_value, deltas)
        for oid, delta, value in zip(books.order_ids, deltas, values, strict=True):
            if delta:
                books.give(day, oid, delta, value, ref)
        return
    # Shares taken back (a bust, a correction down): the day is booked again from scratch at
    # its average price, every share at the same price.
    books.rebook(day, targets, ref)


@within_transaction
def day_finalise(books: DayBooks, day: BlockDay) -> list[Allocation]:
    """Every account's shares of the day as one allocation at the day's average price:
    gross to the minor unit (the accounts add up to the street gross), commission and fees by
    instrument and market, positions and cash booked again at that price."""
    block, security, as_of = books.block, books.security, books.as_of
    currency = security.currency
    ref = f"final:{block.pk}:{day.trade_date:%Y%m%d}:v{day.version}"
    live = books.live(day)
    allocations: list[Allocation] = []
    if day.executed:
        avg = average_price(day.value, day.executed)
        targets = [books.held(day, oid) for oid in books.order_ids]
        values = split_value(day.value, targets)
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
                for alloc in insert_rows(allocations)
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


@within_transaction
def day_reopen(day: BlockDay, *, block: Block, as_of: datetime, why: str) -> None:
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
