"""oms.money: minor units, the one rounding policy, and exact splits."""

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oms.errors import DomainError
from oms.money import minor_unit, money_round, money_split

D = Decimal


@pytest.mark.parametrize(
    ("currency", "places"),
    [
        ("USD", 2),
        ("EUR", 2),
        ("GBP", 2),
        ("CHF", 2),
        ("DKK", 2),
        ("JPY", 0),
        ("KRW", 0),
        ("BHD", 3),
        ("KWD", 3),
        ("JOD", 3),
        ("BTC", 8),
        ("ETH", 8),
        ("USDT", 8),
        ("ZAR", 2),  # not in the table: a three-letter code defaults to 2
    ],
)
def test_minor_units(currency, places):
    assert minor_unit(currency) == places


@pytest.mark.parametrize("bad", ["", "usd", "US", "USDX", "U$D", " USD", None, 840])
def test_a_bad_currency_code_is_refused(bad):
    with pytest.raises(DomainError) as err:
        minor_unit(bad)
    assert err.value.code == "invalid_currency"


@pytest.mark.parametrize(
    ("amount", "currency", "rounded"),
    [
        ("0.125", "USD", "0.13"),  # half up, not to even
        ("0.135", "USD", "0.14"),
        ("0.124999", "USD", "0.12"),
        ("-0.125", "USD", "-0.13"),  # halves go away from zero, symmetric for negatives
        ("1234.5", "JPY", "1235"),
        ("1233.5", "JPY", "1234"),
        ("0.0005", "KWD", "0.001"),
        ("0.000000005", "BTC", "0.00000001"),
        ("7", "USD", "7.00"),
    ],
)
def test_money_round_is_half_up_to_the_minor_unit(amount, currency, rounded):
    result = money_round(D(amount), currency)
    assert result == D(rounded)
    assert result.as_tuple().exponent == -minor_unit(currency)  # carries the currency's exponent


def test_money_round_refuses_floats_and_non_finite_amounts():
    with pytest.raises(TypeError):
        money_round(0.1, "USD")
    with pytest.raises(DomainError):
        money_round(D("NaN"), "USD")
    with pytest.raises(DomainError):
        money_round(D("Infinity"), "USD")


def test_split_gives_residual_cents_by_largest_remainder():
    # 100.00 in thirds: 33.33 each, one cent left, all remainders equal -> the first index.
    assert money_split(total=D("100.00"), weights=[D(1)] * 3, currency="USD") == [
        D("33.34"),
        D("33.33"),
        D("33.33"),
    ]
    # 10.00 as 1:2:3 is 1.666.., 3.333.., 5.00: the one cent left goes to the largest
    # remainder (index 0, .666..), not to the earlier-by-tie rule.
    assert money_split(total=D("10.00"), weights=[D(1), D(2), D(3)], currency="USD") == [
        D("1.67"),
        D("3.33"),
        D("5.00"),
    ]


def test_split_ties_go_to_the_earlier_index():
    # 0.05 as 1:1:1:1 -> 0.01 each and one cent left; every remainder is .25.
    assert money_split(total=D("0.05"), weights=[D(1)] * 4, currency="USD") == [
        D("0.02"),
        D("0.01"),
        D("0.01"),
        D("0.01"),
    ]


def test_split_of_a_negative_total_mirrors_the_positive_one():
    positive = money_split(total=D("100.00"), weights=[D(1), D(1), D(1)], currency="USD")
    negative = money_split(total=D("-100.00"), weights=[D(1), D(1), D(1)], currency="USD")
    assert negative == [-p for p in positive]
    assert sum(negative) == D("-100.00")


def test_split_zero_weights_get_zero_and_the_minor_unit_is_the_currencys():
    assert money_split(total=D("1001"), weights=[D(0), D(1), D(0), D(1)], currency="JPY") == [
        D(0),
        D(501),
        D(0),
        D(500),
    ]
    parts = money_split(total=D("1.000"), weights=[D(1), D(2)], currency="KWD")
    assert parts == [D("0.333"), D("0.667")]
    assert [str(p) for p in parts] == ["0.333", "0.667"]
    assert money_split(total=D("0.00"), weights=[D(1), D(2)], currency="USD") == [D(0), D(0)]


def test_split_refuses_bad_input():
    with pytest.raises(DomainError) as err:
        money_split(total=D("10.00"), weights=[D(0), D(0)], currency="USD")
    assert err.value.code == "invalid_weights"
    with pytest.raises(DomainError):
        money_split(total=D("10.00"), weights=[], currency="USD")
    with pytest.raises(DomainError):
        money_split(total=D("10.00"), weights=[D(1), D(-1), D(1)], currency="USD")
    with pytest.raises(DomainError) as err:
        money_split(total=D("10.005"), weights=[D(1)], currency="USD")  # not in minor units
    assert err.value.code == "invalid_amount"
    with pytest.raises(DomainError):
        money_split(total=D("10.5"), weights=[D(1)], currency="JPY")


CURRENCIES = st.sampled_from(["USD", "JPY", "KWD", "BTC"])
WEIGHTS = st.lists(
    st.decimals(min_value=0, max_value=10**9, places=4, allow_nan=False, allow_infinity=False),
    min_size=1,
    max_size=12,
).filter(lambda ws: any(w > 0 for w in ws))


@given(
    currency=CURRENCIES,
    minor_units=st.integers(min_value=-(10**15), max_value=10**15),
    weights=WEIGHTS,
)
def test_split_properties(currency, minor_units, weights):
    quantum = D(1).scaleb(-minor_unit(currency))
    total = D(minor_units) * quantum
    parts = money_split(total=total, weights=weights, currency=currency)

    assert len(parts) == len(weights)
    assert sum(parts) == total  # exact, to the minor unit
    whole = sum(Fraction(w) for w in weights)
    for part, weight in zip(parts, weights, strict=True):
        assert part == part.quantize(quantum)  # in minor units
        exact = Fraction(total) * Fraction(weight) / whole
        assert abs(Fraction(part) - exact) < Fraction(quantum)  # within one minor unit
        if weight == 0:
            assert part == 0
        assert part * total >= 0  # never the opposite sign to the total
    # Deterministic: the same inputs give the same split.
    assert money_split(total=total, weights=list(weights), currency=currency) == parts


def test_one_average_price_for_blocks_orders_and_days():
    from oms.money import average_price

    assert average_price(Decimal("100.5"), Decimal(3)) == Decimal("33.50000000")
    # Half even at the 8th place, as every average has been rounded.
    assert average_price(Decimal("0.000000025"), Decimal(1)) == Decimal("0.00000002")
    assert average_price(Decimal(0), Decimal(0)) is None
