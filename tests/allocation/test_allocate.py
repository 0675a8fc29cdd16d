from decimal import Decimal

import pytest

from allocation.models import Allocation, AllocationPlan
from allocation.services import allocation_finalise, block_fill_reverse
from orders.models import Order
from positions.models import Position

from .conftest import AS_OF, done, fill

pytestmark = pytest.mark.django_db


def allocs(block):
    return {a.order_id: a for a in Allocation.objects.filter(block=block)}


def test_fills_split_pro_rata_and_move_orders_and_positions(make_block):
    block = make_block([100, 200, 300])
    fill(block, "E1", 300, "10.00")
    got = {a.plan_quantity: a.quantity for a in allocs(block).values()}
    assert got == {Decimal(100): 50, Decimal(200): 100, Decimal(300): 150}
    for order in Order.objects.filter(block=block):
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
    plan = AllocationPlan.objects.get(block=block)
    assert plan.avg_price == Decimal("12.00000000")
    for order in Order.objects.filter(block=block):
        assert order.cum_qty == 100
        assert order.avg_price == Decimal("12")
        assert order.status == "FILLED"
        pos = Position.objects.get(account=order.account, security=block.security)
        assert pos.quantity == 100
        assert pos.avg_cost == Decimal("12")


def test_replayed_execution_books_nothing(make_block):
    block = make_block([100, 100])
    first = fill(block, "E1", 50, "10")
    again = fill(block, "E1", 50, "10")
    assert [s.pk for s in first] == [s.pk for s in again]
    assert sum(a.quantity for a in allocs(block).values()) == 50


def test_bust_undoes_exactly_what_the_execution_booked(make_block):
    block = make_block([100, 100])
    fill(block, "E1", 60, "10")
    fill(block, "E2", 40, "11")
    block_fill_reverse(block=block, execution_ref="E2", as_of=AS_OF)
    block_fill_reverse(block=block, execution_ref="E2", as_of=AS_OF)  # a replayed bust
    assert sorted(a.quantity for a in allocs(block).values()) == [30, 30]
    for order in Order.objects.filter(block=block):
        assert order.cum_qty == 30 and order.avg_price == Decimal("10")
        pos = Position.objects.get(account=order.account, security=block.security)
        assert pos.quantity == 30
