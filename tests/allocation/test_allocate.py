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


def test_refill_after_a_bust_stays_fair_and_balanced(make_block):
    block = make_block([100, 100, 100])
    fill(block, "E1", 1, "10")
    fill(block, "E2", 1, "10.5")
    block_fill_reverse(block=block, execution_ref="E1", as_of=AS_OF)
    fill(block, "E3", 200, "11")
    got = sorted(a.quantity for a in allocs(block).values())
    assert sum(got) == 201 and got[-1] - got[0] <= 1
    for a in allocs(block).values():
        order = Order.objects.get(pk=a.order_id)
        pos = Position.objects.get(account=order.account, security=block.security)
        assert order.cum_qty == pos.quantity == a.quantity


def test_after_close_job_finalises_done_blocks_and_writes_files(make_block):
    from allocation.models import SettlementFile
    from allocation.tasks import settlement_after_close

    finished = make_block([100])
    working = make_block([100])
    fill(finished, "E1", 100, "10")
    fill(working, "E2", 50, "10")
    done(finished)
    result = settlement_after_close(as_of=AS_OF.isoformat())
    assert result["finalised_blocks"] == [finished.pk]
    assert AllocationPlan.objects.get(block=working).status == "OPEN"
    sf = SettlementFile.objects.get()
    assert sf.row_count == 1 and sf.trade_date == AS_OF.date()
