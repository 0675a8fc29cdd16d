"""Wide blocks are booked by the booker, off the reports' path: the reports' applier records
the executions on the block, and one booking pass per block (however many reports came in)
brings its orders, positions and cash in line, with the same outcome as booking each batch
at once."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.management import call_command

from allocation.models import Allocation, BlockDay
from allocation.selectors import blocks_booking_due
from allocation.services import bookings_due_book
from allocation.tasks import settlement_after_close
from fixgateway.inbound import inbound_batch_apply
from fixgateway.models import FixOrder
from fixgateway.reports import InboundReport
from orders.entry import order_cancel
from orders.lifecycle import OrderStatus
from orders.models import Order
from positions.models import CashMovement

from .test_booking_ledger import CLOSE, DAY1, Desk, orders_of, position

pytestmark = pytest.mark.django_db


def fills(desk, block, *quantities, px="10.00"):
    """Trade reports for `block`, applied in one batch as the gateway's applier does."""
    fix_order = FixOrder.objects.get(block=block)
    reports = []
    for qty in quantities:
        desk.n += 1
        reports.append(
            InboundReport(
                msg_type="8",
                cl_ord_id=fix_order.pending_cl_ord_id or fix_order.cl_ord_id,
                order_id=f"BRK-{block.pk}",
                exec_type="F",
                ord_status="1",
                exec_id=f"B{desk.tag}{desk.n}",
                last_qty=Decimal(qty),
                last_px=Decimal(px),
                trade_date=DAY1.date(),
            )
        )
    results = inbound_batch_apply(broker=desk.broker, reports=reports, as_of=DAY1)
    assert {r.outcome for r in results} == {"applied"}, results


def books(block):
    """Each order's (cum, avg, position) and each account's cash, in order id order."""
    return [
        (
            o.cum_qty,
            o.avg_price,
            position(o),
            sum((m.amount for m in CashMovement.objects.filter(account=o.account)), Decimal(0)),
        )
        for o in sorted(orders_of(block), key=lambda o: o.pk)
    ]


def test_a_wide_block_waits_for_the_booker_then_books_as_if_at_once(refdata, settings):
    inline, wide = Desk(tag="I"), Desk(tag="W")
    settings.OMS_BOOKING_INLINE_MAX_ORDERS = 3
    narrow_block = inline.block([100, 200, 300])
    wide_block = wide.block([100, 200, 300, 400])
    for desk, block in ((inline, narrow_block), (wide, wide_block)):
        desk.report(block, "0")
        fills(desk, block, 130, 70, px="10.00")
        fills(desk, block, 150, px="10.05")

    # The narrow block is booked with its reports; the wide one only on the block.
    assert blocks_booking_due() == [wide_block.pk]
    assert [row[0] for row in books(narrow_block)] == [58, 117, 175]
    assert books(wide_block) == [(0, None, 0, 0)] * 4
    wide_block.refresh_from_db()
    assert wide_block.cum_qty == 350

    outcome = bookings_due_book(as_of=DAY1)
    assert outcome.booked == [wide_block.pk] and not outcome.failed
    assert blocks_booking_due() == []
    booked = books(wide_block)
    assert sum(row[0] for row in booked) == 350
    assert [row[0] for row in booked] == [35, 70, 105, 140]
    assert {row[1] for row in booked} == {Decimal("10.02142857")}  # (200x10 + 150x10.05) / 350
    assert sum(row[3] for row in booked) == Decimal("-3507.50")
    # A second pass finds nothing to do.
    assert bookings_due_book(as_of=DAY1).booked == []


def test_executions_before_a_cancel_are_shared_as_the_orders_were(refdata, settings):
    """As test_booking_ledger's partial cancel, with the fills waiting for the booker when the
    broker acknowledges the cancel of B's leaves: the 90 executed before are shared by three."""
    settings.OMS_BOOKING_INLINE_MAX_ORDERS = 1
    desk = Desk(tag="C")
    block = desk.block([100, 100, 100])
    desk.report(block, "0")
    fills(desk, block, 90)
    assert blocks_booking_due() == [block.pk]
    a, b, c = sorted(orders_of(block), key=lambda o: o.pk)
    order_cancel(order_id=b.pk, actor=desk.pm, as_of=DAY1)
    desk.report(block, "5")  # booked the 90 first, then the orders changed
    fills(desk, block, 140, px="10.10")
    bookings_due_book(as_of=DAY1)
    a, b, c = (Order.objects.get(pk=o.pk) for o in (a, b, c))
    assert (b.status, b.cum_qty, b.leaves_qty) == (OrderStatus.CANCELLED, 30, 0)
    assert (a.cum_qty, c.cum_qty) == (100, 100)
    assert [position(o) for o in (a, b, c)] == [100, 30, 100]


def test_the_close_and_the_reconciliation_book_what_waits(refdata, settings):
    settings.OMS_BOOKING_INLINE_MAX_ORDERS = 1
    desk = Desk(tag="F")
    block = desk.block([100, 300])
    desk.report(block, "0")
    fills(desk, block, 400)
    assert blocks_booking_due() == [block.pk]
    call_command("positions_reconcile")  # books first: no difference to report
    assert blocks_booking_due() == []

    other = desk.block([50, 50])
    desk.report(other, "0")
    fills(desk, other, 100)
    settlement_after_close(as_of=CLOSE[DAY1].isoformat())
    day = BlockDay.objects.get(block=other)
    assert day.status == "FINALISED"
    allocs = Allocation.objects.filter(day=day)
    assert sorted(a.quantity for a in allocs) == [50, 50]
    assert [position(o) for o in orders_of(other)] == [50, 50]
