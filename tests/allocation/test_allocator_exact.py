"""pro_rata in integers gives what it gave in Fraction arithmetic, on any input: the reference
below is the Fraction version, kept here to compare against."""

import math
from decimal import Decimal
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from allocation.allocator import _tie_rank, allocation_unit, pro_rata


def reference_pro_rata(*, weights, executed, lot, rotation=0, floors=None):
    count = len(weights)
    total_weight = sum(weights, Decimal(0))
    unit = allocation_unit(lot=lot, amounts=[*weights, executed, *(floors or [])])
    lots = int(executed / unit)
    exact = [Fraction(lots) * Fraction(w) / Fraction(total_weight) for w in weights]
    low = [math.floor(x) for x in exact]
    high = [math.ceil(x) for x in exact]
    order = sorted(
        range(count), key=lambda i: (-(exact[i] - low[i]), _tie_rank(i, count, rotation))
    )

    def spread(start):
        left = lots - sum(start)
        if left < 0:
            return None
        result = list(start)
        for i in order:
            if left == 0:
                break
            if result[i] < high[i]:
                result[i] += 1
                left -= 1
        return result if left == 0 else None

    result = None
    if floors is not None:
        held = [int(f / unit) for f in floors]
        if all(h <= hi for h, hi in zip(held, high, strict=True)):
            result = spread([max(lo, h) for lo, h in zip(low, held, strict=True)])
    if result is None:
        result = spread(low)
    return [unit * r for r in result]


AMOUNT = st.decimals(
    min_value=Decimal(0), max_value=Decimal(100000), places=8, allow_nan=False
).map(lambda d: d.quantize(Decimal("0.00000001")))


@st.composite
def cases(draw):
    lot = draw(st.sampled_from([Decimal(1), Decimal(10), Decimal(100), Decimal("0.001")]))
    whole = draw(st.booleans())
    if whole:
        weights = [lot * n for n in draw(st.lists(st.integers(0, 5000), min_size=1, max_size=40))]
    else:
        weights = draw(st.lists(AMOUNT, min_size=1, max_size=40))
    if sum(weights) <= 0:
        weights[0] = lot
    total = sum(weights)
    executed = draw(st.sampled_from([total, total / 2, total / 3, Decimal(0), lot]))
    executed = min(total, executed.quantize(Decimal("0.00000001")))
    floors = None
    if draw(st.booleans()):
        floors = [min(w, draw(AMOUNT)) for w in weights]
    return dict(
        weights=weights,
        executed=executed,
        lot=lot,
        rotation=draw(st.integers(0, 100)),
        floors=floors,
    )


@settings(max_examples=400, deadline=None)
@given(cases())
def test_the_integer_split_is_the_fraction_split(case):
    assert pro_rata(**case) == reference_pro_rata(**case)


def test_a_wide_block_splits_in_integers_exactly():
    weights = [Decimal(1000 + i % 7) for i in range(2000)]
    executed = sum(weights) // 3
    case = dict(weights=weights, executed=executed, lot=Decimal(1), rotation=17)
    assert pro_rata(**case) == reference_pro_rata(**case)
    assert sum(pro_rata(**case)) == executed


def reference_money_split(*, total, weights, currency):
    from oms.money import minor_unit

    places = minor_unit(currency)
    quantum = Decimal(1).scaleb(-places)
    shares = [Fraction(w) for w in weights]
    whole = sum(shares, Fraction(0))
    units = int(total.scaleb(places))
    sign, units = (-1 if units < 0 else 1), abs(units)
    exact = [units * w / whole for w in shares]
    parts = [int(e) for e in exact]
    residual = units - sum(parts)
    order = sorted(range(len(parts)), key=lambda i: (-(exact[i] - parts[i]), i))
    for i in order[:residual]:
        parts[i] += 1
    return [(Decimal(sign * p) * quantum).quantize(quantum) for p in parts]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(AMOUNT, min_size=1, max_size=40),
    st.decimals(min_value=Decimal(-(10**9)), max_value=Decimal(10**9), places=2, allow_nan=False),
    st.sampled_from(["USD", "JPY", "KWD"]),
)
def test_the_integer_money_split_is_the_fraction_split(weights, total, currency):
    from oms.money import minor_unit, money_split

    if sum(weights) == 0:
        weights[0] = Decimal(1)
    total = total.quantize(Decimal(1).scaleb(-minor_unit(currency)))
    case = dict(total=total, weights=weights, currency=currency)
    assert money_split(**case) == reference_money_split(**case)


def test_a_zero_weight_with_more_places_than_the_others_is_a_zero():
    from oms.money import money_split

    weights = [Decimal("0E-10"), Decimal("1"), Decimal("2.5")]
    case = dict(total=Decimal("10.01"), weights=weights, currency="USD")
    assert money_split(**case) == reference_money_split(**case)
    split = dict(weights=weights, executed=Decimal(3), lot=Decimal(1))
    assert pro_rata(**split) == reference_pro_rata(**split)
