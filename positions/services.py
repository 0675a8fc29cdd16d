from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.db import transaction

from oms.models import Account, Security

from .models import CashBalance, Position


@dataclass(frozen=True)
class OpeningPosition:
    account: Account
    security: Security
    quantity: Decimal
    avg_cost: Decimal


@dataclass(frozen=True)
class OpeningCash:
    account: Account
    currency: str
    amount: Decimal


@transaction.atomic
def opening_balances_load(
    *, positions: list[OpeningPosition], cash: list[OpeningCash], replace: bool = False
) -> tuple[int, int]:
    """Set start-of-day positions and cash. Without `replace`, existing rows are left alone
    (so loading the demo twice changes nothing)."""
    created = 0
    for item in positions:
        defaults = {
            "quantity": item.quantity,
            "avg_cost": item.avg_cost,
            "cost_basis": item.quantity * item.avg_cost,
            "opening_quantity": item.quantity,
            "opening_avg_cost": item.avg_cost,
        }
        if replace:
            Position.objects.update_or_create(
                account=item.account, security=item.security, defaults=defaults
            )
        else:
            _, was_created = Position.objects.get_or_create(
                account=item.account, security=item.security, defaults=defaults
            )
            created += was_created
    cash_created = 0
    for item in cash:
        defaults = {"settled": item.amount, "opening_settled": item.amount}
        if replace:
            CashBalance.objects.update_or_create(
                account=item.account, currency=item.currency, defaults=defaults
            )
        else:
            _, was_created = CashBalance.objects.get_or_create(
                account=item.account, currency=item.currency, defaults=defaults
            )
            cash_created += was_created
    return created, cash_created
