"""The compliance override queue and the audit trail (issue 17, item 5): paged, filtered, bulk
override with a reason and one audited override per order; audit changes as a field diff, the
action filter by prefix."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from audit.models import AuditEvent
from audit.services import audit_record
from compliance.models import Override, RuleKind
from orders.lifecycle import OrderStatus
from orders.models import Order
from tests.blotter.helpers import staged_order
from tests.compliance.conftest import AS_OF, fund, make_rule, place
from tests.factories import security

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def queue(refdata):
    security("TST", price="100.00", sector="Utilities")
    fund(refdata.acct1, "1000000")
    fund(refdata.acct2, "1000000")
    block_rule = make_rule(
        refdata.compliance,
        RuleKind.ORDER_SIZE,
        {"max_quantity": "100"},
        name="size block",
        scope="ACCOUNTS",
        account_ids=[refdata.acct2.pk],
    )
    make_rule(
        refdata.compliance,
        RuleKind.ORDER_SIZE,
        {"max_quantity": "100"},
        name="size warn",
        severity="WARN",
        scope="ACCOUNTS",
        account_ids=[refdata.acct1.pk],
    )
    blocked = [place(refdata.pm2, refdata.acct2, "TST", "BUY", 101 + i) for i in range(2)]
    warned = place(refdata.pm1, refdata.acct1, "TST", "BUY", 150)
    assert {o.status for o in blocked} == {OrderStatus.BLOCKED}
    assert warned.status == OrderStatus.AWAITING_OVERRIDE
    for _ in range(55):
        staged_order(refdata.acct1, refdata.aapl, status=OrderStatus.BLOCKED)
    return block_rule, blocked, warned


def _rows(page):
    return page.locator("[data-testid=awaiting-override] tbody tr[data-order-id]")


def test_queue_is_paged_and_filtered(queue, login, oms_server):
    block_rule, blocked, warned = queue
    page = login("compliance1")
    page.set_viewport_size({"width": 1366, "height": 768})
    page.goto(f"{oms_server}/compliance/")
    # Fifty rows with their override forms still fit the screen's width.
    assert page.evaluate(
        "() => document.documentElement.scrollWidth <= document.documentElement.clientWidth"
    )
    assert (
        "Awaiting override (58)" in page.locator("[data-testid=awaiting-override] h2").inner_text()
    )
    assert _rows(page).count() == 50
    page.click("[data-testid=awaiting-override] .pager >> text=next")
    assert _rows(page).count() == 8

    page.goto(f"{oms_server}/compliance/")
    page.select_option("[data-testid=queue-filters] select[name=rule]", str(block_rule.pk))
    page.click("[data-testid=queue-filters] button")
    ids = {int(i) for i in _rows(page).evaluate_all("rows => rows.map(r => r.dataset.orderId)")}
    assert ids == {o.pk for o in blocked}

    page.goto(f"{oms_server}/compliance/?pm=pm1")
    assert _rows(page).count() == 50
    assert page.locator("[data-testid=awaiting-override] h2").inner_text().endswith("(56)")
    page.goto(f"{oms_server}/compliance/?account=ACCT2")
    assert _rows(page).count() == 2

    response = page.goto(f"{oms_server}/compliance/?rule=abc")
    assert response.status == 400
    assert "Rule must be a rule id" in page.locator("[data-testid=queue-filter-error]").inner_text()


def test_bulk_override_needs_a_reason_and_audits_each_order(queue, login, oms_server):
    block_rule, blocked, warned = queue
    page = login("compliance1")
    page.goto(f"{oms_server}/compliance/?rule={block_rule.pk}")
    page.check("[data-select-all]")
    page.click("[data-testid=bulk-override] button")
    # No reason: the browser refuses to send it, nothing changes.
    assert Override.objects.count() == 0
    page.fill("[data-testid=bulk-override] input[name=reason]", "client mandate allows it")
    page.click("[data-testid=bulk-override] button")
    page.wait_for_selector(".messages li:has-text('2 order(s) approved by override')")
    assert re.search(rf"rule={block_rule.pk}", page.url)
    assert Override.objects.filter(reason="client mandate allows it").count() == 2
    for order in blocked:
        order.refresh_from_db()
        assert order.status not in (OrderStatus.BLOCKED, OrderStatus.AWAITING_OVERRIDE)
        assert AuditEvent.objects.filter(
            action="compliance.override", after__order=order.pk
        ).exists()
    assert _rows(page).count() == 0


def test_bulk_override_keeps_the_single_override_rules(queue):
    block_rule, blocked, warned = queue
    from tests.factories import user

    client = Client()
    client.force_login(Order.objects.get(pk=blocked[0].pk).account.managers.first())
    assert (
        client.post("/compliance/override/bulk/", {"order_ids": [blocked[0].pk]}).status_code == 403
    )

    compliance = Client()
    compliance.force_login(user("compliance2", "Compliance"))
    response = compliance.post(
        "/compliance/override/bulk/",
        {"order_ids": [blocked[0].pk, warned.pk], "reason": ""},
        follow=True,
    )
    assert "needs a reason" in response.content.decode()
    assert Override.objects.count() == 0
    response = compliance.post(
        "/compliance/override/bulk/",
        {"order_ids": [blocked[0].pk, warned.pk], "reason": "checked"},
        follow=True,
    )
    text = response.content.decode()
    assert "1 order(s) approved by override" in text
    assert f"Order {warned.pk} not overridden" in text
    assert list(Override.objects.values_list("order_id", flat=True)) == [blocked[0].pk]
    warned.refresh_from_db()
    assert warned.status == OrderStatus.AWAITING_OVERRIDE


def test_audit_shows_a_field_diff_and_filters_actions_by_prefix(refdata, login, oms_server):
    audit_record(
        actor=refdata.pm1,
        action="order.amend",
        object_type="order",
        object_id=7,
        before={"status": "WORKING", "quantity": "100", "side": "BUY"},
        after={"status": "WORKING", "quantity": "250", "side": "BUY"},
        occurred_at=AS_OF,
    )
    audit_record(
        actor=refdata.pm1,
        action="order.create",
        object_type="order",
        object_id=8,
        after={"quantity": "5"},
        occurred_at=AS_OF,
    )
    audit_record(
        actor=refdata.pm1, action="orderbook.reset", object_type="x", object_id=1, occurred_at=AS_OF
    )
    page = login("compliance1")
    page.goto(f"{oms_server}/audit/?action=order.")
    table = page.locator("[data-testid=audit-events]")
    actions = table.locator(":scope > tbody > tr > td:nth-child(4)").all_inner_texts()
    assert sorted(actions) == ["order.amend", "order.create"]
    amend = table.locator(":scope > tbody > tr", has_text="order.amend")
    diff = amend.locator("[data-testid=diff] tr")
    assert diff.count() == 1
    assert diff.locator("th").inner_text() == "quantity"
    assert diff.locator("td.before").inner_text() == "100"
    assert diff.locator("td.after").inner_text() == "250"
    assert "{'" not in table.inner_text()
    page.goto(f"{oms_server}/audit/?action=order")
    assert sorted(table.locator(":scope > tbody > tr > td:nth-child(4)").all_inner_texts()) == [
        "order.amend",
        "order.create",
    ]


def test_admin_says_breaches(refdata):
    client = Client()
    client.force_login(refdata.admin)
    text = client.get("/admin/").content.decode()
    assert "Breaches" in text and "Breachs" not in text
