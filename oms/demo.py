"""The demo firm: who works there, which funds they run, what the funds hold."""

from __future__ import annotations

import random
from decimal import Decimal
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import Group, User
from django.db import transaction
from django.utils import timezone

from fixgateway.models import Broker
from positions.services import OpeningCash, OpeningPosition, opening_balances_load

from . import roles
from .models import Account, AccountTag, Custodian, Security
from .services import securities_load

SECURITIES_CSV = Path(__file__).parent / "fixtures" / "securities.csv"

USERS = [
    # username, first, last, role
    ("pm1", "Paula", "Morgan", roles.PM),
    ("pm2", "Peter", "Marsh", roles.PM),
    ("trader1", "Tara", "Reyes", roles.TRADER),
    ("compliance1", "Colin", "Okafor", roles.COMPLIANCE),
    ("ops1", "Olga", "Svensson", roles.OPERATIONS),
    ("admin", "Ada", "Ministrator", roles.ADMIN),
]

CUSTODIANS = [
    ("STATESTREET", "State Street Bank and Trust", "SBOSUS33"),
    ("BNYMELLON", "The Bank of New York Mellon", "IRVTUS3N"),
]

ACCOUNTS = [
    # code, name, manager, custodian, cash account, may short, tags, opening cash (USD)
    (
        "PENSION1",
        "Northwind Pension Fund",
        "pm1",
        "STATESTREET",
        True,
        False,
        ["ERISA"],
        "250000000",
    ),
    ("GROWTH1", "Northwind Growth Equity", "pm1", "STATESTREET", True, False, [], "40000000"),
    ("INCOME1", "Northwind Dividend Income", "pm1", "BNYMELLON", True, False, [], "30000000"),
    ("TECH1", "Northwind Technology Fund", "pm1", "BNYMELLON", True, False, [], "25000000"),
    ("LSEQ2", "Harbor Long/Short Equity", "pm2", "STATESTREET", False, True, ["HEDGE"], "60000000"),
    ("VALUE2", "Harbor Value Fund", "pm2", "BNYMELLON", True, False, [], "35000000"),
    (
        "GLOBAL2",
        "Harbor Global Opportunities",
        "pm2",
        "STATESTREET",
        True,
        False,
        ["UCITS"],
        "45000000",
    ),
    ("ENDOW2", "Harbor University Endowment", "pm2", "BNYMELLON", True, False, [], "80000000"),
]

BROKERS = [
    # code, name, port, sender, target, commission bps
    ("SIMBRK", "Simulated Broker One", 9878, "OMS", "SIMBRK", "2.5"),
    ("SIMBRK2", "Simulated Broker Two", 9879, "OMS", "SIMBRK2", "1.5"),
]


def _users(password: str) -> dict[str, User]:
    users = {}
    for username, first, last, role in USERS:
        user = User.objects.filter(username=username).first()
        if user is None:
            user = User(
                username=username, first_name=first, last_name=last, email=f"{username}@example.com"
            )
            user.set_password(password)
            user.is_staff = role in roles.STAFF_ROLES
            user.is_superuser = role == roles.ADMIN
            user.save()
            user.groups.add(Group.objects.get(name=role))
        users[username] = user
    return users


def _opening_positions(
    account: Account, securities: list[Security], seed: int
) -> list[OpeningPosition]:
    rng = random.Random(seed)
    equities = [s for s in securities if s.asset_class in ("EQUITY", "ETF") and s.currency == "USD"]
    chosen = rng.sample(equities, k=min(25, len(equities)))
    result = []
    for security in chosen:
        target_value = Decimal(rng.randrange(200_000, 4_000_000))
        quantity = (target_value / security.reference_price).quantize(Decimal("1"))
        if quantity <= 0:
            continue
        cost = (security.reference_price * Decimal(str(rng.uniform(0.7, 1.2)))).quantize(
            Decimal("0.01")
        )
        result.append(OpeningPosition(account, security, quantity, cost))
    return result


# (name, kind, parameters, severity, mandate): a typical long-only and hedge-fund rule book.
RULES = [
    ("Restricted list", "RESTRICTED_LIST", {}, "BLOCK", "Firm restricted list (MNPI, legal)"),
    (
        "Issuer max 10% of NAV",
        "ISSUER_CONCENTRATION",
        {"max_pct": "10"},
        "BLOCK",
        "Diversification, Investment Company Act s5(b)(1)",
    ),
    (
        "Sector max 35% of NAV",
        "SECTOR_CONCENTRATION",
        {"max_pct": "35"},
        "WARN",
        "Fund prospectus sector limits",
    ),
    (
        "Firm ownership 5% (13D/G)",
        "FIRM_OWNERSHIP",
        {"max_pct": "5"},
        "WARN",
        "SEC 13D/13G beneficial ownership reporting",
    ),
    (
        "Firm ownership 10%",
        "FIRM_OWNERSHIP",
        {"max_pct": "10"},
        "BLOCK",
        "Section 16 insider threshold",
    ),
    (
        "Fat finger",
        "ORDER_SIZE",
        {"max_quantity": "1000000", "max_notional": "50000000"},
        "BLOCK",
        "Desk order-size limits",
    ),
    ("Price band 5%", "PRICE_BAND", {"max_deviation_pct": "5"}, "WARN", "Desk price limits"),
    ("Max 20% of ADV", "ADV_PARTICIPATION", {"max_pct": "20"}, "WARN", "Liquidity policy"),
    ("No short sales", "NO_SHORT", {}, "BLOCK", "Long-only mandates"),
    ("Cash available", "CASH", {}, "BLOCK", "No leverage in cash accounts"),
    ("Opposite-side conflict", "OPPOSITE_SIDE", {}, "WARN", "Fair allocation / cross-trade policy"),
    (
        "Duplicate order (5 min)",
        "DUPLICATE_ORDER",
        {"window_minutes": 5},
        "WARN",
        "Operational risk",
    ),
]
RESTRICTED = [("TSLA", "Wall-crossed on a pending capital raise (MNPI)")]


def _rules(officer: User, now) -> int:
    """The demo rule book, written through compliance's services (versioned, audited)."""
    from compliance.models import Rule
    from compliance.services import restricted_entry_add, rule_create

    if Rule.objects.exists():
        return 0
    for name, kind, parameters, severity, mandate in RULES:
        rule_create(
            actor=officer,
            as_of=now,
            name=name,
            kind=kind,
            parameters=parameters,
            severity=severity,
            mandate=mandate,
        )
    for symbol, reason in RESTRICTED:
        security = Security.objects.filter(symbol=symbol).first()
        if security is not None:
            restricted_entry_add(
                actor=officer,
                as_of=now,
                security_id=security.pk,
                reason=reason,
                start_date=now.date(),
            )
    return len(RULES)


@transaction.atomic
def demo_load(*, password: str | None = None) -> dict[str, int]:
    """Load the demo firm. Idempotent: what exists is left exactly as it is."""
    roles.roles_sync()
    password = password or settings.OMS_DEMO_PASSWORD
    now = timezone.now()
    report = securities_load(text=SECURITIES_CSV.read_text(encoding="utf-8"), as_of=now)
    if report.errors:
        raise ValueError("securities.csv is invalid: " + "; ".join(report.errors[:5]))
    users = _users(password)
    custodians = {}
    for code, name, bic in CUSTODIANS:
        custodians[code], _ = Custodian.objects.get_or_create(
            code=code, defaults={"name": name, "bic": bic}
        )
    securities = list(Security.objects.filter(active=True).order_by("symbol"))
    created_accounts = 0
    for index, (code, name, manager, custodian, cash_acct, may_short, tags, cash) in enumerate(
        ACCOUNTS
    ):
        account, created = Account.objects.get_or_create(
            code=code,
            defaults={
                "name": name,
                "custodian": custodians[custodian],
                "custodian_account": f"{custodian[:3]}-{100000 + index}",
                "is_cash_account": cash_acct,
                "may_short": may_short,
            },
        )
        if not created:
            continue
        created_accounts += 1
        account.managers.add(users[manager])
        for tag in tags:
            account.tags.add(AccountTag.objects.get_or_create(name=tag)[0])
        opening_balances_load(
            positions=_opening_positions(account, securities, seed=index),
            cash=[OpeningCash(account, "USD", Decimal(cash))],
        )
    created_rules = _rules(users["compliance1"], now)
    for code, name, port, sender, target, bps in BROKERS:
        Broker.objects.get_or_create(
            code=code,
            defaults={
                "name": name,
                "port": port,
                "sender_comp_id": sender,
                "target_comp_id": target,
                "commission_bps": Decimal(bps),
            },
        )
    return {"securities": report.applied, "accounts": created_accounts, "rules": created_rules}
