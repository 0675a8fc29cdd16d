"""Pre-trade compliance speed (issue 4), in the scratch database the runner gives it.

Firm: 2,000 securities, 50 accounts of 200 positions each, 1,000 other open orders, 25 active
rules. The money view has work to do: a tenth of the securities are bonds (quoted per 100 of
face, accruing 30/360, ACT/ACT or ACT/360), a fifth quoted in EUR or GBP, a fifth of the accounts
keep their books in EUR (FX rates EUR/USD and GBP/USD), and every account has unsettled fills
(1,000 bookings settling in two days). Measures:
- a 500-order basket: created through order capture, checked as one program and staged
  (target <= 1.0 s), and the check alone (compliance_check_orders), and the engine alone;
- one order through POST /api/compliance/check/: p50 and p99 (target p99 <= 50 ms);
- 10,000 orders checked at once (target <= 10 s), and the engine alone on them.

Run with `python -m oms.launch bench compliance` (`make bench ARGS=compliance`).
"""

from __future__ import annotations

import random
import statistics
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

SECURITIES = 2_000
ACCOUNTS = 50
POSITIONS_PER_ACCOUNT = 200
OTHER_OPEN_ORDERS = 1_000
BASKET = 500
API_SAMPLES = 300
MANY = 10_000
AS_OF = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)
UNSETTLED_FILLS_PER_ACCOUNT = 20
DAY_COUNTS = ("30/360", "ACT/ACT", "ACT/360")


def _currency(i: int) -> str:
    return {3: "EUR", 6: "GBP"}.get(i % 10, "USD")


def _is_bond(i: int) -> bool:
    return i % 10 == 9


def _firm(rng: random.Random):
    from django.contrib.auth.models import Group, User
    from django.db import transaction

    from compliance.models import RuleKind
    from compliance.services import restricted_entry_add, rule_create
    from oms import roles
    from oms.models import Account, AccountTag, Custodian, Issuer, Security
    from orders.models import Order
    from positions.models import CashBalance, Position
    from positions.services import FillBooking, fx_rate_set, position_fills_apply

    pm = User.objects.create_user("bench_pm", password="bench-pass-123")
    pm.groups.add(Group.objects.get_or_create(name=roles.PM)[0])
    officer = User.objects.create_user("bench_cco", password="bench-pass-123", is_staff=True)
    officer.groups.add(Group.objects.get_or_create(name=roles.COMPLIANCE)[0])
    sectors = [
        "Energy",
        "Financials",
        "Health Care",
        "Industrials",
        "Utilities",
        "Materials",
        "Information Technology",
        "Consumer Staples",
        "Real Estate",
        "Communication",
    ]
    issuers = Issuer.objects.bulk_create([Issuer(name=f"Bench Issuer {i}") for i in range(1500)])

    def bond_terms(i: int) -> dict:
        if not _is_bond(i):
            return {}
        return {
            "asset_class": "BOND",
            "lot_size": Decimal(1000),
            "price_quotation": "PER_100",
            "coupon_rate": Decimal(rng.randint(100, 800)) / 100,
            "coupon_frequency": (1, 2, 4)[i % 3],
            "day_count": DAY_COUNTS[i % 3],
            "maturity_date": date(2028 + i % 8, 1 + i % 12, 1 + i % 28),
        }

    securities = Security.objects.bulk_create(
        [
            Security(
                symbol=f"B{i:04d}",
                name=f"Bench {i}",
                **{
                    "asset_class": "EQUITY",
                    "exchange_mic": "XNYS",
                    "currency": _currency(i),
                    "sector": sectors[i % len(sectors)],
                    "issuer": issuers[i % len(issuers)],
                    "shares_outstanding": Decimal(rng.randint(50, 5000) * 1_000_000),
                    "avg_daily_volume": Decimal(rng.randint(200, 20_000) * 1_000),
                    # A bond's price is per 100 of face and its quantities are face.
                    "reference_price": Decimal(rng.randint(9_000, 11_000)) / 100
                    if _is_bond(i)
                    else Decimal(rng.randint(500, 50_000)) / 100,
                    **bond_terms(i),
                },
            )
            for i in range(SECURITIES)
        ]
    )
    fx_rate_set(base="EUR", quote="USD", rate=Decimal("1.08"), as_of_date=AS_OF.date())
    fx_rate_set(base="GBP", quote="USD", rate=Decimal("1.27"), as_of_date=AS_OF.date())
    custodian = Custodian.objects.create(code="BENCHCUST", name="Bench custodian")
    erisa = AccountTag.objects.create(name="BENCH_ERISA")
    accounts = Account.objects.bulk_create(
        [
            Account(
                code=f"BA{i:02d}",
                name=f"Bench account {i}",
                custodian=custodian,
                custodian_account=f"C{i}",
                is_cash_account=i % 5 != 0,
                base_currency="EUR" if i % 5 == 1 else "USD",
            )
            for i in range(ACCOUNTS)
        ]
    )
    for acct in accounts:
        acct.managers.add(pm)
    for acct in accounts[::2]:
        acct.tags.add(erisa)
    positions = []
    holdings: dict[int, list] = {}
    for acct in accounts:
        held = rng.sample(securities, POSITIONS_PER_ACCOUNT)
        holdings[acct.pk] = held
        positions += [
            Position(
                account=acct, security=s, quantity=Decimal(rng.randint(10, 200)) * 100 * s.lot_size
            )
            for s in held
        ]
    Position.objects.bulk_create(positions)
    cash_fields = {f.name for f in CashBalance._meta.fields}
    CashBalance.objects.bulk_create(
        [
            CashBalance(
                account=acct,
                currency=acct.base_currency,
                settled=Decimal(5_000_000),
                **({"projected": Decimal(5_000_000)} if "projected" in cash_fields else {}),
            )
            for acct in accounts
        ]
    )
    # Unsettled fills: equity trades of the day, settling in two days (cash projected, not
    # settled), booked through the positions ledger as the allocation would.
    equities = [s for i, s in enumerate(securities) if not _is_bond(i)]
    trades = []
    for acct in accounts:
        # Sells of what the account holds, buys of anything.
        held = [s for s in holdings[acct.pk] if s.asset_class == "EQUITY"]
        half = UNSETTLED_FILLS_PER_ACCOUNT // 2
        trades += [(acct, "SELL", s) for s in rng.sample(held, half)]
        trades += [(acct, "BUY", s) for s in rng.sample(equities, half)]
    with transaction.atomic():
        position_fills_apply(
            bookings=[
                FillBooking(
                    account_id=acct.pk,
                    security_id=sec.pk,
                    side=side,
                    quantity=Decimal(100),
                    price=sec.reference_price,
                    trade_date=AS_OF.date(),
                    settle_date=AS_OF.date() + timedelta(days=2),
                    fill_ref=f"bench-unsettled-{n}",
                    currency=sec.currency,
                )
                for n, (acct, side, sec) in enumerate(trades)
            ],
            as_of=AS_OF,
        )
    Order.objects.bulk_create(
        [
            Order(
                account=acct,
                security=rng.choice(holdings[acct.pk]),
                side=rng.choice(["BUY", "SELL"]),
                quantity=Decimal(100),
                order_type="MARKET",
                status="STAGED",
                pm=pm,
                received_at=AS_OF,
                leaves_qty=Decimal(100),
            )
            for acct in (rng.choice(accounts) for _ in range(OTHER_OPEN_ORDERS))
        ]
    )
    kinds = [
        (RuleKind.RESTRICTED_LIST, {}),
        (RuleKind.ISSUER_CONCENTRATION, {"max_pct": "10"}),
        (RuleKind.SECTOR_CONCENTRATION, {"max_pct": "40"}),
        (RuleKind.FIRM_OWNERSHIP, {"max_pct": "5"}),
        (RuleKind.ORDER_SIZE, {"max_quantity": "1000000", "max_notional": "50000000"}),
        (RuleKind.PRICE_BAND, {"max_deviation_pct": "10"}),
        (RuleKind.ADV_PARTICIPATION, {"max_pct": "25"}),
        (RuleKind.NO_SHORT, {}),
        (RuleKind.CASH, {}),
        (RuleKind.OPPOSITE_SIDE, {}),
        (RuleKind.DUPLICATE_ORDER, {"window_minutes": 5}),
    ]
    count = 0
    for round_ in range(3):
        for kind, params in kinds:
            if count == 25:
                break
            scope = ["ALL", "TAG", "ACCOUNTS"][round_]
            rule_create(
                actor=officer,
                as_of=AS_OF,
                name=f"bench {count} {kind}",
                kind=kind,
                parameters=params,
                severity="WARN" if kind == RuleKind.OPPOSITE_SIDE else "BLOCK",
                scope=scope,
                tag_id=erisa.pk if scope == "TAG" else None,
                account_ids=[a.pk for a in accounts[:25]] if scope == "ACCOUNTS" else None,
            )
            count += 1
    for s in securities[:20]:
        restricted_entry_add(
            actor=officer, as_of=AS_OF, security_id=s.pk, reason="bench", start_date=AS_OF.date()
        )
    return pm, accounts, holdings, securities


def _lines(rng, accounts, holdings, securities, n):
    """Mostly sells of held stock and buys of others, across the PM's accounts."""
    lines = []
    for i in range(n):
        acct = accounts[i % len(accounts)]
        if i % 2:
            sec = rng.choice(holdings[acct.pk])
            lines.append((acct, sec, "SELL", Decimal(rng.randint(1, 10) * 10) * sec.lot_size))
        else:
            sec = securities[rng.randrange(20, len(securities))]
            lines.append((acct, sec, "BUY", Decimal(rng.randint(1, 50) * 10) * sec.lot_size))
    return lines


def _pending(pm, lines, as_of):
    from orders.models import Order

    return [
        o.pk
        for o in Order.objects.bulk_create(
            [
                Order(
                    account=acct,
                    security=sec,
                    side=side,
                    quantity=qty,
                    order_type="MARKET",
                    status="PENDING_COMPLIANCE",
                    pm=pm,
                    received_at=as_of,
                    leaves_qty=qty,
                )
                for acct, sec, side, qty in lines
            ]
        )
    ]


def _timed(fn):
    started = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - started


def _measure() -> dict:
    from django.db import connection, reset_queries
    from django.test import Client

    from bench.floors import request_floors
    from compliance.engine import program_evaluate
    from compliance.services import compliance_check_orders
    from compliance.specs import Candidate
    from orders.basket_services import basket_orders_create
    from orders.models import Order
    from orders.services import OrderLookups, order_input_validate

    rng = random.Random(4)
    pm, accounts, holdings, securities = _firm(rng)
    pm_accounts = accounts[:10]
    figures: dict = {
        "securities": SECURITIES,
        "accounts": ACCOUNTS,
        "positions": ACCOUNTS * POSITIONS_PER_ACCOUNT,
        "other_open_orders": OTHER_OPEN_ORDERS,
        "active_rules": 25,
    }

    # 1. A 500-order basket: validated, created, checked as one program, passed ones staged.
    lines = _lines(rng, pm_accounts, holdings, securities, BASKET)
    as_of = AS_OF + timedelta(minutes=10)
    lookups = OrderLookups(
        account_codes=[a.code for a, *_ in lines], symbols=[s.symbol for _a, s, *_ in lines]
    )

    def upload():
        items = [
            order_input_validate(
                pm=pm,
                data={
                    "account": a.code,
                    "symbol": s.symbol,
                    "side": side,
                    "quantity": q,
                    "order_type": "MARKET",
                },
                as_of=as_of,
                lookups=lookups,
            )
            for a, s, side, q in lines
        ]
        return basket_orders_create(pm=pm, items=items, name="bench", kind="UPLOAD", as_of=as_of)

    basket, seconds = _timed(upload)
    statuses = {}
    for status in basket.orders.values_list("status", flat=True):
        statuses[status] = statuses.get(status, 0) + 1
    figures["basket_500_upload_to_checked_and_staged_s"] = round(seconds, 3)
    figures["basket_500_statuses"] = statuses

    # The check alone (the same kind of basket, orders already inserted).
    as_of = AS_OF + timedelta(minutes=20)
    ids = _pending(pm, _lines(rng, pm_accounts, holdings, securities, BASKET), as_of)
    connection.force_debug_cursor = True
    reset_queries()
    _, seconds = _timed(lambda: compliance_check_orders(order_ids=ids, actor=pm, as_of=as_of))
    figures["basket_500_check_s"] = round(seconds, 3)
    figures["basket_500_check_queries"] = len(connection.queries)
    connection.force_debug_cursor = False
    candidates = [
        Candidate(
            key=o.pk,
            order_id=o.pk,
            account_id=o.account_id,
            security_id=o.security_id,
            side=o.side,
            quantity=o.quantity,
            pm_id=o.pm_id,
        )
        for o in Order.objects.filter(pk__in=ids)
    ]
    _, seconds = _timed(lambda: program_evaluate(candidates=candidates, as_of=as_of))
    figures["basket_500_engine_only_s"] = round(seconds, 3)

    # 2. One order through the API.
    client = Client()
    client.force_login(pm)
    samples = []
    for i in range(API_SAMPLES + 20):
        acct = pm_accounts[i % len(pm_accounts)]
        sec = rng.choice(holdings[acct.pk])
        body = {
            "account": acct.code,
            "symbol": sec.symbol,
            "side": rng.choice(["BUY", "SELL"]),
            "quantity": str(100 * sec.lot_size),
            "order_type": "MARKET",
        }
        started = time.perf_counter()
        response = client.post("/api/compliance/check/", body, content_type="application/json")
        elapsed = time.perf_counter() - started
        if response.status_code != 200:
            raise RuntimeError(f"check API answered {response.status_code}: {response.content!r}")
        if i >= 20:  # the first calls warm caches and connections
            samples.append(elapsed * 1000)
    samples.sort()
    figures["api_single_check_p50_ms"] = round(statistics.median(samples), 2)
    figures["api_single_check_p99_ms"] = round(samples[int(len(samples) * 0.99) - 1], 2)
    figures["api_samples"] = len(samples)

    # 3. 10,000 orders at once, across all 50 accounts.
    as_of = AS_OF + timedelta(minutes=30)
    ids = _pending(pm, _lines(rng, accounts, holdings, securities, MANY), as_of)
    verdicts, seconds = _timed(
        lambda: compliance_check_orders(order_ids=ids, actor=pm, as_of=as_of)
    )
    figures["orders_10000_check_s"] = round(seconds, 3)
    figures["orders_10000_verdicts"] = {
        v: sum(1 for x in verdicts.values() if x == v) for v in ("PASS", "WARN", "BLOCK")
    }
    candidates = [
        Candidate(
            key=o.pk,
            order_id=o.pk,
            account_id=o.account_id,
            security_id=o.security_id,
            side=o.side,
            quantity=o.quantity,
            pm_id=o.pm_id,
        )
        for o in Order.objects.filter(pk__in=ids)
    ]
    _, seconds = _timed(lambda: program_evaluate(candidates=candidates, as_of=as_of))
    figures["orders_10000_engine_only_s"] = round(seconds, 3)
    figures["targets"] = {
        "basket_500_upload_to_checked_s": 1.0,
        "api_single_check_p99_ms": 50,
        "orders_10000_s": 10,
    }
    figures["floors"] = {
        **request_floors(client, samples=API_SAMPLES),
        "decimal_50k_ms": _decimal_floor_ms(),
    }
    floor = figures["floors"]["api_floor_p50_ms"]
    figures["api_single_check_p99_x_floor"] = round(figures["api_single_check_p99_ms"] / floor, 1)
    return figures


def _decimal_floor_ms() -> float:
    """50,000 Decimal operations, as the engine's arithmetic: the machine's Python speed in
    this run (median of 5)."""
    times = []
    for _ in range(5):
        started = time.perf_counter()
        total = Decimal(0)
        for n in range(50_000):
            total += Decimal(n) * Decimal("1.0001") / Decimal(7)
        times.append(time.perf_counter() - started)
    return round(statistics.median(times) * 1000, 2)


def main(argv: list[str]) -> dict:
    from oms.roles import roles_sync

    roles_sync()  # the role groups (the API checks permissions through them)
    return _measure()
