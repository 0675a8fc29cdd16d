"""oms.money's instrument conventions: notional per unit, per 100 of face and per contract, and
bond accrued interest for each day count, against figures worked out by hand."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from oms.money import (
    DayCount,
    Quotation,
    Terms,
    coupon_period,
    days_30_360,
    money_round,
    notional,
)

D = Decimal


def bond(coupon: str, frequency: int, day_count: str, maturity: date, dated=None) -> Terms:
    return Terms(
        quotation=Quotation.PER_100,
        coupon_pct=D(coupon),
        coupon_frequency=frequency,
        day_count=day_count,
        maturity_date=maturity,
        dated_date=dated,
    )


def test_an_equity_is_quantity_times_price():
    n = notional(terms=Terms(), quantity=D(100), price=D("50.25"), on=date(2026, 11, 25))
    assert (n.clean, n.accrued, n.total) == (D("5025.00"), 0, D("5025.00"))


def test_a_future_is_contracts_times_price_times_multiplier():
    terms = Terms(quotation=Quotation.CONTRACT, multiplier=D(50))
    n = notional(terms=terms, quantity=D(2), price=D(4500), on=date(2026, 11, 25))
    assert n.total == D(450_000)


def test_the_finding_a_million_face_at_99_50_is_995_000_plus_accrued():
    # 6% semiannual 30/360, coupons 15 Feb / 15 Aug. On 20 May 2026: 15 Feb -> 20 May is
    # 3 x 30 + 5 = 95 days; 1,000,000 x 6% x 95 / 360 = 15,833.33.
    terms = bond("6", 2, DayCount.THIRTY_360, date(2030, 2, 15))
    n = notional(terms=terms, quantity=D(1_000_000), price=D("99.50"), on=date(2026, 5, 20))
    assert n.clean == D(995_000)
    assert money_round(n.accrued, "USD") == D("15833.33")
    assert money_round(n.total, "USD") == D("1010833.33")


def test_30_360_counts_the_31st_as_the_30th():
    assert days_30_360(date(2026, 1, 31), date(2026, 3, 31)) == 60
    assert days_30_360(date(2026, 1, 15), date(2026, 3, 31)) == 76
    assert days_30_360(date(2026, 2, 28), date(2026, 8, 28)) == 180


def test_act_360_counts_actual_days_over_360():
    # 5% quarterly, month-end coupons (maturity 31 Mar): the last coupon before 15 May 2026 is
    # 31 Mar, 45 actual days: 1,000,000 x 5% x 45 / 360 = 6,250.
    terms = bond("5", 4, DayCount.ACT_360, date(2028, 3, 31))
    assert coupon_period(maturity=date(2028, 3, 31), frequency=4, on=date(2026, 5, 15)) == (
        date(2026, 3, 31),
        date(2026, 6, 30),
    )
    n = notional(terms=terms, quantity=D(1_000_000), price=D(100), on=date(2026, 5, 15))
    assert n.accrued == D(6250)


def test_act_act_divides_by_the_actual_coupon_period():
    # 4% semiannual, coupons 15 May / 15 Nov. On 25 Nov 2026: 10 days of the 181-day period to
    # 15 May 2027: 1,000,000 x 4% / 2 x 10 / 181 = 1,104.97.
    terms = bond("4", 2, DayCount.ACT_ACT, date(2031, 11, 15))
    n = notional(terms=terms, quantity=D(1_000_000), price=D("101.25"), on=date(2026, 11, 25))
    assert money_round(n.accrued, "USD") == D("1104.97")
    assert money_round(n.total, "USD") == D("1013604.97")


def test_accrual_starts_at_the_dated_date_in_a_short_first_period():
    # Dated 1 Apr 2026, first coupon 15 Aug 2026 (30/360, 6%): on 1 May, 30 days accrued.
    terms = bond("6", 2, DayCount.THIRTY_360, date(2030, 2, 15), dated=date(2026, 4, 1))
    assert terms.accrued_per_unit(date(2026, 5, 1)) * 1_000_000 == D(5000)


@pytest.mark.parametrize(
    ("on", "expected"),
    [
        (date(2026, 2, 15), 0),  # on the coupon date nothing has accrued
        (date(2030, 2, 15), 0),  # matured
        (date(2026, 8, 14), D(1_000_000) * D("0.06") * 179 / 360),
    ],
)
def test_accrued_at_the_edges_of_a_period(on, expected):
    terms = bond("6", 2, DayCount.THIRTY_360, date(2030, 2, 15))
    assert terms.accrued_per_unit(on) * 1_000_000 == expected


def test_terms_of_a_plain_security_cost_nothing_extra():
    class Sec:
        price_quotation = Quotation.UNIT
        contract_multiplier = D(1)
        coupon_rate = None
        coupon_frequency = None
        day_count = ""
        maturity_date = None
        dated_date = None

    terms = Terms.of(Sec())
    assert terms.unit_value(D("12.5"), date(2026, 1, 1)) == D("12.5")
