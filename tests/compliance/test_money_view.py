"""The rules read one money view (positions.selectors.portfolio_snapshot): unsettled fills and
open buys take cash, everything is valued in the account's base currency, and a blocked sell
funds no buy."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from compliance.models import RuleKind
from orders.lifecycle import OrderStatus
from orders.models import Order
from positions.selectors import portfolio_snapshot
from positions.services import cash_adjust, fx_rate_set, position_fill_apply
from tests.factories import account, security

from .conftest import AS_OF, basket, fund, make_rule, only_result, place, what_if

pytestmark = pytest.mark.django_db


def _fill_whole(order) -> None:
    """The order fills in full and is booked; its cash settles two days later."""
    trade = {f: getattr(order, f) for f in ("account_id", "security_id", "side", "quantity")}
    settle = AS_OF.date() + timedelta(days=2)
    position_fill_apply(
        **trade, price=order.limit_price, trade_date=AS_OF.date(), settle_date=settle,
        fill_ref=f"fill-{order.pk}", as_of=AS_OF,
    )  # fmt: skip
    Order.objects.filter(pk=order.pk).update(
        cum_qty=order.quantity, leaves_qty=0, status=OrderStatus.FILLED
    )


def test_a_filled_buy_spends_its_cash_before_it_settles(firm):
    ref = firm.ref
    make_rule(ref.compliance, RuleKind.CASH)
    first = place(ref.pm1, ref.acct1, "TST", "BUY", 9000, limit_price="100")
    assert first.status == OrderStatus.STAGED
    _fill_whole(first)
    check = what_if(ref.pm1, ref.acct1, "TST", "BUY", 9000, limit_price="100")
    result = only_result(check, "CASH")
    assert check["verdict"] == "BLOCK"
    assert (result["value_before"], result["value_after"]) == ("100000", "-800000")
    assert "after unsettled trades and other open buys" in result["message"]


def test_an_open_buy_and_an_unsettled_fill_both_count(firm):
    ref = firm.ref
    make_rule(ref.compliance, RuleKind.CASH)
    filled = place(ref.pm1, ref.acct1, "TST", "BUY", 4000, limit_price="100")
    _fill_whole(filled)
    place(ref.pm1, ref.acct1, "UTIL", "BUY", 4000, limit_price="100")
    # 1,000,000 - 400,000 filled - 400,000 working = 200,000 left.
    assert what_if(ref.pm1, ref.acct1, "TST", "BUY", 2000, limit_price="100")["verdict"] == "PASS"
    assert what_if(ref.pm1, ref.acct1, "TST", "BUY", 2001, limit_price="100")["verdict"] == "BLOCK"


def test_the_snapshot_reads_ledger_fills_and_commitments_in_base_currency(firm):
    ref = firm.ref
    sap = security("SAP", price="210", currency="EUR")
    fx_rate_set(base="EUR", quote="USD", rate=Decimal("1.10"), as_of_date=AS_OF.date())
    cash_adjust(
        account_id=ref.acct1.pk,
        currency="EUR",
        amount=Decimal("1000"),
        settle_date=AS_OF.date() + timedelta(days=1),
        reason="coupon",
        ref="adj-1",
        as_of=AS_OF,
    )
    filled = place(ref.pm1, ref.acct1, "TST", "BUY", 1000, limit_price="100")
    _fill_whole(filled)
    working = place(ref.pm1, ref.acct1, "SAP", "BUY", 100, limit_price="200")
    place(ref.pm1, ref.acct1, "TST", "SELL", 500, limit_price="101")
    snap = portfolio_snapshot(account_ids=[ref.acct1.pk], as_of=AS_OF).accounts[ref.acct1.pk]
    assert snap.base_currency == "USD"
    assert snap.holdings == {firm.tst.pk: Decimal(1000)}
    # At settlement date the fill (settling in two days) is not held yet.
    assert snap.holdings_settled == {}
    assert snap.cash_settled == Decimal(1_000_000)
    # 1,000,000 settled, + EUR 1,000 (USD 1,100) tomorrow, - 100,000 for the fill in two days.
    day1, day2 = AS_OF.date() + timedelta(days=1), AS_OF.date() + timedelta(days=2)
    assert snap.cash_by_settle_date == {day1: Decimal(1_001_100), day2: Decimal(901_100)}
    assert snap.cash_projected == Decimal(901_100)
    assert snap.open_buys == {sap.pk: Decimal(100)}
    assert snap.open_sells == {firm.tst.pk: Decimal(500)}
    assert snap.buy_commitment == Decimal(22_000)  # 100 x EUR 200 x 1.10
    assert snap.sell_proceeds == Decimal(50_500)
    assert snap.cash_available == Decimal(879_100)
    assert snap.nav == Decimal(901_100) + Decimal(100_000)
    left_out = portfolio_snapshot(
        account_ids=[ref.acct1.pk], as_of=AS_OF, exclude_order_ids={working.pk}
    ).accounts[ref.acct1.pk]
    assert left_out.buy_commitment == 0 and left_out.open_buys == {}


def test_a_foreign_security_is_valued_in_the_accounts_base_currency(firm):
    ref = firm.ref
    security("SAP", price="210", currency="EUR", sector="Software")
    fx_rate_set(base="EUR", quote="USD", rate=Decimal("1.10"), as_of_date=AS_OF.date())
    make_rule(ref.compliance, RuleKind.ISSUER_CONCENTRATION, {"max_pct": "22"})
    # 1,000 x EUR 210 x 1.10 = USD 231,000 of a USD 1,000,000 NAV: 23.1%, over 22%.
    check = what_if(ref.pm1, ref.acct1, "SAP", "BUY", 1000)
    result = only_result(check, "ISSUER_CONCENTRATION")
    assert (check["verdict"], result["value_after"]) == ("BLOCK", "23.1")
    assert result["max_passing_quantity"] == "952"


def test_a_foreign_buy_needs_its_cash_in_the_base_currency(firm):
    ref = firm.ref
    security("SAP", price="210", currency="EUR")
    fx_rate_set(base="EUR", quote="USD", rate=Decimal("1.10"), as_of_date=AS_OF.date())
    make_rule(ref.compliance, RuleKind.CASH)
    small = account("SMALL", ref.pm1)
    fund(small, "220000")
    result = only_result(what_if(ref.pm1, small, "SAP", "BUY", 1000), "CASH")
    assert result["outcome"] == "BLOCK" and result["value_after"] == "-11000"


def test_a_missing_fx_rate_blocks_with_the_reason_and_is_never_taken_as_one(firm):
    ref = firm.ref
    security("TOYO", price="2100", currency="JPY", sector="Industrials")
    make_rule(ref.compliance, RuleKind.CASH)
    make_rule(ref.compliance, RuleKind.ISSUER_CONCENTRATION, {"max_pct": "50"})
    check = what_if(ref.pm1, ref.acct1, "TOYO", "BUY", 10)
    assert check["verdict"] == "BLOCK"
    for kind in ("CASH", "ISSUER_CONCENTRATION"):
        result = only_result(check, kind)
        assert result["outcome"] == "BLOCK"
        assert "No FX rate for JPY/USD" in result["message"]


def test_a_blocked_sell_does_not_fund_a_buy_in_the_same_basket(firm):
    ref = firm.ref
    fund(ref.acct1, "0")
    make_rule(ref.compliance, RuleKind.NO_SHORT)
    make_rule(ref.compliance, RuleKind.CASH)
    b = basket(
        ref.pm1,
        [(ref.acct1, "TST", "SELL", 1000, "100"), (ref.acct1, "UTIL", "BUY", 1000, "100")],
    )
    statuses = dict(b.orders.values_list("side", "status"))
    assert statuses == {"SELL": OrderStatus.BLOCKED, "BUY": OrderStatus.BLOCKED}
    from compliance.selectors import order_compliance

    buy = only_result(order_compliance(order_id=b.orders.get(side="BUY").pk), "CASH")
    assert buy["value_after"] == "-100000"
    assert "blocked sells in this program fund nothing" in buy["message"]


def _bond(symbol: str = "UST30", price: str = "99.50", **kw):
    from datetime import date

    return security(
        symbol, price=price, asset_class="BOND", sector="Government", price_quotation="PER_100",
        coupon_rate=Decimal("6"), coupon_frequency=2, day_count="30/360",
        maturity_date=date(2030, 2, 15), **kw,
    )  # fmt: skip


def test_a_million_face_at_99_50_counts_995_000_plus_accrued_in_nav(firm):
    # The finding: it counted 99,500,000. 6% 30/360, last coupon 15 Aug: 100 days to 25 Nov,
    # 1,000,000 x 6% x 100 / 360 = 16,666.67 accrued.
    from .conftest import hold

    ref = firm.ref
    bond = _bond()
    hold(ref.acct1, bond, "1000000")
    snap = portfolio_snapshot(account_ids=[ref.acct1.pk], as_of=AS_OF).accounts[ref.acct1.pk]
    assert snap.holdings_value.quantize(Decimal("0.01")) == Decimal("1011666.67")
    assert snap.nav.quantize(Decimal("0.01")) == Decimal("2011666.67")
    from positions.selectors import account_navs, holdings

    nav = account_navs(account_ids=[ref.acct1.pk], as_of=AS_OF.date())[ref.acct1.pk]
    assert nav.quantize(Decimal("0.01")) == Decimal("2011666.67")
    [row] = [r for r in holdings(account_ids=[ref.acct1.pk]) if r.symbol == "UST30"]
    assert Decimal(995_000) < row.market_value < Decimal(1_020_000)


def test_a_bond_buy_needs_its_dirty_amount_in_cash_and_in_the_fat_finger_limit(firm):
    ref = firm.ref
    _bond()
    make_rule(ref.compliance, RuleKind.CASH)
    make_rule(ref.compliance, RuleKind.ORDER_SIZE, {"max_notional": "1000000"})
    # 980,000 face: 975,100 clean + 16,333.33 accrued = 991,433.33: within both.
    check = what_if(ref.pm1, ref.acct1, "UST30", "BUY", 980_000)
    assert check["verdict"] == "PASS", check
    assert only_result(check, "CASH")["value_after"] == "8566.67"
    # 1,000,000 face: 1,011,666.67 dirty, over the cash and the 1,000,000 notional limit.
    check = what_if(ref.pm1, ref.acct1, "UST30", "BUY", 1_000_000)
    size = only_result(check, "ORDER_SIZE")
    assert size["outcome"] == "BLOCK" and size["value_after"] == "1011666.67"
    assert "USD exceeds the maximum 1000000 USD" in size["message"]
    assert only_result(check, "CASH")["outcome"] == "BLOCK"
    # The ticket's review shows the same dirty amount and its share of the 1,000,000 NAV (it
    # showed 99,500,000 and 9,950%).
    review = check["review"]
    assert (review["notional_security"], review["notional"]) == ("1011666.67", "1011666.67")
    assert review["pct_nav"] == "101.17"


def test_the_fat_finger_notional_is_in_the_accounts_base_currency(firm):
    ref = firm.ref
    security("SAP", price="200", currency="EUR")
    fx_rate_set(base="EUR", quote="USD", rate=Decimal("1.10"), as_of_date=AS_OF.date())
    make_rule(ref.compliance, RuleKind.ORDER_SIZE, {"max_notional": "100000"})
    # 450 x EUR 200 = EUR 90,000 = USD 99,000: within; 460 = USD 101,200: over.
    assert what_if(ref.pm1, ref.acct1, "SAP", "BUY", 450)["verdict"] == "PASS"
    over = only_result(what_if(ref.pm1, ref.acct1, "SAP", "BUY", 460), "ORDER_SIZE")
    assert (over["outcome"], over["value_after"]) == ("BLOCK", "101200")
    assert over["max_passing_quantity"] == "454"
