"""The order ticket's Check button: POST /api/compliance/check/ runs a what-if, saving nothing."""

from __future__ import annotations

import pytest
from django.apps import apps

from compliance.models import RuleKind
from compliance.services import compliance_what_if

from .conftest import AS_OF, hold, make_rule, place

pytestmark = pytest.mark.django_db

RESULT_KEYS = {
    "rule",
    "rule_id",
    "version",
    "kind",
    "severity",
    "outcome",
    "message",
    "value_before",
    "value_after",
    "limit",
    "headroom",
    "max_passing_quantity",
}


def _row_counts() -> dict[str, int]:
    return {
        m._meta.label: m.objects.count()
        for app in ("orders", "compliance", "audit", "positions")
        for m in apps.get_app_config(app).get_models()
    }


def _check(client, **data):
    body = {
        "account": "ACCT1",
        "symbol": "TST",
        "side": "BUY",
        "quantity": "10",
        "order_type": "MARKET",
        "time_in_force": "DAY",
    }
    body.update(data)
    return client.post("/api/compliance/check/", body, content_type="application/json")


def test_check_returns_the_verdict_and_every_result_and_saves_nothing(client, firm):
    ref = firm.ref
    make_rule(ref.compliance, RuleKind.ORDER_SIZE, {"max_quantity": "1000"}, name="fat finger")
    make_rule(
        ref.compliance,
        RuleKind.PRICE_BAND,
        {"max_deviation_pct": "5"},
        name="band",
        severity="WARN",
    )
    client.force_login(ref.pm1)
    before = _row_counts()
    response = _check(client, quantity="1500", order_type="LIMIT", limit_price="106")
    assert _row_counts() == before
    assert response.status_code == 200
    body = response.json()
    assert body["verdict"] == "BLOCK"
    assert [r["rule"] for r in body["results"]] == ["fat finger", "band"]
    for result in body["results"]:
        assert set(result) >= RESULT_KEYS
    size, band = body["results"]
    assert (
        size["outcome"],
        size["value_after"],
        size["limit"],
        size["headroom"],
        size["max_passing_quantity"],
    ) == ("BLOCK", "1500", "1000", "-500", "1000")
    assert (band["outcome"], band["value_after"]) == ("WARN", "6")
    ok = _check(client, quantity="10").json()
    assert ok == {"verdict": "PASS", "results": [ok["results"][0]], "review": ok["review"]}
    assert ok["results"][0]["outcome"] == "PASS"
    # The ticket's review: the order valued at the reference price, in the account's currency
    # and as a share of its NAV (cash 1,000,000).
    review = ok["review"]
    assert (review["price_source"], review["notional"], review["currency"]) == (
        "reference",
        "1000.00",
        "USD",
    )
    assert (review["nav"], review["pct_nav"]) == ("1000000.00", "0.10")


def test_pm_may_check_only_their_own_accounts(client, firm):
    client.force_login(firm.ref.pm1)
    theirs, unknown = _check(client, account="ACCT2"), _check(client, account="NOSUCH")
    # Another PM's account and one that does not exist look the same.
    assert theirs.status_code == unknown.status_code == 404
    assert theirs.json()["error"]["message"] == "No account 'ACCT2' that you may trade."
    assert unknown.json()["error"]["message"] == "No account 'NOSUCH' that you may trade."
    client.force_login(firm.ref.pm2)
    assert _check(client, account="ACCT2").status_code == 200


def test_check_refuses_bad_input_clearly(client, firm):
    client.force_login(firm.ref.pm1)
    response = _check(client, symbol="NOPE", quantity="-5", side="HOLD")
    assert response.status_code == 400
    fields = response.json()["error"]["fields"]
    assert set(fields) >= {"symbol", "quantity", "side"}
    assert (
        client.post("/api/compliance/check/", {}, content_type="application/json").status_code
        == 400
    )


def test_check_requires_login(client, firm):
    assert _check(client).status_code in (401, 403)


def test_what_if_of_existing_orders_saves_nothing(firm):
    ref = firm.ref
    hold(ref.acct2, firm.tst, 100)
    make_rule(ref.compliance, RuleKind.OPPOSITE_SIDE, severity="WARN")
    buy = place(ref.pm1, ref.acct1, "TST", "BUY", 50)
    sell = place(ref.pm2, ref.acct2, "TST", "SELL", 50)
    before = _row_counts()
    assert compliance_what_if(order_ids=[buy.pk, sell.pk], actor=ref.trader, as_of=AS_OF) == {
        buy.pk: "WARN",
        sell.pk: "WARN",
    }
    assert _row_counts() == before
