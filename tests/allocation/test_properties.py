"""Property tests: random orders and fills, through the allocator and through the database."""

from collections import Counter
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from allocation.allocator import pro_rata
from allocation.models import Allocation, AllocationPlan
from allocation.services import allocation_finalise
from orders.models import Order
from positions.models import Position

from .conftest import AS_OF, done, fill

LOTS = st.sampled_from([Decimal(1), Decimal(10), Decimal(100), Decimal("0.001")])


@st.composite
def orders_and_fills(draw, max_orders=8):
    lot = draw(LOTS)
    lots = draw(st.lists(st.integers(1, 50), min_size=1, max_size=max_orders))
    weights = [lot * n for n in lots]
    total_lots = sum(lots)
    executed_lots = draw(st.integers(0, total_lots))
    cuts = sorted(draw(st.lists(st.integers(0, executed_lots), max_size=5)))
    steps = [b - a for a, b in zip([0, *cuts], [*cuts, executed_lots], strict=True) if b > a]
    return lot, weights, [lot * s for s in steps]


def check_fair(targets, weights, executed, lot):
    assert sum(targets) == executed
    total = sum(weights)
    for t, w in zip(targets, weights, strict=True):
        exact = Fraction(executed) * Fraction(w) / Fraction(total)
        assert abs(Fraction(t) - exact) < Fraction(lot)
        assert 0 <= t <= w
        assert t % lot == 0


@given(orders_and_fills(), st.integers(0, 20))
def test_incremental_split_is_fair_at_every_fill(case, rotation):
    lot, weights, steps = case
    held = [Decimal(0)] * len(weights)
    executed = Decimal(0)
    for step in steps:
        executed += step
        targets = pro_rata(
            weights=weights, executed=executed, lot=lot, rotation=rotation, floors=held
        )
        check_fair(targets, weights, executed, lot)
        # The incremental scheme never takes shares back on an ordinary fill.
        assert all(t >= h for t, h in zip(targets, held, strict=True))
        held = targets


@given(orders_and_fills(), st.integers(0, 20))
def test_plain_split_is_fair(case, rotation):
    lot, weights, steps = case
    executed = sum(steps, Decimal(0))
    check_fair(
        pro_rata(weights=weights, executed=executed, lot=lot, rotation=rotation),
        weights,
        executed,
        lot,
    )


def test_ties_rotate_so_nobody_is_favoured():
    extra = Counter()
    for rotation in range(30):
        targets = pro_rata(
            weights=[Decimal(100)] * 3, executed=Decimal(100), lot=Decimal(1), rotation=rotation
        )
        extra[targets.index(Decimal(34))] += 1
    assert extra == {0: 10, 1: 10, 2: 10}


@pytest.mark.django_db
def test_rotation_persists_across_blocks(make_block, refdata):
    accounts = None
    winners = Counter()
    for i in range(6):
        block = make_block([100, 100, 100], accounts=accounts)
        accounts = accounts or [o.account for o in Order.objects.filter(block=block).order_by("pk")]
        fill(block, f"E{i}", 100, "10")
        allocs = Allocation.objects.filter(block=block).select_related("account")
        winners.update(a.account.code for a in allocs if a.quantity == 34)
    assert sorted(winners.values()) == [2, 2, 2]


@pytest.mark.django_db
@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    quantities=st.lists(st.integers(1, 40).map(lambda n: n * 10), min_size=1, max_size=5),
    data=st.data(),
)
def test_booked_through_orders_and_positions(make_block, quantities, data):
    block = make_block(quantities)
    total = sum(quantities)
    executed = data.draw(st.integers(1, total // 10)) * 10
    prices = data.draw(
        st.lists(st.sampled_from(["10.00", "10.05", "9.98"]), min_size=1, max_size=4)
    )
    cuts = sorted(
        data.draw(st.lists(st.integers(1, executed - 1), max_size=len(prices) - 1, unique=True))
        if executed > 1
        else []
    )
    steps = [b - a for a, b in zip([0, *cuts], [*cuts, executed], strict=True)]
    value = Decimal(0)
    for i, step in enumerate(steps):
        price = Decimal(prices[i % len(prices)])
        fill(block, f"B{block.pk}-E{i}", step, price)
        value += step * price
    done(block, "DONE_FOR_DAY" if executed < total else "FILLED")
    allocation_finalise(block=block, as_of=AS_OF)
    avg = (value / executed).quantize(Decimal("0.00000001"))
    assert AllocationPlan.objects.get(block=block).avg_price == avg
    allocs = list(Allocation.objects.filter(block=block).select_related("order"))
    check_fair(
        [a.quantity for a in allocs],
        [a.plan_quantity for a in allocs],
        Decimal(executed),
        Decimal(1),
    )
    for a in allocs:
        order = Order.objects.get(pk=a.order_id)
        assert order.cum_qty == a.quantity <= order.quantity
        position = Position.objects.filter(account_id=a.account_id, security=block.security).first()
        assert (position.quantity if position else 0) == a.quantity
        if a.quantity:
            assert order.avg_price == avg and a.avg_price == avg
            assert position.avg_cost == avg
