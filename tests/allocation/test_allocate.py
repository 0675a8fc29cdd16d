from decimal import Decimal

import pytest

from allocation.models import Allocation, BlockDay, Booking
from allocation.services import allocation_finalise
from orders.models import Order
from positions.models import Position

from .conftest import AS_OF, TRADE_DATE, bust, done, fill, shares

pytestmark = pytest.mark.django_db


def test_fills_split_pro_rata_and_move_orders_and_positions(make_block):
    block = make_block([100, 200, 300])
    fill(block, "E1", 300, "10.00")
    orders = list(Order.objects.filter(block=block).order_by("pk"))
    assert shares(block) == {orders[0].pk: 50, orders[1].pk: 100, orders[2].pk: 150}
    for order in orders:
        assert order.cum_qty == order.quantity / 2
        assert order.status == "PARTIALLY_FILLED"
        pos = Position.objects.get(account=order.account, security=block.security)
        assert pos.quantity == order.quantity / 2


def test_every_account_ends_at_block_average(make_block):
    block = make_block([100, 100, 100])
    fill(block, "E1", 100, "10.00")
    fill(block, "E2", 200, "13.00")
    done(block)
    allocation_finalise(block=block, as_of=AS_OF)
    day = BlockDay.objects.get(block=block)
    assert day.avg_price == Decimal("12.00000000") and day.status == "FINALISED"
    for order in Order.objects.filter(block=block):
        assert order.cum_qty == 100
        assert order.avg_price == Decimal("12")
        assert order.status == "FILLED"
        pos = Position.objects.get(account=order.account, security=block.security)
        assert pos.quantity == 100
        assert pos.avg_cost == Decimal("12")
    assert {a.gross_amount for a in Allocation.objects.filter(block=block)} == {Decimal("1200")}


def test_replayed_execution_books_nothing(make_block):
    block = make_block([100, 100])
    fill(block, "E1", 50, "10")
    before = Booking.objects.count()
    fill(block, "E1", 50, "10")
    assert Booking.objects.count() == before
    assert sum(shares(block).values()) == 50


def test_bust_takes_back_exactly_what_the_execution_gave(make_block):
    block = make_block([100, 100])
    fill(block, "E1", 60, "10")
    fill(block, "E2", 40, "11")
    bust(block, "E2")
    bust(block, "E2")  # a replayed bust
    assert sorted(shares(block).values()) == [30, 30]
    for order in Order.objects.filter(block=block):
        assert order.cum_qty == 30 and order.avg_price == Decimal("10")
        pos = Position.objects.get(account=order.account, security=block.security)
        assert pos.quantity == 30 and pos.avg_cost == Decimal("10")


def test_refill_after_a_bust_stays_fair_and_balanced(make_block):
    block = make_block([100, 100, 100])
    fill(block, "E1", 1, "10")
    fill(block, "E2", 1, "10.5")
    bust(block, "E1")
    fill(block, "E3", 200, "11")
    got = shares(block)
    assert sum(got.values()) == 201 and max(got.values()) - min(got.values()) <= 1
    for order_id, quantity in got.items():
        order = Order.objects.get(pk=order_id)
        pos = Position.objects.get(account=order.account, security=block.security)
        assert order.cum_qty == pos.quantity == quantity


def test_after_close_job_finalises_done_days_and_writes_files(make_block):
    from allocation.models import SettlementFile
    from allocation.tasks import settlement_after_close

    finished = make_block([100])
    working = make_block([100])
    fill(finished, "E1", 100, "10")
    fill(working, "E2", 50, "10")
    done(finished)
    result = settlement_after_close(as_of=AS_OF.isoformat())
    assert result["finalised"] == [[finished.pk, TRADE_DATE.isoformat()]]
    assert result["failed"] == []
    assert BlockDay.objects.get(block=working).status == "OPEN"
    sf = SettlementFile.objects.get()
    assert sf.row_count == 1 and sf.trade_date == AS_OF.date()
