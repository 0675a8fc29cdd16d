"""Trading and settlement calendars, from the `holidays` package.

A settlement day is a weekday on which the security's exchange trades and its currency's
settlement system is open: in the US, Columbus Day and Veterans Day are Federal Reserve holidays,
so NYSE trades but nothing settles; Good Friday is the reverse, and nothing settles either
(the clearing house follows the exchange)."""

from __future__ import annotations

from datetime import date, timedelta
from functools import lru_cache

import holidays

from oms.models import AssetClass, Security

# Exchange MIC -> the `holidays` financial market whose calendar it trades on.
EXCHANGE_CALENDARS = {
    "XNYS": "XNYS",
    "XNAS": "XNYS",
    "ARCX": "XNYS",
    "BATS": "XNYS",
    "XASE": "XNYS",
    "XLON": "XLON",
    "XETR": "XETR",
    "XFRA": "XETR",
    "XPAR": "XPAR",
    "XAMS": "XAMS",
    "XTSE": "XTSE",
    "XHKG": "XHKG",
    "XJPX": "XJPX",
    "XTKS": "XJPX",
    "XSWX": "XSWX",
}
# Settlement currency -> the calendar of the system its cash settles through.
SETTLEMENT_CALENDARS = {
    "USD": "XFED",  # Federal Reserve (Fedwire)
    "EUR": "XECB",  # TARGET2
}


@lru_cache(maxsize=64)
def _financial(market: str, year: int) -> frozenset[date]:
    return frozenset(holidays.financial_holidays(market, years=year))


def _closed(market: str | None, day: date) -> bool:
    return market is not None and day in _financial(market, day.year)


def is_trading_day(*, exchange_mic: str, day: date) -> bool:
    return day.weekday() < 5 and not _closed(EXCHANGE_CALENDARS.get(exchange_mic), day)


def is_settlement_day(*, exchange_mic: str, currency: str, day: date) -> bool:
    return is_trading_day(exchange_mic=exchange_mic, day=day) and not _closed(
        SETTLEMENT_CALENDARS.get(currency), day
    )


def settlement_date_for(
    *, trade_date: date, cycle: int, exchange_mic: str, currency: str, asset_class: str
) -> date:
    """Trade date plus `cycle` settlement days (T+0 rolls to the next settlement day when the
    trade date is not one). Crypto settles on calendar days."""
    if asset_class == AssetClass.CRYPTO:
        return trade_date + timedelta(days=cycle)
    day = trade_date
    remaining = cycle
    if remaining == 0:
        while not is_settlement_day(exchange_mic=exchange_mic, currency=currency, day=day):
            day += timedelta(days=1)
        return day
    while remaining:
        day += timedelta(days=1)
        if is_settlement_day(exchange_mic=exchange_mic, currency=currency, day=day):
            remaining -= 1
    return day


def settlement_date(*, security: Security, trade_date: date) -> date:
    return settlement_date_for(
        trade_date=trade_date,
        cycle=security.settlement_cycle,
        exchange_mic=security.exchange_mic,
        currency=security.currency,
        asset_class=security.asset_class,
    )
