"""Property tests: random orders and fills, through the allocator and through the database."""

import itertools
from collections import Counter
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from allocation.allocator import pro_rata
from allocation.models import Allocation, BlockDay
from allocation.services import allocation_finalise
from orders.models import Order
from positions.models import Position

from .conftest import AS_OF, done, fill, shares

_BOND_SYMBOLS = itertools.count()
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
        orders = {o.pk: o for o in Order.objects.filter(block=block).select_related("account")}
        accounts = accounts or [orders[pk].account for pk in sorted(orders)]
        fill(block, f"E{i}", 100, "10")
        winners.update(orders[pk].account.code for pk, q in shares(block).items() if q == 34)
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
    assert BlockDay.objects.get(block=block).avg_price == avg
    orders = list(Order.objects.filter(block=block).order_by("pk"))
    got = shares(block)
    check_fair(
        [got.get(o.pk, Decimal(0)) for o in orders],
        [o.quantity for o in orders],
        Decimal(executed),
        Decimal(1),
    )
    allocs = {a.account_id: a for a in Allocation.objects.filter(block=block)}
    assert sum(a.gross_amount for a in allocs.values()) == (value).quantize(Decimal("0.01"))
    for order in orders:
        quantity = got.get(order.pk, Decimal(0))
        assert order.cum_qty == quantity <= order.quantity
        position = Position.objects.filter(account=order.account, security=block.security).first()
        assert (position.quantity if position else 0) == quantity
        if quantity:
            assert order.avg_price == avg and allocs[order.account_id].avg_price == avg
            assert position.avg_cost == avg


@pytest.mark.django_db
@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    faces=st.lists(st.integers(1, 500).map(lambda n: n * 1000), min_size=1, max_size=4),
    data=st.data(),
)
def test_a_bond_block_books_clean_and_accrued_to_the_cent(make_block, faces, data):
    """Random face amounts and prices of a 6% 30/360 bond: the accounts' clean amounts add up
    to the street's (Σ quantity x price / 100, rounded once), their accrued interest to the
    street's (face x 6% x days to the settlement date / 360, rounded once), each account's
    cash moves clean + accrued + charges to the cent, and the booking ledger reconciles."""
    from datetime import date

    from allocation.selectors import booking_differences
    from oms.money import Terms, money_round
    from positions.models import CashMovement
    from tests import factories

    coupon = data.draw(st.sampled_from(["6", "4.125", "0.5"]))
    bond = factories.security(
        f"BOND{next(_BOND_SYMBOLS)}",  # examples share the database: a new bond each
        price="99.50",
        asset_class="BOND",
        sector="Government",
        price_quotation="PER_100",
        coupon_rate=Decimal(coupon),
        coupon_frequency=2,
        day_count=data.draw(st.sampled_from(["30/360", "ACT/360", "ACT/ACT"])),
        maturity_date=date(2030, 2, 15),
    )
    block = make_block(faces, security=bond)
    total = sum(faces)
    prices = data.draw(
        st.lists(st.sampled_from(["99.50", "99.515", "100.03125", "98.7"]), min_size=1, max_size=3)
    )
    value, executed = Decimal(0), 0
    for i, price in enumerate(prices):
        step = total // len(prices) if i < len(prices) - 1 else total - executed
        fill(block, f"B{block.pk}-E{i}", step, price)
        value += step * Decimal(price)
        executed += step
    done(block, "FILLED")
    allocation_finalise(block=block, as_of=AS_OF)
    day = BlockDay.objects.get(block=block)
    allocs = list(Allocation.objects.filter(block=block))
    street_accrued = money_round(
        total * Terms.of(bond).accrued_per_unit(day.settle_date), bond.currency
    )
    assert sum(a.gross_amount for a in allocs) == money_round(value / 100, "USD")
    assert sum(a.accrued_interest for a in allocs) == street_accrued
    for a in allocs:
        assert a.net_amount == a.gross_amount + a.accrued_interest + a.commission + a.fees
        moved = sum(
            CashMovement.objects.filter(account_id=a.account_id).values_list("amount", flat=True),
            Decimal(0),
        )
        assert moved == -a.net_amount
    assert booking_differences() == []
