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

import re
from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal

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
