"""The order API: create (with Idempotency-Key), list and detail per role, amend, cancel,
one clear 400 per bad input, and the audit trail of each change."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from audit.models import AuditEvent
from orders.models import Order
from tests import factories

pytestmark = pytest.mark.django_db


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def ticket(**overrides) -> dict:
    body = {
        "account": "ACCT1",
        "symbol": "AAPL",
        "side": "BUY",
        "quantity": "100",
        "order_type": "LIMIT",
        "limit_price": "189.50",
        "time_in_force": "DAY",
        "instructions": "work it",
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


def actions_for(order_id: int) -> list[str]:
    return list(
        AuditEvent.objects.filter(object_type="orders.order", object_id=str(order_id))
        .order_by("chain_seq")
        .values_list("action", flat=True)
    )


def test_pm_creates_an_order_that_is_checked_and_staged(refdata):
    response = client_for(refdata.pm1).post("/api/orders/", ticket(), format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    order = Order.objects.get(pk=body["id"])
    assert (order.account, order.security, order.pm) == (refdata.acct1, refdata.aapl, refdata.pm1)
    assert order.quantity == Decimal(100) and order.limit_price == Decimal("189.50")
    assert order.leaves_qty == Decimal(100)
    assert order.estimated_notional == Decimal("18950.00")
    assert order.reference_price_at_entry == Decimal("190.00")
    assert body["status"] == order.status == "STAGED"
    assert body["compliance_status"] == "PASS"
    kinds = [e["kind"] for e in body["events"]]
    assert kinds[0] == "create" and kinds[-1] == "stage"
    assert "compliance" in body
    audit = actions_for(order.pk)
    assert audit[0] == "order.create" and audit[-1] == "order.stage"


def test_idempotency_key_retry_returns_the_original_and_creates_nothing(refdata):
    api = client_for(refdata.pm1)
    first = api.post("/api/orders/", ticket(), format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert first.status_code == 201
    # Same request, written differently (lower case, 100.0): still the same order.
    again = api.post(
        "/api/orders/",
        ticket(side="buy", quantity="100.0", symbol="aapl"),
        format="json",
        HTTP_IDEMPOTENCY_KEY="k-1",
    )
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert Order.objects.filter(pm=refdata.pm1).count() == 1
    assert actions_for(first.json()["id"]).count("order.create") == 1


def test_idempotency_key_reused_for_another_order_is_a_conflict(refdata):
    api = client_for(refdata.pm1)
    first = api.post("/api/orders/", ticket(), format="json", HTTP_IDEMPOTENCY_KEY="k-2")
    clash = api.post(
        "/api/orders/", ticket(quantity="200"), format="json", HTTP_IDEMPOTENCY_KEY="k-2"
    )
    assert clash.status_code == 409
    error = clash.json()["error"]
    assert error["code"] == "idempotency_key_reused"
    assert "k-2" in error["message"] and str(first.json()["id"]) in error["message"]
    assert Order.objects.filter(pm=refdata.pm1).count() == 1


def test_idempotency_keys_are_per_pm(refdata):
    refdata.acct1.managers.add(refdata.pm2)
    one = client_for(refdata.pm1).post(
        "/api/orders/", ticket(), format="json", HTTP_IDEMPOTENCY_KEY="same"
    )
    two = client_for(refdata.pm2).post(
        "/api/orders/", ticket(), format="json", HTTP_IDEMPOTENCY_KEY="same"
    )
    assert one.status_code == two.status_code == 201
    assert one.json()["id"] != two.json()["id"]


def test_without_a_key_each_post_is_a_new_order(refdata):
    api = client_for(refdata.pm1)
    ids = {api.post("/api/orders/", ticket(), format="json").json()["id"] for _ in range(2)}
    assert len(ids) == 2


def test_another_pms_account_reads_as_an_unknown_one(refdata):
    """pm2 cannot tell pm1's ACCT1 from an account that does not exist: the same 404, the same
    words."""
    api = client_for(refdata.pm2)
    theirs = api.post("/api/orders/", ticket(), format="json")
    unknown = api.post("/api/orders/", ticket(account="NOSUCH"), format="json")
    assert theirs.status_code == unknown.status_code == 404
    assert theirs.json()["error"]["code"] == unknown.json()["error"]["code"] == "account_not_found"
    assert theirs.json()["error"]["message"] == "No account 'ACCT1' that you may trade."
    assert unknown.json()["error"]["message"] == "No account 'NOSUCH' that you may trade."
    info = [
        api.get(f"/api/orders/ticket-info/?account={code}&symbol=AAPL") for code in ("ACCT1", "X")
    ]
    assert [r.status_code for r in info] == [404, 404]
    assert info[0].json()["error"]["message"] == "No account 'ACCT1' that you may trade."
    assert not Order.objects.exists()


@pytest.mark.parametrize("role", ["trader", "compliance", "ops"])
def test_only_pms_and_admin_create_orders(refdata, role):
    response = client_for(getattr(refdata, role)).post("/api/orders/", ticket(), format="json")
    assert response.status_code == 403
    assert not Order.objects.exists()


def test_admin_may_create_for_any_account(refdata):
    response = client_for(refdata.admin).post(
        "/api/orders/", ticket(account="ACCT2"), format="json"
    )
    assert response.status_code == 201


def test_anonymous_gets_401_or_403(refdata):
    assert APIClient().get("/api/orders/").status_code in (401, 403)


def test_visibility_pm_sees_own_accounts_only_firm_roles_see_all(refdata):
    mine = factories.order(refdata.acct1, refdata.aapl, refdata.pm1)
    theirs = factories.order(refdata.acct2, refdata.msft, refdata.pm2)
    ids = lambda user: {o["id"] for o in client_for(user).get("/api/orders/").json()["results"]}  # noqa: E731
    assert ids(refdata.pm1) == {mine.pk}
    assert ids(refdata.pm2) == {theirs.pk}
    for user in (refdata.trader, refdata.compliance, refdata.ops, refdata.admin):
        assert ids(user) == {mine.pk, theirs.pk}
    pm1 = client_for(refdata.pm1)
    assert pm1.get(f"/api/orders/{theirs.pk}/").status_code == 404
    assert (
        pm1.patch(f"/api/orders/{theirs.pk}/", {"quantity": "5"}, format="json").status_code == 404
    )
    assert pm1.post(f"/api/orders/{theirs.pk}/cancel/").status_code == 404
    assert pm1.get(f"/api/orders/{mine.pk}/").status_code == 200
    # A trader sees the order but does not amend or cancel it here.
    trader = client_for(refdata.trader)
    assert trader.get(f"/api/orders/{mine.pk}/").status_code == 200
    assert trader.post(f"/api/orders/{mine.pk}/cancel/").status_code == 403


def test_list_filters(refdata):
    now = timezone.now()
    a = factories.order(refdata.acct1, refdata.aapl, refdata.pm1, status="STAGED", side="BUY")
    b = factories.order(refdata.acct1, refdata.msft, refdata.pm1, status="CANCELLED", side="SELL")
    c = factories.order(
        refdata.acct2, refdata.aapl, refdata.pm2, received_at=now - timedelta(days=3)
    )
    api = client_for(refdata.trader)

    def ids(query: str) -> set[int]:
        response = api.get(f"/api/orders/?{query}")
        assert response.status_code == 200
        return {o["id"] for o in response.json()["results"]}

    assert ids("status=STAGED") == {a.pk}
    assert ids("status=STAGED,CANCELLED") == {a.pk, b.pk}
    assert ids("account=ACCT2") == {c.pk}
    assert ids("security=AAPL") == {a.pk, c.pk}
    assert ids("symbol=msft") == {b.pk}
    assert ids("side=SELL") == {b.pk}
    assert ids(f"date={now.date().isoformat()}") == {a.pk, b.pk}
    assert ids(f"date={(now - timedelta(days=3)).date().isoformat()}") == {c.pk}


BAD_INPUTS = [
    ({"symbol": "NOPE"}, "symbol", "Unknown symbol"),
    ({"quantity": "0"}, "quantity", "greater than zero"),
    ({"quantity": "-100"}, "quantity", "greater than zero"),
    ({"quantity": "100000000000"}, "quantity", "above the limit"),
    ({"quantity": "abc"}, "quantity", "number"),
    ({"limit_price": None}, "limit_price", "needs a limit price"),
    ({"order_type": "MARKET"}, "limit_price", "takes no limit price"),
    ({"limit_price": "189.503"}, "limit_price", "tick size"),
    ({"limit_price": "-1"}, "limit_price", "greater than zero"),
    ({"order_type": "STOP", "limit_price": None}, "stop_price", "needs a stop price"),
    ({"order_type": "STOP_LIMIT", "stop_price": "180.001"}, "stop_price", "tick size"),
    ({"stop_price": "180"}, "stop_price", "takes no stop price"),
    ({"time_in_force": "GTD"}, "expire_date", "needs an expire date"),
    ({"time_in_force": "GTD", "expire_date": "2020-01-01"}, "expire_date", "after today"),
    ({"expire_date": "2099-01-01"}, "expire_date", "Only GTD"),
    ({"side": "HOLD"}, "side", "valid choice"),
    ({"order_type": "ICEBERG"}, "order_type", "valid choice"),
    ({"time_in_force": "FOREVER"}, "time_in_force", "valid choice"),
    ({"symbol": None}, "symbol", "required"),
    ({"instructions": "x" * 2001}, "instructions", "2000"),
]


@pytest.mark.parametrize(("change", "field", "phrase"), BAD_INPUTS)
def test_each_bad_input_is_a_400_on_its_field_and_writes_nothing(refdata, change, field, phrase):
    body = ticket(**change)
    response = client_for(refdata.pm1).post("/api/orders/", body, format="json")
    assert response.status_code == 400, response.json()
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert field in error["fields"], error
    assert phrase.lower() in " ".join(error["fields"][field]).lower(), error
    assert not Order.objects.exists()
    assert not AuditEvent.objects.filter(action="order.create").exists()


def test_lot_size_and_inactive_symbol(refdata):
    factories.security("BRK", price="500.00", lot="10")
    dead = factories.security("DEAD", price="1.00")
    dead.active = False
    dead.save()
    api = client_for(refdata.pm1)
    lot = api.post(
        "/api/orders/",
        ticket(symbol="BRK", quantity="15", order_type="MARKET", limit_price=None),
        format="json",
    )
    assert lot.status_code == 400
    assert "lot size 10" in lot.json()["error"]["fields"]["quantity"][0]
    ok = api.post(
        "/api/orders/",
        ticket(symbol="BRK", quantity="20", order_type="MARKET", limit_price=None),
        format="json",
    )
    assert ok.status_code == 201
    inactive = api.post(
        "/api/orders/", ticket(symbol="DEAD", limit_price=None, order_type="MARKET"), format="json"
    )
    assert inactive.status_code == 400
    assert "not active" in inactive.json()["error"]["fields"]["symbol"][0]


def test_amend_before_routing_applies_and_goes_back_through_compliance(refdata):
    api = client_for(refdata.pm1)
    created = api.post("/api/orders/", ticket(), format="json").json()
    response = api.patch(
        f"/api/orders/{created['id']}/",
        {"quantity": "300", "limit_price": "188.00"},
        format="json",
    )
    assert response.status_code == 200, response.json()
    body = response.json()
    assert Decimal(body["quantity"]) == 300 and Decimal(body["limit_price"]) == Decimal("188")
    assert body["status"] == "STAGED"
    assert Decimal(body["leaves_qty"]) == 300
    kinds = [e["kind"] for e in body["events"]]
    amend = kinds.index("amend")
    assert body["events"][amend]["to_status"] == "PENDING_COMPLIANCE"
    assert kinds[-1] == "stage" and amend < len(kinds) - 1
    assert "order.amend" in actions_for(created["id"])
    event = AuditEvent.objects.get(object_id=str(created["id"]), action="order.amend")
    assert Decimal(event.before["quantity"]) == 100 and Decimal(event.after["quantity"]) == 300


def test_amend_with_bad_values_is_refused_and_changes_nothing(refdata):
    api = client_for(refdata.pm1)
    created = api.post("/api/orders/", ticket(), format="json").json()
    bad = api.patch(f"/api/orders/{created['id']}/", {"limit_price": "1.001"}, format="json")
    assert bad.status_code == 400
    assert "tick size" in bad.json()["error"]["fields"]["limit_price"][0]
    same = api.patch(f"/api/orders/{created['id']}/", {"quantity": "100"}, format="json")
    assert same.status_code == 400 and same.json()["error"]["code"] == "nothing_to_amend"
    empty = api.patch(f"/api/orders/{created['id']}/", {}, format="json")
    assert empty.status_code == 400
    order = Order.objects.get(pk=created["id"])
    assert order.quantity == 100 and order.limit_price == Decimal("189.50")
    assert order.version == created["version"]


def test_cancel_before_routing_is_immediate_and_audited(refdata):
    api = client_for(refdata.pm1)
    created = api.post("/api/orders/", ticket(), format="json").json()
    response = api.post(
        f"/api/orders/{created['id']}/cancel/", {"reason": "changed my mind"}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["status"] == "CANCELLED"
    assert Decimal(response.json()["leaves_qty"]) == 0
    assert actions_for(created["id"])[-1] == "order.cancel"
    again = api.post(f"/api/orders/{created['id']}/cancel/")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "invalid_transition"


def test_cancel_of_a_filled_order_is_refused(refdata):
    order = factories.order(refdata.acct1, refdata.aapl, refdata.pm1, status="FILLED")
    response = client_for(refdata.pm1).post(f"/api/orders/{order.pk}/cancel/")
    assert response.status_code == 409
    order.refresh_from_db()
    assert order.status == "FILLED"


def test_cancel_at_broker_without_a_routed_block_rolls_back_cleanly(refdata):
    """At the broker, cancel is the FIX gateway's job; if it refuses, nothing is half-written."""
    order = factories.order(refdata.acct1, refdata.aapl, refdata.pm1, status="WORKING")
    response = client_for(refdata.pm1).post(f"/api/orders/{order.pk}/cancel/")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "not_routed"
    order.refresh_from_db()
    assert order.status == "WORKING" and order.version == 1
    assert not order.events.exists()
    assert actions_for(order.pk) == []


def test_amend_at_broker_refuses_fields_the_broker_cannot_change(refdata):
    order = factories.order(
        refdata.acct1,
        refdata.aapl,
        refdata.pm1,
        status="WORKING",
        order_type="LIMIT",
        limit_price="190.00",
    )
    api = client_for(refdata.pm1)
    response = api.patch(f"/api/orders/{order.pk}/", {"expire_date": "2099-01-01"}, format="json")
    assert response.status_code == 400
    assert "expire_date" in response.json()["error"]["fields"]


def test_schema_describes_the_order_endpoints(refdata):
    response = client_for(refdata.pm1).get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    paths = (
        response.json()["paths"]
        if response["Content-Type"].startswith("application/json")
        else __import__("yaml").safe_load(response.content)["paths"]
    )
    for path in (
        "/api/orders/",
        "/api/orders/{id}/",
        "/api/orders/{id}/cancel/",
        "/api/baskets/",
        "/api/baskets/rebalance/",
    ):
        assert path in paths, path
    assert "post" in paths["/api/orders/"] and "patch" in paths["/api/orders/{id}/"]


def test_ticket_info_shows_price_and_position(refdata):
    from positions.models import Position

    Position.objects.create(account=refdata.acct1, security=refdata.aapl, quantity=Decimal(700))
    api = client_for(refdata.pm1)
    body = api.get("/api/orders/ticket-info/?account=ACCT1&symbol=aapl").json()
    assert Decimal(body["position"]) == 700
    assert Decimal(body["reference_price"]) == Decimal("190")
    assert api.get("/api/orders/ticket-info/?account=ACCT2&symbol=AAPL").status_code == 404


def test_ticket_info_shows_a_bonds_clean_amount_accrued_and_total(refdata):
    from datetime import date

    from tests.factories import security

    security(
        "UST30", price="99.50", asset_class="BOND", price_quotation="PER_100",
        coupon_rate=Decimal("6"), coupon_frequency=2, day_count="30/360",
        maturity_date=date(2040, 2, 15),
    )  # fmt: skip
    api = client_for(refdata.pm1)
    body = api.get("/api/orders/ticket-info/?account=ACCT1&symbol=UST30&quantity=1000000").json()
    assert body["price_quotation"] == "PER_100"
    # 1,000,000 face at 99.50 is 995,000 clean (not 99,500,000), plus at most half a 6% coupon.
    assert Decimal(body["clean_amount"]) == 995_000
    accrued = Decimal(body["accrued_amount"])
    assert 0 <= accrued <= 30_000
    assert Decimal(body["total_amount"]) == 995_000 + accrued
    assert Decimal(body["accrued_per_100"]).quantize(Decimal("0.01")) == (
        accrued / 10_000
    ).quantize(Decimal("0.01"))
    at_limit = api.get(
        "/api/orders/ticket-info/?account=ACCT1&symbol=UST30&quantity=1000&price=101"
    )
    assert Decimal(at_limit.json()["clean_amount"]) == 1010
    bad = api.get("/api/orders/ticket-info/?account=ACCT1&symbol=UST30&quantity=lots")
    assert bad.status_code == 400 and "quantity" in bad.content.decode()
