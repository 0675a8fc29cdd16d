"""Small, explicit test data (the demo firm is tested on its own)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from django.contrib.auth.models import Group, User
from django.utils import timezone

from oms import roles
from oms.models import Account, Custodian, Issuer, Security

PASSWORD = "test-pass-123"


def user(username: str, *role_names: str) -> User:
    u = User.objects.create_user(username=username, password=PASSWORD)
    for role in role_names:
        u.groups.add(Group.objects.get_or_create(name=role)[0])
    if set(role_names) & roles.STAFF_ROLES:
        u.is_staff = True
        u.save(update_fields=["is_staff"])
    return u


def security(
    symbol: str,
    *,
    price: str = "100.00",
    sector: str = "Information Technology",
    issuer: str | None = None,
    lot: str = "1",
    tick: str = "0.01",
    shares_outstanding: str = "1000000000",
    adv: str = "5000000",
    asset_class: str = "EQUITY",
    currency: str = "USD",
    cycle: int = 1,
    **terms,
) -> Security:
    iss, _ = Issuer.objects.get_or_create(name=issuer or f"{symbol} Inc.")
    return Security.objects.create(
        symbol=symbol,
        name=f"{symbol} Corp",
        asset_class=asset_class,
        exchange_mic="XNAS",
        currency=currency,
        sector=sector,
        industry="Software",
        issuer=iss,
        lot_size=Decimal(lot),
        tick_size=Decimal(tick),
        shares_outstanding=Decimal(shares_outstanding),
        avg_daily_volume=Decimal(adv),
        reference_price=Decimal(price),
        reference_price_at=timezone.now(),
        settlement_cycle=cycle,
        **terms,
    )


def bond(symbol: str, *, price: str = "99.50") -> Security:
    """A 6% semi-annual 30/360 government note maturing 15 Feb 2030, quoted per 100 of face."""
    return security(
        symbol,
        price=price,
        asset_class="BOND",
        sector="Government",
        price_quotation="PER_100",
        coupon_rate=Decimal("6"),
        coupon_frequency=2,
        day_count="30/360",
        maturity_date=date(2030, 2, 15),
    )


def account(
    code: str,
    *managers: User,
    custodian: Custodian | None = None,
    cash_account: bool = True,
    may_short: bool = False,
) -> Account:
    cust = (
        custodian or Custodian.objects.get_or_create(code="CUST", defaults={"name": "Custodian"})[0]
    )
    acct = Account.objects.create(
        code=code,
        name=f"{code} Fund",
        custodian=cust,
        custodian_account=f"C-{code}",
        is_cash_account=cash_account,
        may_short=may_short,
    )
    acct.managers.add(*managers)
    return acct


@dataclass
class RefData:
    pm1: User
    pm2: User
    trader: User
    compliance: User
    ops: User
    admin: User
    acct1: Account
    acct2: Account
    aapl: Security
    msft: Security
    xom: Security


def build_refdata() -> RefData:
    pm1 = user("pm1", roles.PM)
    pm2 = user("pm2", roles.PM)
    trader = user("trader1", roles.TRADER)
    compliance = user("compliance1", roles.COMPLIANCE)
    ops = user("ops1", roles.OPERATIONS)
    admin = user("admin", roles.ADMIN)
    admin.is_superuser = True
    admin.save(update_fields=["is_superuser"])
    return RefData(
        pm1=pm1,
        pm2=pm2,
        trader=trader,
        compliance=compliance,
        ops=ops,
        admin=admin,
        acct1=account("ACCT1", pm1),
        acct2=account("ACCT2", pm2),
        aapl=security("AAPL", price="190.00"),
        msft=security("MSFT", price="410.00"),
        xom=security("XOM", price="110.00", sector="Energy"),
    )


def order(
    acct: Account,
    sec: Security,
    pm: User,
    *,
    side: str = "BUY",
    quantity: str = "100",
    status: str = "PENDING_COMPLIANCE",
    order_type: str = "MARKET",
    limit_price: str | None = None,
    **extra,
):
    """An order row in any status, written directly (for tests of what happens next)."""
    from orders.models import Order

    return Order.objects.create(
        account=acct,
        security=sec,
        pm=pm,
        side=side,
        quantity=Decimal(quantity),
        leaves_qty=Decimal(quantity),
        order_type=order_type,
        limit_price=Decimal(limit_price) if limit_price is not None else None,
        status=status,
        received_at=extra.pop("received_at", None) or timezone.now(),
        **extra,
    )
