"""Commission and fees of an allocation (interim: the fee schedule lands on the money branch)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from django.conf import settings

from oms.money import money_round
from orders.models import SELL_SIDES


@dataclass(frozen=True)
class Charges:
    commission: Decimal
    fees: Decimal
    breakdown: dict[str, Decimal] = field(default_factory=dict)


def charges_for(
    *, security, side: str, quantity: Decimal, gross: Decimal, trade_date: date, broker
) -> Charges:
    currency = security.currency
    commission = Decimal(0)
    if broker is not None:
        commission = money_round(
            gross * broker.commission_bps / Decimal(10_000)
            + quantity * broker.commission_per_share,
            currency,
        )
    fees = Decimal(0)
    if side in SELL_SIDES:
        fees = money_round(gross * Decimal(str(settings.OMS_REGULATORY_FEE_RATE)), currency)
    return Charges(commission, fees, {"SEC_FEE": fees} if fees else {})
