"""Reading holdings and cash. Compliance and the order ticket read positions only through here."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

from django.db.models import Sum

from oms.fields import ZERO

from .models import CashBalance, Position


def position_quantities(*, account_ids: list[int]) -> dict[tuple[int, int], Decimal]:
    """{(account_id, security_id): quantity} for the accounts' non-zero positions."""
    rows = Position.objects.filter(account_id__in=account_ids).exclude(quantity=0)
    return {
        (r.account_id, r.security_id): r.quantity
        for r in rows.only("account_id", "security_id", "quantity")
    }


def position_quantity(*, account_id: int, security_id: int) -> Decimal:
    row = (
        Position.objects.filter(account_id=account_id, security_id=security_id)
        .values_list("quantity", flat=True)
        .first()
    )
    return row if row is not None else ZERO


def firm_quantities(*, security_ids: list[int]) -> dict[int, Decimal]:
    """{security_id: quantity the whole firm holds}."""
    rows = (
        Position.objects.filter(security_id__in=security_ids)
        .values("security_id")
        .annotate(total=Sum("quantity"))
    )
    return {r["security_id"]: r["total"] or ZERO for r in rows}


def cash_settled(*, account_ids: list[int], currency: str = "USD") -> dict[int, Decimal]:
    rows = CashBalance.objects.filter(account_id__in=account_ids, currency=currency)
    result: dict[int, Decimal] = defaultdict(lambda: ZERO)
    for row in rows:
        result[row.account_id] = row.settled
    return dict(result)


def account_navs(*, account_ids: list[int]) -> dict[int, Decimal]:
    """NAV per account in its base currency: positions at reference price plus cash.
    (Single-currency for now; FX conversion arrives with the position keeper.)"""
    navs: dict[int, Decimal] = {account_id: ZERO for account_id in account_ids}
    positions = Position.objects.filter(account_id__in=account_ids).select_related("security")
    for p in positions.only("account_id", "quantity", "security__reference_price"):
        navs[p.account_id] += p.quantity * (p.security.reference_price or ZERO)
    for c in CashBalance.objects.filter(account_id__in=account_ids):
        navs[c.account_id] += c.settled
    return navs
