"""Every rule kind just under, exactly at and just over its limit. Exactly at the limit passes;
only strictly beyond it breaches."""

from __future__ import annotations

from datetime import timedelta

import pytest

from compliance.models import RuleKind
from compliance.selectors import order_compliance
from compliance.services import restricted_entry_add
from orders.lifecycle import OrderStatus
from tests.factories import account, security

from .conftest import AS_OF, fund, hold, make_rule, only_result, place, what_if

pytestmark = pytest.mark.django_db


def outcomes(firm, kind, quantities, symbol="TST", side="BUY", acct=None, **kw):
    ref = firm.ref
    acct = acct or ref.acct1
    return [
        only_result(what_if(ref.pm1, acct, symbol, side, q, **kw), kind)["outcome"]
        for q in quantities
    ]


def test_restricted_security_by_dates(firm):
    ref = firm.ref
    make_rule(ref.compliance, RuleKind.RESTRICTED_LIST)
    day = AS_OF.date()
    # Ended yesterday: no longer restricted. Starts tomorrow: not yet. Starts today: restricted.
    restricted_entry_add(
        actor=ref.compliance,
        as_of=AS_OF,
        security_id=ref.msft.pk,
        reason="old deal",
        start_date=day - timedelta(days=10),
        end_date=day - timedelta(days=1),
    )
    restricted_entry_add(
        actor=ref.compliance,
        as_of=AS_OF,
        security_id=ref.xom.pk,
        reason="MNPI",
        start_date=day + timedelta(days=1),
    )
    restricted_entry_add(
        actor=ref.compliance,
        as_of=AS_OF,
        security_id=ref.aapl.pk,
        reason="litigation",
        start_date=day,
    )
    check = what_if(ref.pm1, ref.acct1, "AAPL", "BUY", 10)
    result = only_result(check, RuleKind.RESTRICTED_LIST)
    assert check["verdict"] == "BLOCK"
    assert result["message"] == (
        f"AAPL is on the restricted list: litigation (since {day.isoformat()})"
    )
    assert result["max_passing_quantity"] == "0"
    assert what_if(ref.pm1, ref.acct1, "MSFT", "BUY", 10)["verdict"] == "PASS"
    assert what_if(ref.pm1, ref.acct1, "XOM", "BUY", 10)["verdict"] == "PASS"


def test_restricted_whole_issuer(firm):
    ref = firm.ref
    make_rule(ref.compliance, RuleKind.RESTRICTED_LIST)
    security("GOOGL", issuer="Alphabet Inc.")
    security("GOOG", issuer="Alphabet Inc.")
    issuer_id = ref.aapl.__class__.objects.get(symbol="GOOG").issuer_id
    restricted_entry_add(
        actor=ref.compliance,
        as_of=AS_OF,
        issuer_id=issuer_id,
        reason="advisory mandate",
        start_date=AS_OF.date(),
    )
    for symbol in ("GOOG", "GOOGL"):
        result = only_result(what_if(ref.pm1, ref.acct1, symbol, "SELL", 1), "RESTRICTED_LIST")
        assert result["outcome"] == "BLOCK"
        assert "issuer Alphabet Inc." in result["message"]
        assert "advisory mandate" in result["message"]


def test_issuer_concentration(firm):
    # NAV 1,000,000 in cash; 10% of NAV = 100,000 = 1,000 TST at 100.
    make_rule(firm.ref.compliance, RuleKind.ISSUER_CONCENTRATION, {"max_pct": "10"})
    assert outcomes(firm, "ISSUER_CONCENTRATION", [999, 1000, 1001]) == ["PASS", "PASS", "BLOCK"]
    over = only_result(
        what_if(firm.ref.pm1, firm.ref.acct1, "TST", "BUY", 1001), "ISSUER_CONCENTRATION"
    )
    assert over["value_before"] == "0"
    assert over["value_after"] == "10.01"
    assert over["limit"] == "10"
    assert over["headroom"] == "-0.01"
    assert over["max_passing_quantity"] == "1000"
    assert "10.01% of NAV in issuer TST Inc." in over["message"]


def test_sector_concentration_counts_every_holding_of_the_sector(firm):
    ref = firm.ref
    # NAV = 900,000 cash + 1,000 UTIL at 100 = 1,000,000; Utilities cap 25% = 250,000.
    fund(ref.acct1, "900000")
    hold(ref.acct1, firm.util, 1000)
    make_rule(ref.compliance, RuleKind.SECTOR_CONCENTRATION, {"max_pct": "25"})
    assert outcomes(firm, "SECTOR_CONCENTRATION", [1499, 1500, 1501]) == [
        "PASS",
        "PASS",
        "BLOCK",
    ]
    at = only_result(what_if(ref.pm1, ref.acct1, "TST", "BUY", 1500), "SECTOR_CONCENTRATION")
    assert (at["value_before"], at["value_after"], at["headroom"]) == ("10", "25", "0")
    assert at["max_passing_quantity"] == "1500"
    # A sell reducing the sector is never blocked by it.
    assert outcomes(firm, "SECTOR_CONCENTRATION", [500], symbol="UTIL", side="SELL") == ["PASS"]


def test_firm_ownership_counts_every_account(firm):
    ref = firm.ref
    # 5% of 1,000,000 shares = 50,000; the firm holds 20,000 across two accounts.
    hold(ref.acct1, firm.tst, 10000)
    hold(ref.acct2, firm.tst, 10000)
    make_rule(ref.compliance, RuleKind.FIRM_OWNERSHIP, {"max_pct": "5"})
    assert outcomes(firm, "FIRM_OWNERSHIP", [29999, 30000, 30001]) == ["PASS", "PASS", "BLOCK"]
    over = only_result(what_if(ref.pm1, ref.acct1, "TST", "BUY", 30001), "FIRM_OWNERSHIP")
    assert (over["value_before"], over["value_after"]) == ("2", "5.0001")
    assert over["max_passing_quantity"] == "30000"


def test_firm_ownership_counts_other_accounts_open_orders(firm):
    ref = firm.ref
    make_rule(ref.compliance, RuleKind.FIRM_OWNERSHIP, {"max_pct": "5"})
    # pm2 has an open buy of 20,000 TST for ACCT2: only 30,000 more fit under 5%.
    assert place(ref.pm2, ref.acct2, "TST", "BUY", 20000).status == OrderStatus.STAGED
    assert outcomes(firm, "FIRM_OWNERSHIP", [30000, 30001]) == ["PASS", "BLOCK"]


def test_order_size_quantity(firm):
    make_rule(firm.ref.compliance, RuleKind.ORDER_SIZE, {"max_quantity": "1000"})
    assert outcomes(firm, "ORDER_SIZE", [999, 1000, 1001]) == ["PASS", "PASS", "BLOCK"]


def test_order_size_notional_uses_the_limit_price(firm):
    make_rule(firm.ref.compliance, RuleKind.ORDER_SIZE, {"max_notional": "100000"})
    # At a limit of 125, 800 shares are exactly 100,000.
    assert outcomes(firm, "ORDER_SIZE", [799, 800, 801], limit_price="125") == [
        "PASS",
        "PASS",
        "BLOCK",
    ]
    over = only_result(
        what_if(firm.ref.pm1, firm.ref.acct1, "TST", "BUY", 801, limit_price="125"), "ORDER_SIZE"
    )
    assert over["value_after"] == "100125"
    assert over["max_passing_quantity"] == "800"
    assert "notional 100125 USD exceeds the maximum 100000 USD" in over["message"]


@pytest.mark.parametrize(
    ("limit_price", "expected"),
    [
        ("104.99", "PASS"),
        ("105", "PASS"),
        ("105.01", "BLOCK"),
        ("95.01", "PASS"),
        ("95", "PASS"),
        ("94.99", "BLOCK"),
    ],
)
def test_price_band(firm, limit_price, expected):
    make_rule(firm.ref.compliance, RuleKind.PRICE_BAND, {"max_deviation_pct": "5"})
    check = what_if(firm.ref.pm1, firm.ref.acct1, "TST", "BUY", 10, limit_price=limit_price)
    assert only_result(check, "PRICE_BAND")["outcome"] == expected


def test_price_band_ignores_market_orders(firm):
    make_rule(firm.ref.compliance, RuleKind.PRICE_BAND, {"max_deviation_pct": "5"})
    check = what_if(firm.ref.pm1, firm.ref.acct1, "TST", "BUY", 10)
    assert check["results"] == [] and check["verdict"] == "PASS"


def test_adv_participation_counts_the_firms_side(firm):
    ref = firm.ref
    make_rule(ref.compliance, RuleKind.ADV_PARTICIPATION, {"max_pct": "10"})
    # ADV 100,000: 10% = 10,000.
    assert outcomes(firm, "ADV_PARTICIPATION", [9999, 10000, 10001]) == ["PASS", "PASS", "BLOCK"]
    place(ref.pm2, ref.acct2, "TST", "BUY", 4000)
    assert outcomes(firm, "ADV_PARTICIPATION", [6000, 6001]) == ["PASS", "BLOCK"]
    # The other side of the market is not added to the buy interest.
    hold(ref.acct1, firm.tst, 9000)
    assert outcomes(firm, "ADV_PARTICIPATION", [9000], side="SELL") == ["PASS"]


def test_no_short_net_of_other_open_sells(firm):
    ref = firm.ref
    hold(ref.acct1, firm.tst, 1000)
    make_rule(ref.compliance, RuleKind.NO_SHORT)
    assert place(ref.pm1, ref.acct1, "TST", "SELL", 300).status == OrderStatus.STAGED
    # 700 left to sell; open buys do not make more available.
    place(ref.pm1, ref.acct1, "TST", "BUY", 5000)
    assert outcomes(firm, "NO_SHORT", [699, 700, 701], side="SELL") == ["PASS", "PASS", "BLOCK"]
    over = only_result(what_if(ref.pm1, ref.acct1, "TST", "SELL", 701), "NO_SHORT")
    assert (over["value_before"], over["value_after"], over["max_passing_quantity"]) == (
        "700",
        "-1",
        "700",
    )
    assert "would leave it short 1" in over["message"]


def test_no_short_allows_accounts_that_may_short(firm):
    ref = firm.ref
    hedge = account("HEDGE", ref.pm1, may_short=True)
    make_rule(ref.compliance, RuleKind.NO_SHORT)
    assert outcomes(firm, "NO_SHORT", [701], side="SELL", acct=hedge) == ["PASS"]


def test_cash_net_of_other_open_buys(firm):
    ref = firm.ref
    fund(ref.acct1, "100000")
    make_rule(ref.compliance, RuleKind.CASH)
    place(ref.pm1, ref.acct1, "TST", "BUY", 300, limit_price="100")
    # 70,000 left: at 100, 700 shares.
    assert outcomes(firm, "CASH", [699, 700, 701], limit_price="100") == ["PASS", "PASS", "BLOCK"]
    over = only_result(what_if(ref.pm1, ref.acct1, "TST", "BUY", 701, limit_price="100"), "CASH")
    assert (over["value_before"], over["value_after"], over["max_passing_quantity"]) == (
        "70000",
        "-100",
        "700",
    )
    # A margin account is not limited by cash.
    margin = account("MARGIN", ref.pm1, cash_account=False)
    assert what_if(ref.pm1, margin, "TST", "BUY", 10**6)["results"] == []


def test_opposite_side_conflict_names_the_order(firm):
    ref = firm.ref
    hold(ref.acct1, firm.tst, 1000)
    make_rule(ref.compliance, RuleKind.OPPOSITE_SIDE, severity="WARN")
    assert what_if(ref.pm1, ref.acct1, "TST", "BUY", 10)["verdict"] == "PASS"
    # The same PM's own sell in the same account is not a conflict.
    place(ref.pm1, ref.acct1, "TST", "SELL", 100)
    assert what_if(ref.pm1, ref.acct1, "TST", "BUY", 10)["verdict"] == "PASS"
    hold(ref.acct2, firm.tst, 500)
    other = place(ref.pm2, ref.acct2, "TST", "SELL", 250)
    check = what_if(ref.pm1, ref.acct1, "TST", "BUY", 10)
    result = only_result(check, "OPPOSITE_SIDE")
    assert check["verdict"] == "WARN" and result["outcome"] == "WARN"
    # A PM learns only that another PM's opposite order exists: no id, account, PM or quantity.
    assert result["message"] == (
        "Opposite-side conflict in TST: another portfolio manager has an order open on the "
        "other side."
    )
    assert "detail" not in result
    # The desk and compliance read the detail.
    for viewer in (ref.trader, ref.compliance):
        shown = only_result(what_if(viewer, ref.acct1, "TST", "BUY", 10), "OPPOSITE_SIDE")
        assert f"order {other.pk} (ACCT2, pm2: SELL 250)" in shown["message"]
    # The order pm1 places keeps the PM-safe words in what pm1 reads of it, the detail for
    # compliance.
    mine = place(ref.pm1, ref.acct1, "TST", "BUY", 10)
    assert "ACCT2" not in str(order_compliance(order_id=mine.pk, user=ref.pm1))
    assert (
        "ACCT2"
        in only_result(order_compliance(order_id=mine.pk, user=ref.compliance), "OPPOSITE_SIDE")[
            "message"
        ]
    )


def test_duplicate_order_window(firm):
    ref = firm.ref
    make_rule(ref.compliance, RuleKind.DUPLICATE_ORDER, {"window_minutes": 5})
    first = place(ref.pm1, ref.acct1, "TST", "BUY", 100, as_of=AS_OF)
    # 4:59 after the first: a duplicate; exactly 5:00 after: not (at the limit passes); 5:01: not.
    results = [
        only_result(
            what_if(ref.pm1, ref.acct1, "TST", "BUY", 100, as_of=AS_OF + timedelta(seconds=s)),
            "DUPLICATE_ORDER",
        )
        for s in (299, 300, 301)
    ]
    assert [r["outcome"] for r in results] == ["BLOCK", "PASS", "PASS"]
    assert f"Possible duplicate of order {first.pk}" in results[0]["message"]
    # Another quantity or side is not a duplicate.
    later = AS_OF + timedelta(seconds=10)
    assert what_if(ref.pm1, ref.acct1, "TST", "BUY", 101, as_of=later)["verdict"] == "PASS"
    assert what_if(ref.pm1, ref.acct1, "TST", "SELL", 100, as_of=later)["verdict"] == "PASS"


def test_rule_scope_listed_accounts_and_tags(firm):
    from oms.models import AccountTag

    ref = firm.ref
    erisa = AccountTag.objects.create(name="ERISA")
    ref.acct2.tags.add(erisa)
    make_rule(
        ref.compliance,
        RuleKind.ORDER_SIZE,
        {"max_quantity": "10"},
        name="acct1 only",
        scope="ACCOUNTS",
        account_ids=[ref.acct1.pk],
    )
    make_rule(
        ref.compliance,
        RuleKind.ORDER_SIZE,
        {"max_quantity": "20"},
        name="erisa",
        scope="TAG",
        tag_id=erisa.pk,
    )
    one = what_if(ref.pm1, ref.acct1, "TST", "BUY", 15)
    two = what_if(ref.pm2, ref.acct2, "TST", "BUY", 15)
    assert [r["rule"] for r in one["results"]] == ["acct1 only"] and one["verdict"] == "BLOCK"
    assert [r["rule"] for r in two["results"]] == ["erisa"] and two["verdict"] == "PASS"


def test_inactive_and_not_yet_effective_rules_are_not_evaluated(firm):
    ref = firm.ref
    make_rule(ref.compliance, RuleKind.ORDER_SIZE, {"max_quantity": "1"}, name="off", active=False)
    make_rule(
        ref.compliance,
        RuleKind.ORDER_SIZE,
        {"max_quantity": "1"},
        name="later",
        effective_from=AS_OF.date() + timedelta(days=1),
    )
    make_rule(
        ref.compliance,
        RuleKind.ORDER_SIZE,
        {"max_quantity": "1"},
        name="ended",
        effective_to=AS_OF.date() - timedelta(days=1),
    )
    assert what_if(ref.pm1, ref.acct1, "TST", "BUY", 5)["results"] == []
