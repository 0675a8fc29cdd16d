"""Money: one rounding policy for the whole project.

An amount of money is rounded to its currency's minor unit (cents for USD, none for JPY, fils
for BHD, ...) with ROUND_HALF_UP, which in Python's decimal module means halves go away from
zero (0.125 -> 0.13, -0.125 -> -0.13). That is the convention custodians, brokers and
clearing houses use on trade confirmations and settlement instructions (commission, fees and
net money are computed in full precision, then rounded half up once to the minor unit). Using
it everywhere means our figures agree with theirs to the cent; banker's rounding
(ROUND_HALF_EVEN) would disagree on every exact half.

Round once, at the end, per figure: never round an intermediate that feeds another figure.
When a rounded total has to be shared out (a block's fees across its accounts), use
money_split, whose parts add up to the total exactly.
"""

from __future__ import annotations

import calendar
import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from oms.errors import DomainError

ROUNDING = ROUND_HALF_UP  # the project's one rounding mode for money
# ISO 4217 minor units of the currencies in common institutional use.
_ISO_MINOR_UNITS = {
    **dict.fromkeys(
        ("USD", "EUR", "GBP", "CHF", "CAD", "AUD", "HKD", "SGD", "SEK", "NOK", "DKK", "NZD"), 2
    ),
    **dict.fromkeys(("JPY", "KRW"), 0),
    **dict.fromkeys(("BHD", "KWD", "OMR", "JOD"), 3),
}
# Crypto assets the project's securities trade (oms/fixtures/securities.csv: BTC-USD, ETH-USD,
# SOL-USD, LTC-USD) and the common stablecoins. Held to 8 places, the project's stored precision
# (oms.fields.DECIMAL_PLACES): a satoshi for BTC; finer native units (wei, lamports) cannot be
# stored anyway.
_CRYPTO_MINOR_UNITS = dict.fromkeys(("BTC", "ETH", "SOL", "LTC", "USDT", "USDC"), 8)
MINOR_UNITS: dict[str, int] = {**_ISO_MINOR_UNITS, **_CRYPTO_MINOR_UNITS}
# Other ISO 4217 codes are three capital letters; most have two decimal places.
DEFAULT_MINOR_UNIT = 2
_ISO_CODE = re.compile(r"[A-Z]{3}")


def decimal_text(value: Decimal) -> str:
    """A Decimal as people write it: 10, not 1E+1 or 10.00000000 (the 8-place columns)."""
    return format(value.normalize(), "f")


def minor_unit(currency: str) -> int:
    """Decimal places of the currency's minor unit: 2 for USD, 0 for JPY, 3 for KWD, 8 for BTC;
    2 for any other three-letter code. Anything else is not a currency code (DomainError)."""
    if isinstance(currency, str):
        places = MINOR_UNITS.get(currency)
        if places is not None:
            return places
        if _ISO_CODE.fullmatch(currency):
            return DEFAULT_MINOR_UNIT
    raise DomainError(f"{currency!r} is not a currency code.", code="invalid_currency")


def _quantum(currency: str) -> Decimal:
    return Decimal(1).scaleb(-minor_unit(currency))


def _as_decimal(value: Decimal | int, what: str) -> Decimal:
    # bool is an int; a float here is a bug (binary fractions are not money).
    if isinstance(value, bool) or not isinstance(value, Decimal | int):
        raise TypeError(f"{what} must be a Decimal, not {type(value).__name__}")
    value = Decimal(value)
    if not value.is_finite():
        raise DomainError(f"{what} must be a finite amount, not {value}.", code="invalid_amount")
    return value


def money_round(amount: Decimal, currency: str) -> Decimal:
    """`amount` rounded half up (away from zero) to the currency's minor unit."""
    return _as_decimal(amount, "amount").quantize(_quantum(currency), rounding=ROUNDING)


def _whole(value: Decimal, scale: int) -> int:
    """value x 10**scale as an integer, exactly (whatever the decimal context's precision);
    scale is at least the number of value's decimal places."""
    sign, digits, exponent = value.as_tuple()
    number = int("".join(map(str, digits)))
    if number == 0:
        return 0  # a zero may carry more places than `scale`
    number *= 10 ** (exponent + scale)
    return -number if sign else number


def money_split(*, total: Decimal, weights: Sequence[Decimal], currency: str) -> list[Decimal]:
    """Split `total` (already in the currency's minor units) into parts proportional to
    `weights` that add up to `total` exactly.

    Each part starts as its exact share floored toward zero to the minor unit; the minor units
    left over go one each to the parts with the largest remainders, ties to the earlier index,
    so the same inputs always give the same split. A negative total splits as its absolute
    value with the sign put back. A zero weight gets zero. Weights must not be negative and
    must not all be zero."""
    total = _as_decimal(total, "total")
    places = minor_unit(currency)
    quantum = Decimal(1).scaleb(-places)
    if total != total.quantize(quantum, rounding=ROUNDING):
        raise DomainError(
            f"{total} has more decimal places than {currency} has (round it first).",
            code="invalid_amount",
        )
    decimals = [_as_decimal(w, "weight") for w in weights]
    if any(w < 0 for w in decimals):
        raise DomainError("Split weights cannot be negative.", code="invalid_weights")
    # In integers: the weights scaled to whole numbers by one power of ten, each exact share
    # units x w / whole is a quotient (the floor) and a remainder over one common denominator
    # (the fraction), exactly as in Fraction arithmetic and far cheaper for thousands of parts.
    scale = max([0, *(-w.as_tuple().exponent for w in decimals if w)])
    shares = [_whole(w, scale) for w in decimals]
    whole = sum(shares)
    if whole == 0:
        raise DomainError("Split weights cannot all be zero.", code="invalid_weights")
    units = int(total.scaleb(places))  # exact: total is a whole number of minor units
    sign, units = (-1 if units < 0 else 1), abs(units)
    parts, rest = [], []
    for w in shares:
        q, r = divmod(units * w, whole)  # floor: every share is >= 0 here
        parts.append(q)
        rest.append(r)
    residual = units - sum(parts)
    # Largest remainder first, earlier index on a tie. The remainders add up to `residual` and
    # each is below one, so more than `residual` of them are positive: a zero weight (remainder
    # zero) is never reached.
    order = sorted(range(len(parts)), key=lambda i: (-rest[i], i))
    for i in order[:residual]:
        parts[i] += 1
    return [(Decimal(sign * p) * quantum).quantize(quantum) for p in parts]


# Prices (averages included) are kept to 8 places, the database's price precision (oms.fields).
PRICE_PLACES = Decimal("0.00000001")


def average_price(value: Decimal, quantity: Decimal) -> Decimal | None:
    """The average price of `quantity` filled for `value` in all, to 8 places (the decimal
    context's rounding, half even); None when nothing is filled. One rule for a block's, an
    order's and a trading day's average, always from the totals so it cannot drift."""
    return (value / quantity).quantize(PRICE_PLACES) if quantity else None


# --- instrument conventions: what a quantity at a price is worth ------------------------------
#
# One place turns (quantity, price) into money for every kind of instrument, so the portfolio
# snapshot, the compliance rules, the fat-finger check, the order ticket and booking agree:
# - UNIT: the price is per share or unit (equities, ETFs, funds, crypto);
# - PER_100: the price is per 100 of face and the quantity is face (bonds): 1,000,000 face at
#   99.50 is 995,000, not 99,500,000;
# - CONTRACT: the price is per unit of the underlying and one contract is `multiplier` units.
# A bond also accrues interest from its last coupon date: its value is the dirty amount, clean
# plus accrued. Nothing here rounds: callers round once per figure with money_round.


class Quotation:
    UNIT = "UNIT"
    PER_100 = "PER_100"
    CONTRACT = "CONTRACT"
    CHOICES = [
        (UNIT, "Per unit"),
        (PER_100, "Per 100 of face (bonds)"),
        (CONTRACT, "Per contract (price x multiplier)"),
    ]


class DayCount:
    THIRTY_360 = "30/360"
    ACT_ACT = "ACT/ACT"
    ACT_360 = "ACT/360"
    CHOICES = [
        (THIRTY_360, "30/360 (bond basis)"),
        (ACT_ACT, "ACT/ACT (ICMA)"),
        (ACT_360, "ACT/360"),
    ]


HUNDRED = Decimal(100)
ONE = Decimal(1)
ZERO = Decimal(0)


def _add_months(day: date, months: int, *, end_of_month: bool) -> date:
    month0 = day.month - 1 + months
    year, month = day.year + month0 // 12, month0 % 12 + 1
    last = calendar.monthrange(year, month)[1]
    return date(year, month, last if end_of_month else min(day.day, last))


@functools.lru_cache(maxsize=4096)
def coupon_period(*, maturity: date, frequency: int, on: date) -> tuple[date, date]:
    """The coupon dates around `on`: (previous, next), previous <= on < next. Coupons fall
    every 12/frequency months, counted back from maturity (a month-end maturity keeps
    month-end coupons)."""
    if frequency not in (1, 2, 4, 12):
        raise DomainError(f"A coupon frequency of {frequency} a year is not supported.")
    step = 12 // frequency
    eom = maturity.day == calendar.monthrange(maturity.year, maturity.month)[1]
    # Jump close to `on` first (whole periods between them), then walk the last step or two.
    periods = max(((maturity.year - on.year) * 12 + maturity.month - on.month) // step - 1, 0)
    following = _add_months(maturity, -step * periods, end_of_month=eom)
    previous = _add_months(maturity, -step * (periods + 1), end_of_month=eom)
    while previous > on:
        periods += 1
        following = previous
        previous = _add_months(maturity, -step * (periods + 1), end_of_month=eom)
    return previous, following


def days_30_360(start: date, end: date) -> int:
    """Days between two dates on the 30/360 bond basis (ISDA 2006 4.16(f)): a 31st counts as
    the 30th, and an end on the 31st counts as the 30th when the start is the 30th or 31st."""
    d1 = min(start.day, 30)
    d2 = 30 if end.day == 31 and d1 == 30 else end.day
    return 360 * (end.year - start.year) + 30 * (end.month - start.month) + d2 - d1


def accrued_fraction(
    *, day_count: str, frequency: int, start: date, end: date, period: tuple[date, date]
) -> Decimal:
    """The fraction of a year's coupon accrued from `start` (the last coupon, or the dated
    date) to `end` (the settlement or valuation date); `period` is the regular coupon period
    holding `end` (ACT/ACT divides by its length)."""
    if end <= start:
        return ZERO
    if day_count == DayCount.THIRTY_360:
        return Decimal(days_30_360(start, end)) / 360
    if day_count == DayCount.ACT_360:
        return Decimal((end - start).days) / 360
    if day_count == DayCount.ACT_ACT:
        # ICMA: actual days over the actual days of the (regular) coupon period, per coupon.
        days_in_period = (period[1] - period[0]).days
        return Decimal((end - start).days) / (days_in_period * frequency)
    raise DomainError(f"Unknown day count {day_count!r}.")


@dataclass(frozen=True)
class Terms:
    """How a security's price becomes money (see the section's comment). Built from a
    Security (`Terms.of(security)`) or from the same fields read as values."""

    quotation: str = Quotation.UNIT
    multiplier: Decimal = ONE
    coupon_pct: Decimal | None = None
    coupon_frequency: int | None = None
    day_count: str = ""
    maturity_date: date | None = None
    dated_date: date | None = None

    FIELDS = (
        "price_quotation",
        "contract_multiplier",
        "coupon_rate",
        "coupon_frequency",
        "day_count",
        "maturity_date",
        "dated_date",
    )

    @classmethod
    def of(cls, security: Any) -> Terms:
        return cls.from_values(*(getattr(security, name, None) for name in cls.FIELDS))

    @classmethod
    def from_values(
        cls, quotation, multiplier, coupon_pct, frequency, day_count, maturity, dated
    ) -> Terms:
        if (quotation or Quotation.UNIT) == Quotation.UNIT and not coupon_pct:
            return PLAIN
        return cls(
            quotation=quotation or Quotation.UNIT,
            multiplier=multiplier if multiplier is not None else ONE,
            coupon_pct=coupon_pct,
            coupon_frequency=frequency,
            day_count=day_count or "",
            maturity_date=maturity,
            dated_date=dated,
        )

    @property
    def price_factor(self) -> Decimal:
        """Money per unit of quantity per unit of price."""
        if self.quotation == Quotation.PER_100:
            return ONE / HUNDRED
        if self.quotation == Quotation.CONTRACT:
            return self.multiplier
        return ONE

    @property
    def accrues(self) -> bool:
        return bool(
            self.coupon_pct and self.coupon_frequency and self.day_count and self.maturity_date
        )

    def accrued_per_unit(self, on: date) -> Decimal:
        """Interest accrued on one unit of face from the last coupon (or the dated date) to
        `on`; zero for what pays no coupon, and from maturity on."""
        if not self.accrues or on >= self.maturity_date:
            return ZERO
        previous, following = coupon_period(
            maturity=self.maturity_date, frequency=self.coupon_frequency, on=on
        )
        start = max(previous, self.dated_date) if self.dated_date else previous
        fraction = accrued_fraction(
            day_count=self.day_count,
            frequency=self.coupon_frequency,
            start=start,
            end=on,
            period=(previous, following),
        )
        return self.coupon_pct / HUNDRED * fraction

    def unit_value(self, price: Decimal, on: date) -> Decimal:
        """What one unit of quantity is worth at `price` on `on`, accrued interest included
        (the dirty value)."""
        if self is PLAIN:
            return price
        return price * self.price_factor + self.accrued_per_unit(on)


PLAIN = Terms()


@dataclass(frozen=True)
class Notional:
    clean: Decimal
    accrued: Decimal

    @property
    def total(self) -> Decimal:
        return self.clean + self.accrued


def notional(
    *,
    terms: Terms,
    quantity: Decimal,
    on: date,
    price: Decimal | None = None,
    value: Decimal | None = None,
) -> Notional:
    """quantity at price, in the security's currency: clean (quantity x price x multiplier, or
    / 100 for a bond), accrued interest to `on`, and their total (the dirty amount every
    figure of the money view uses). Unrounded.

    Booking passes `value` instead of `price`: the sum of quantity x price over the executions
    a share of a day is made of (exact, where an average price would be rounded). Trades book
    their accrued interest to the settlement date: that is what the buyer pays the seller."""
    if (price is None) == (value is None):
        raise TypeError("notional takes a price or a value, not both")
    if value is None:
        value = quantity * price
    return Notional(
        clean=value * terms.price_factor,
        accrued=quantity * terms.accrued_per_unit(on),
    )


def notional_rounded(
    *, terms: Terms, quantity: Decimal, value: Decimal, on: date, currency: str
) -> Notional:
    """`notional` of a booking with its clean amount and its accrued interest each rounded
    once to the currency's minor unit (what a confirmation and a settlement file show; their
    total is then the cash that moves)."""
    n = notional(terms=terms, quantity=quantity, value=value, on=on)
    return Notional(clean=money_round(n.clean, currency), accrued=money_round(n.accrued, currency))
