"""Checks project every other open order, and a basket is checked as one program."""

from __future__ import annotations

from decimal import Decimal

import pytest

from compliance.models import OrderCheck, RuleHit, RuleKind
from compliance.selectors import order_compliance
from compliance.services import restricted_entry_add
from oms.models import Issuer, Security
from orders.lifecycle import OrderStatus
from orders.models import Order
from tests.factories import account

from .conftest import AS_OF, basket, fund, hold, make_rule, only_result, place, what_if

pytestmark = pytest.mark.django_db


def test_issuer_limit_projects_the_accounts_other_open_orders(firm):
    ref = firm.ref
    make_rule(ref.compliance, RuleKind.ISSUER_CONCENTRATION, {"max_pct": "10"})
    first = place(ref.pm1, ref.acct1, "TST", "BUY", 600)
    assert first.status == OrderStatus.STAGED and first.compliance_status == "PASS"
    # Another account's open orders do not count against ACCT1's weight.
    place(ref.pm2, ref.acct2, "TST", "BUY", 900)
    second = place(ref.pm1, ref.acct1, "TST", "BUY", 400)
    third = place(ref.pm1, ref.acct1, "TST", "BUY", 1)
    assert second.status == OrderStatus.STAGED
    assert third.status == OrderStatus.BLOCKED and third.compliance_status == "BLOCK"
    result = only_result(order_compliance(order_id=third.pk), "ISSUER_CONCENTRATION")
    assert (result["value_before"], result["value_after"], result["max_passing_quantity"]) == (
        "10",
        "10.01",
        "0",
    )
    # A blocked order no longer counts: cancelling nothing, the next check sees 10% exactly.
    assert (
        only_result(what_if(ref.pm1, ref.acct1, "TST", "BUY", 1), "ISSUER_CONCENTRATION")[
            "value_before"
        ]
        == "10"
    )


def test_filled_part_of_an_open_order_is_not_counted_twice(firm):
    ref = firm.ref
    make_rule(ref.compliance, RuleKind.ISSUER_CONCENTRATION, {"max_pct": "10"})
    order = place(ref.pm1, ref.acct1, "TST", "BUY", 600)
    # 200 of it filled and booked into the position: 400 still open, 600 in total.
    Order.objects.filter(pk=order.pk).update(cum_qty=Decimal(200), leaves_qty=Decimal(400))
    hold(ref.acct1, firm.tst, 200)
    assert (
        only_result(what_if(ref.pm1, ref.acct1, "TST", "BUY", 400), "ISSUER_CONCENTRATION")[
            "outcome"
        ]
        == "PASS"
    )


def test_basket_sells_fund_its_buys(firm):
    ref = firm.ref
    fund(ref.acct1, "0")
    hold(ref.acct1, firm.util, 1000)
    make_rule(ref.compliance, RuleKind.CASH)
    # Alone, the buy has no cash to use.
    assert (
        only_result(what_if(ref.pm1, ref.acct1, "TST", "BUY", 1000, limit_price="100"), "CASH")[
            "outcome"
        ]
        == "BLOCK"
    )
    b = basket(
        ref.pm1,
        [(ref.acct1, "UTIL", "SELL", 1000, "100"), (ref.acct1, "TST", "BUY", 1000, "100")],
    )
    statuses = dict(b.orders.values_list("side", "status"))
    assert statuses == {"SELL": OrderStatus.STAGED, "BUY": OrderStatus.STAGED}
    buy = b.orders.get(side="BUY")
    result = only_result(order_compliance(order_id=buy.pk), "CASH")
    assert (result["value_before"], result["value_after"]) == ("0", "0")


def test_basket_buys_are_projected_together(firm):
    ref = firm.ref
    make_rule(ref.compliance, RuleKind.ISSUER_CONCENTRATION, {"max_pct": "10"})
    # Each 600 alone fits under the 1,000 share cap; together they do not.
    assert what_if(ref.pm1, ref.acct1, "TST", "BUY", 600)["verdict"] == "PASS"
    b = basket(ref.pm1, [(ref.acct1, "TST", "BUY", 600), (ref.acct1, "TST", "BUY", 600)])
    orders = list(b.orders.order_by("pk"))
    assert [o.status for o in orders] == [OrderStatus.BLOCKED, OrderStatus.BLOCKED]
    results = [only_result(order_compliance(order_id=o.pk), "ISSUER_CONCENTRATION") for o in orders]
    assert {r["value_after"] for r in results} == {"12"}
    # Each could go through at 400 with the other unchanged.
    assert {r["max_passing_quantity"] for r in results} == {"400"}
    # One check run, one OrderCheck per order, one hit per order.
    assert OrderCheck.objects.filter(order__in=orders).values("run").distinct().count() == 1
    assert RuleHit.objects.filter(order__in=orders).count() == 2


def test_pension_fund_rebalance(firm):
    """500 sells and 1 buy; two of the sold stocks are on the restricted list: exactly those two
    are blocked, with the restricted-list reason, and the other 499 reach the desk."""
    ref = firm.ref
    pension = account("PENSION", ref.pm1)
    issuers = Issuer.objects.bulk_create([Issuer(name=f"Pension Issuer {i}") for i in range(500)])
    secs = Security.objects.bulk_create(
        [
            Security(
                symbol=f"P{i:03d}",
                name=f"Pension Stock {i}",
                asset_class="EQUITY",
                exchange_mic="XNYS",
                currency="USD",
                sector=["Energy", "Financials", "Health Care", "Industrials"][i % 4],
                issuer=issuers[i],
                shares_outstanding=Decimal("100000000"),
                avg_daily_volume=Decimal("1000000"),
                reference_price=Decimal("50.00"),
            )
            for i in range(500)
        ]
    )
    from positions.models import Position

    Position.objects.bulk_create(
        [Position(account=pension, security=s, quantity=Decimal(1000)) for s in secs]
    )
    fund(pension, "1000")  # almost no cash: the buy is funded by the sells
    for kind, params in [
        (RuleKind.RESTRICTED_LIST, {}),
        (RuleKind.NO_SHORT, {}),
        (RuleKind.CASH, {}),
        (RuleKind.ISSUER_CONCENTRATION, {"max_pct": "10"}),
        (RuleKind.SECTOR_CONCENTRATION, {"max_pct": "40"}),
        (RuleKind.ORDER_SIZE, {"max_quantity": "100000"}),
        (RuleKind.DUPLICATE_ORDER, {"window_minutes": 5}),
    ]:
        make_rule(ref.compliance, kind, params)
    day = AS_OF.date()
    restricted_entry_add(
        actor=ref.compliance,
        as_of=AS_OF,
        security_id=secs[17].pk,
        reason="pending merger",
        start_date=day,
    )
    restricted_entry_add(
        actor=ref.compliance,
        as_of=AS_OF,
        issuer_id=issuers[342].pk,
        reason="board seat",
        start_date=day,
    )
    lines = [(pension, s.symbol, "SELL", 200) for s in secs]
    # 2,400,000 at 100 (under 10% of the 25m NAV), funded by 5,000,000 of sells.
    lines.append((pension, "TST", "BUY", 24000))
    b = basket(ref.pm1, lines, kind="REBALANCE", name="pension rebalance")
    orders = {o.security.symbol: o for o in b.orders.select_related("security")}
    assert len(orders) == 501
    blocked = {sym for sym, o in orders.items() if o.status == OrderStatus.BLOCKED}
    assert blocked == {"P017", "P342"}
    assert all(o.status == OrderStatus.STAGED for sym, o in orders.items() if sym not in blocked)
    p017 = order_compliance(order_id=orders["P017"].pk)
    reasons = [r["message"] for r in p017["results"] if r["outcome"] == "BLOCK"]
    assert reasons == [f"P017 is on the restricted list: pending merger (since {day.isoformat()})"]
    p342 = order_compliance(order_id=orders["P342"].pk)
    reasons = [r["message"] for r in p342["results"] if r["outcome"] == "BLOCK"]
    assert reasons == [
        "P342 (issuer Pension Issuer 342) is on the restricted list: board seat "
        f"(since {day.isoformat()})"
    ]
    buy = only_result(order_compliance(order_id=orders["TST"].pk), "CASH")
    # The two blocked sells (200 at 50 each) will not trade, so their 20,000 funds nothing.
    assert buy["outcome"] == "PASS" and buy["value_after"] == "2581000"
    assert "blocked sells in this program fund nothing" in buy["message"]
