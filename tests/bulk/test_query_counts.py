"""Query counts pinned on the order-capture hot paths: checking a basket, creating one order,
confirming a basket. A basket's count must not grow with its size."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from compliance.models import RuleKind
from orders.basket_services import basket_confirm
from orders.entry import order_create
from orders.models import Order
from tests.compliance.conftest import fund, hold, make_rule

pytestmark = pytest.mark.django_db

AS_OF = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)
HEADER = "account,symbol,side,quantity,order_type,limit_price,stop_price,time_in_force,expire_date,instructions"
RULES = [
    (RuleKind.RESTRICTED_LIST, {}),
    (RuleKind.ISSUER_CONCENTRATION, {"max_pct": "60"}),
    (RuleKind.SECTOR_CONCENTRATION, {"max_pct": "90"}),
    (RuleKind.FIRM_OWNERSHIP, {"max_pct": "5"}),
    (RuleKind.ORDER_SIZE, {"max_quantity": "1000000", "max_notional": "50000000"}),
    (RuleKind.PRICE_BAND, {"max_deviation_pct": "10"}),
    (RuleKind.ADV_PARTICIPATION, {"max_pct": "25"}),
    (RuleKind.NO_SHORT, {}),
    (RuleKind.CASH, {}),
    (RuleKind.OPPOSITE_SIDE, {}),
    (RuleKind.DUPLICATE_ORDER, {"window_minutes": 5}),
]


@pytest.fixture
def firm(refdata):
    """Every rule kind in force, XOM restricted, two funded accounts holding all three stocks."""
    from compliance.services import restricted_entry_add

    for kind, params in RULES:
        make_rule(
            refdata.compliance,
            kind,
            params,
            severity="WARN" if kind == RuleKind.OPPOSITE_SIDE else "BLOCK",
        )
    restricted_entry_add(
        actor=refdata.compliance,
        as_of=AS_OF,
        security_id=refdata.xom.pk,
        reason="MNPI",
        start_date=AS_OF.date(),
    )
    for account in (refdata.acct1, refdata.acct2):
        fund(account, 50_000_000)
        for security in (refdata.aapl, refdata.msft, refdata.xom):
            hold(account, security, 100_000)
    return refdata


def _pending(refdata, n: int) -> list[int]:
    """n orders waiting for compliance, on both accounts and all three stocks."""
    symbols = [refdata.aapl, refdata.msft, refdata.xom]
    orders = Order.objects.bulk_create(
        [
            Order(
                account=refdata.acct1 if i % 2 else refdata.acct2,
                security=symbols[i % 3],
                side="SELL" if i % 4 == 1 else "BUY",
                quantity=Decimal(10 + i),
                order_type="MARKET",
                status="PENDING_COMPLIANCE",
                pm=refdata.pm1 if i % 2 else refdata.pm2,
                received_at=AS_OF,
                leaves_qty=Decimal(10 + i),
            )
            for i in range(n)
        ]
    )
    return [o.pk for o in orders]


def test_checking_a_basket_costs_the_same_queries_for_50_and_500_orders(firm):
    from compliance.services import compliance_check_orders

    counts, verdict_sets = [], []
    for n in (50, 500):
        ids = _pending(firm, n)
        with CaptureQueriesContext(connection) as ctx:
            verdicts = compliance_check_orders(order_ids=ids, actor=firm.pm1, as_of=AS_OF)
        assert len(verdicts) == n
        counts.append(len(ctx.captured_queries))
        verdict_sets.append(set(verdicts.values()))
        assert not Order.objects.filter(pk__in=ids, status="PENDING_COMPLIANCE").exists()
    # Both baskets end in all three verdicts, so both pay for three transition groups.
    assert verdict_sets[0] == verdict_sets[1] == {"PASS", "WARN", "BLOCK"}
    # The audit events of every group join the chain once, at the end (oms.db.in_transaction).
    # The money view (portfolio_snapshot) reads FX rates; the rule engine reads accounts with
    # their tags, and other accounts' open and recent orders, in one query each.
    assert counts[0] == counts[1] == 32


def test_creating_one_order_takes_a_fixed_number_of_queries(firm, django_assert_num_queries):
    # Its audit events join the chain once, at the end of the use case (oms.db.in_transaction).
    # Staging it records its arrival price for TCA: one INSERT ... SELECT (marketdata).
    with django_assert_num_queries(37):
        order, created = order_create(
            pm=firm.pm1,
            account="ACCT1",
            symbol="AAPL",
            side="BUY",
            quantity=Decimal(10),
            order_type="MARKET",
            as_of=AS_OF,
        )
    assert created and order.status == "STAGED"


def test_the_order_ticket_check_takes_a_fixed_number_of_queries(firm, django_assert_num_queries):
    client = APIClient()
    client.force_authenticate(firm.pm1)
    body = {"account": "ACCT1", "symbol": "AAPL", "side": "BUY", "quantity": "100"}
    # 13 for the verdict; the ticket's review figures (notional in the account's currency,
    # % of NAV) read the snapshot the rules read, no query of their own.
    with django_assert_num_queries(13):
        response = client.post("/api/compliance/check/", body, format="json")
    assert response.status_code == 200
    assert response.json()["verdict"] == "PASS"


def _basket(refdata, lines: int) -> bytes:
    symbols = ("AAPL", "MSFT", "XOM")
    rows = [
        f"ACCT1,{symbols[i % 3]},{'SELL' if i % 4 == 1 else 'BUY'},{10 + i},MARKET,,,DAY,,"
        for i in range(lines)
    ]
    return "\n".join([HEADER, *rows, ""]).encode()


def test_confirming_a_basket_costs_the_same_queries_for_20_and_200_lines(firm):
    counts = []
    for lines in (20, 200):
        pm = User.objects.get(pk=firm.pm1.pk)  # as each request loads its user (and roles)
        with CaptureQueriesContext(connection) as ctx:
            basket, preview = basket_confirm(pm=pm, content=_basket(firm, lines), as_of=AS_OF)
        assert len(preview.valid_items) == lines
        statuses = set(basket.orders.values_list("status", flat=True))
        assert statuses == {"STAGED", "BLOCKED"}  # XOM is restricted
        counts.append(len(ctx.captured_queries))
    # One chain extension for the whole basket; one INSERT of the staged orders' arrival prices.
    assert counts[0] == counts[1] == 47
