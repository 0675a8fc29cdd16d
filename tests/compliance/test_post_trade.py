"""Post-trade: rules run against the portfolios as they stand; the after-close job reports the
breaches price moves caused; the compliance page lists hits, breaches and overrides awaited."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from compliance.models import Breach, CheckRun, RuleKind
from compliance.services import compliance_post_trade_run, restricted_entry_add
from compliance.tasks import post_trade_sweep
from oms.models import Security
from orders.lifecycle import OrderStatus

from .conftest import AS_OF, fund, hold, make_rule, place

pytestmark = pytest.mark.django_db


def test_price_move_breach_is_found_and_attributed(firm):
    ref = firm.ref
    # NAV 900,000 cash + 1,000 TST at 100 = 1,000,000: 10% exactly, at the limit.
    fund(ref.acct1, "900000")
    hold(ref.acct1, firm.tst, 1000)
    rule = make_rule(ref.compliance, RuleKind.ISSUER_CONCENTRATION, {"max_pct": "10"})
    first = compliance_post_trade_run(actor=ref.compliance, as_of=AS_OF)
    assert first.breach_count == 0
    Security.objects.filter(pk=firm.tst.pk).update(reference_price=Decimal("120"))
    later = AS_OF + timedelta(hours=6)
    second = compliance_post_trade_run(actor=ref.compliance, as_of=later)
    breach = Breach.objects.get(run=second)
    assert (breach.rule_id, breach.account_id, breach.key) == (rule.pk, ref.acct1.pk, "TST Inc.")
    assert breach.cause == Breach.Cause.PRICE_MOVE
    # 120,000 of 1,020,000.
    assert breach.value == Decimal("11.7647") and breach.limit == Decimal("10")
    assert breach.rule_version_id == rule.current_version_id
    third = compliance_post_trade_run(actor=ref.compliance, as_of=later + timedelta(hours=1))
    assert Breach.objects.get(run=third).cause == Breach.Cause.CARRIED


def test_post_trade_kinds(firm):
    ref = firm.ref
    hold(ref.acct1, firm.tst, -50)
    hold(ref.acct2, firm.util, 10)
    fund(ref.acct2, "-5")
    make_rule(ref.compliance, RuleKind.NO_SHORT)
    make_rule(ref.compliance, RuleKind.CASH)
    make_rule(ref.compliance, RuleKind.RESTRICTED_LIST)
    make_rule(ref.compliance, RuleKind.FIRM_OWNERSHIP, {"max_pct": "0.001"})
    make_rule(ref.compliance, RuleKind.ORDER_SIZE, {"max_quantity": "1"})  # order-level: skipped
    restricted_entry_add(
        actor=ref.compliance,
        as_of=AS_OF,
        security_id=firm.util.pk,
        reason="research",
        start_date=AS_OF.date(),
    )
    run = compliance_post_trade_run(actor=ref.compliance, as_of=AS_OF)
    found = {
        (b.rule.kind, b.account.code if b.account else None, b.key)
        for b in run.breaches.select_related("rule", "account")
    }
    assert found == {
        ("NO_SHORT", "ACCT1", "TST"),
        ("CASH", "ACCT2", "USD"),
        ("RESTRICTED_LIST", "ACCT2", "UTIL"),
    }
    # One rule alone.
    only = compliance_post_trade_run(
        actor=ref.compliance, as_of=AS_OF, rule_id=run.breaches.get(key="USD").rule_id
    )
    assert [b.key for b in only.breaches.all()] == ["USD"]


def test_after_close_job_runs_every_active_rule(firm):
    ref = firm.ref
    hold(ref.acct1, firm.tst, -1)
    make_rule(ref.compliance, RuleKind.NO_SHORT)
    run_id = post_trade_sweep()
    run = CheckRun.objects.get(pk=run_id)
    assert run.kind == "POST_TRADE" and run.rule_id is None
    assert [b.key for b in run.breaches.all()] == ["TST"]


def test_beat_schedule_has_the_job():
    from django.conf import settings

    entry = settings.CELERY_BEAT_SCHEDULE["compliance-post-trade-after-close"]
    assert entry["task"] == post_trade_sweep.name


def test_dashboard_lists_hits_breaches_and_overrides(client, firm):
    ref = firm.ref
    make_rule(ref.compliance, RuleKind.ORDER_SIZE, {"max_quantity": "100"}, name="Fat finger")
    blocked = place(ref.pm1, ref.acct1, "TST", "BUY", 150)
    assert blocked.status == OrderStatus.BLOCKED
    client.force_login(ref.pm1)
    assert client.get("/compliance/").status_code == 403
    client.force_login(ref.compliance)
    page = client.get("/compliance/").content.decode()
    assert "Fat finger" in page and "quantity 150 exceeds the maximum 100" in page
    assert f'data-order-id="{blocked.pk}"' in page
    hold(ref.acct1, firm.tst, -3)
    make_rule(ref.compliance, RuleKind.NO_SHORT, name="No shorts")
    response = client.post("/compliance/post-trade/", {"rule": ""}, follow=True)
    assert "ACCT1 is short 3 TST and may not short." in response.content.decode()
    response = client.post(
        "/compliance/override/", {"order_id": blocked.pk, "reason": "desk error"}, follow=True
    )
    assert f"Order {blocked.pk} approved by override." in response.content.decode()
    blocked.refresh_from_db()
    assert blocked.status == OrderStatus.STAGED


# --- the money view: base currency through the FX rates table --------------------------------


def _post_trade_breaches(ref, kind):
    run = compliance_post_trade_run(actor=ref.compliance, as_of=AS_OF)
    return {
        b.account.code: b
        for b in run.breaches.select_related("rule", "account")
        if b.rule.kind == kind and b.account is not None
    }


def test_post_trade_weights_a_foreign_holding_in_the_accounts_base_currency(firm):
    """1,000 SAP at EUR 210 with EURUSD 1.10 in a USD account of NAV 1,000,000 is USD 231,000:
    23.1%, over a 22% limit (valued in euros it read 21% and passed)."""
    from positions.services import fx_rate_set
    from tests.factories import account, security

    ref = firm.ref
    sap = security("SAP", price="210", currency="EUR", sector="Software")
    fx_rate_set(base="EUR", quote="USD", rate=Decimal("1.10"), as_of_date=AS_OF.date())
    euro = account("EUROHOLD", ref.pm1)
    fund(euro, "769000")
    hold(euro, sap, 1000)
    make_rule(ref.compliance, RuleKind.ISSUER_CONCENTRATION, {"max_pct": "22"})
    breach = _post_trade_breaches(ref, RuleKind.ISSUER_CONCENTRATION)["EUROHOLD"]
    assert (breach.value, breach.limit) == (Decimal("23.1"), Decimal("22"))


def test_post_trade_says_which_rate_is_missing_and_checks_the_other_accounts(firm):
    """A JPY holding with no JPY rate: that account is reported with the reason (never valued
    at 1); the run goes on for the others (it used to fail as a whole)."""
    from tests.factories import account, security

    ref = firm.ref
    toyo = security("TOYO", price="2100", currency="JPY", sector="Industrials")
    japan = account("JAPANHOLD", ref.pm1)
    fund(japan, "1000000")
    hold(japan, toyo, 100)
    hold(ref.acct1, firm.tst, 5000)
    make_rule(ref.compliance, RuleKind.ISSUER_CONCENTRATION, {"max_pct": "1"})
    breaches = _post_trade_breaches(ref, RuleKind.ISSUER_CONCENTRATION)
    assert breaches["JAPANHOLD"].key == "FX rate" and breaches["JAPANHOLD"].value is None
    assert breaches["JAPANHOLD"].message == (
        "JAPANHOLD cannot be checked: No FX rate for JPY/USD: add one in the FX rates table."
    )
    assert breaches["ACCT1"].key == "TST Inc."


def test_post_trade_negative_cash_counts_every_currency_in_the_base_currency(firm):
    """USD 100 settled and EUR -1,000 (EURUSD 1.10) is USD -1,000 in the account's base
    currency: negative cash (reading the USD balance alone, it was +100)."""
    from positions.services import fx_rate_set
    from tests.factories import account

    ref = firm.ref
    fx_rate_set(base="EUR", quote="USD", rate=Decimal("1.10"), as_of_date=AS_OF.date())
    mixed = account("MIXEDCASH", ref.pm1)
    fund(mixed, "100")
    fund(mixed, "-1000", currency="EUR")
    make_rule(ref.compliance, RuleKind.CASH)
    breach = _post_trade_breaches(ref, RuleKind.CASH)["MIXEDCASH"]
    assert (breach.key, breach.value) == ("USD", Decimal("-1000"))
    assert breach.message == (
        "MIXEDCASH has negative cash: -1000 USD (settled and to settle, in its base currency)."
    )
