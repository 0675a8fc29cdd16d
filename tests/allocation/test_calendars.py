from datetime import date

import pytest

from oms.calendars import settlement_date_for


def us(trade, cycle=1):
    return settlement_date_for(
        trade_date=trade, cycle=cycle, exchange_mic="XNYS", currency="USD", asset_class="EQUITY"
    )


@pytest.mark.parametrize(
    ("trade", "settle", "why"),
    [
        (date(2026, 11, 25), date(2026, 11, 27), "Thanksgiving: no trading, no settlement"),
        (date(2026, 10, 9), date(2026, 10, 13), "weekend, then Columbus Day: NYSE open, Fed not"),
        (date(2026, 11, 10), date(2026, 11, 12), "Veterans Day: a Fed holiday"),
        (date(2026, 11, 27), date(2026, 11, 30), "Friday to Monday"),
        (date(2026, 11, 23), date(2026, 11, 24), "an ordinary Monday"),
        (date(2026, 4, 2), date(2026, 4, 6), "Good Friday: the exchange is closed"),
    ],
)
def test_us_equity_t_plus_1(trade, settle, why):
    assert us(trade) == settle, why


def test_t_plus_2_across_a_weekend():
    assert us(date(2026, 11, 19), cycle=2) == date(2026, 11, 23)


def test_t_plus_0_rolls_off_a_non_settlement_day():
    assert us(date(2026, 10, 12), cycle=0) == date(2026, 10, 13)
    assert us(date(2026, 10, 13), cycle=0) == date(2026, 10, 13)


def test_crypto_settles_on_calendar_days():
    sat = date(2026, 11, 28)
    assert (
        settlement_date_for(
            trade_date=sat, cycle=0, exchange_mic="XCRY", currency="USD", asset_class="CRYPTO"
        )
        == sat
    )
