"""What one account's allocation costs on top of its gross: the broker's commission, and the
regulatory fees and transaction taxes of the FeeRule rows in force on the trade date.

Every figure is rounded with oms.money.money_round in the security's currency, each fee on its
own, so `fees` is exactly the sum of `breakdown`."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from django.db.models import Q

from oms.errors import DomainError
from oms.models import AssetClass
from oms.money import money_round
from orders.models import BUY_SIDES, SELL_SIDES

from .models import FeeRule

BPS = Decimal(10_000)


@dataclass(frozen=True)
class Charges:
    commission: Decimal
    fees: Decimal
    breakdown: dict[str, Decimal]  # fee code -> amount, for every rule that applied


def _rule_side(side: str) -> str:
    if side in BUY_SIDES:
        return FeeRule.Side.BUY
    if side in SELL_SIDES:
        return FeeRule.Side.SELL
    raise DomainError(f"{side!r} is not an order side.", code="invalid_side")


def fee_rules_in_force(*, side: str, trade_date: date) -> list[FeeRule]:
    """The fee rules for this side in force on the trade date, whatever the security (one
    query): a caller charging many allocations of one block reads them once and passes them to
    charges_for(rules=...)."""
    return list(
        FeeRule.objects.filter(side=_rule_side(side), valid_from__lte=trade_date)
        .filter(Q(valid_to__isnull=True) | Q(valid_to__gt=trade_date))
        .order_by("code", "valid_from", "pk")
    )


def _applies(rule: FeeRule, *, security, rule_side: str, trade_date: date) -> bool:
    if security.asset_class == AssetClass.CRYPTO:
        return False  # never, whatever a row says (the table refuses it too)
    if rule.side != rule_side or security.asset_class not in rule.asset_classes:
        return False
    if not (
        rule.valid_from <= trade_date and (rule.valid_to is None or trade_date < rule.valid_to)
    ):
        return False
    if rule.exchange_mics and security.exchange_mic not in rule.exchange_mics:
        return False
    if rule.isin_countries and (security.isin or "")[:2] not in rule.isin_countries:
        return False
    return True


def _fee(rule: FeeRule, *, security, quantity: Decimal, gross: Decimal) -> Decimal:
    needs_currency = (
        rule.basis == FeeRule.Basis.PER_UNIT or rule.minimum is not None or rule.maximum is not None
    )
    if needs_currency and rule.currency != security.currency:
        raise DomainError(
            f"Fee rule {rule} is in {rule.currency}, {security.symbol} trades in "
            f"{security.currency}: the rule needs a row in {security.currency}.",
            code="fee_currency_mismatch",
        )
    if rule.basis == FeeRule.Basis.BPS:
        amount = gross * rule.rate / BPS
    else:
        amount = quantity * rule.rate
    if amount == 0:
        return money_round(amount, security.currency)  # nothing traded: no minimum either
    if rule.minimum is not None:
        amount = max(amount, rule.minimum)
    if rule.maximum is not None:
        amount = min(amount, rule.maximum)
    return money_round(amount, security.currency)


def charges_for(
    *,
    security,
    side: str,
    quantity: Decimal,
    gross: Decimal,
    trade_date: date,
    broker,
    rules: Iterable[FeeRule] | None = None,
) -> Charges:
    """Commission and fees for one allocation of `quantity` at `gross` (already rounded).

    Commission: the broker's basis points of gross plus its rate per share (no broker, none).
    Fees: each FeeRule in force on the trade date for the security (asset class, exchange,
    ISIN country) and side (BUY covers buy and buy to cover, SELL covers sell and sell short),
    a rate of gross or per unit, held between its minimum and maximum. One query reads the
    rules, unless `rules` (from fee_rules_in_force) is given; those are filtered the same way."""
    rule_side = _rule_side(side)
    if quantity < 0 or gross < 0:
        raise DomainError("Quantity and gross of an allocation are not negative.", code="invalid")
    currency = security.currency
    commission = money_round(Decimal(0), currency)
    if broker is not None:
        commission = money_round(
            gross * broker.commission_bps / BPS + quantity * broker.commission_per_share, currency
        )
    if rules is None:
        rules = fee_rules_in_force(side=side, trade_date=trade_date)
    breakdown: dict[str, Decimal] = {}
    for rule in rules:
        if _applies(rule, security=security, rule_side=rule_side, trade_date=trade_date):
            amount = _fee(rule, security=security, quantity=quantity, gross=gross)
            breakdown[rule.code] = breakdown.get(rule.code, Decimal(0)) + amount
    fees = sum(breakdown.values(), money_round(Decimal(0), currency))
    return Charges(commission=commission, fees=fees, breakdown=breakdown)
