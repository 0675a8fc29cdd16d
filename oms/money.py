"""Money: one rounding policy for the whole project (interim; see the money branch)."""

from __future__ import annotations

from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal

from oms.errors import DomainError

ROUNDING = ROUND_HALF_UP
_PLACES = {"JPY": 0, "KRW": 0, "BHD": 3, "KWD": 3, "OMR": 3, "JOD": 3, "BTC": 8, "ETH": 8}


def minor_unit(currency: str) -> int:
    if not (len(currency) == 3 and currency.isalpha() and currency.isupper()):
        raise DomainError(f"{currency!r} is not a currency code.", code="invalid_currency")
    return _PLACES.get(currency, 2)


def _quantum(currency: str) -> Decimal:
    return Decimal(1).scaleb(-minor_unit(currency))


def money_round(amount: Decimal, currency: str) -> Decimal:
    return amount.quantize(_quantum(currency), rounding=ROUNDING)


def money_split(*, total: Decimal, weights: list[Decimal], currency: str) -> list[Decimal]:
    quantum = _quantum(currency)
    weight_sum = sum(weights, Decimal(0))
    if weight_sum <= 0:
        raise DomainError("Nothing to split money across.", code="invalid")
    sign = -1 if total < 0 else 1
    units = int((abs(total) / quantum).to_integral_value(rounding=ROUND_DOWN))
    exact = [Decimal(units) * w / weight_sum for w in weights]
    parts = [int(x.to_integral_value(rounding=ROUND_DOWN)) for x in exact]
    left = units - sum(parts)
    for i in sorted(range(len(weights)), key=lambda i: (-(exact[i] - parts[i]), i))[:left]:
        parts[i] += 1
    return [sign * p * quantum for p in parts]
