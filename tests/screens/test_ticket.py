"""The order ticket behaves (issue 17, item 2): fields by type and time in force, a keyboard
typeahead that never submits, Check refusing what Submit refuses, quantity shorthand."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.test import Client

from orders.models import Order

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _ticket(login, oms_server):
    page = login("pm1")
    page.goto(f"{oms_server}/orders/ticket/")
    page.wait_for_selector("#order-ticket")
    return page


def test_market_day_shows_no_limit_stop_or_expire(refdata, login, oms_server):
    page = _ticket(login, oms_server)
    page.select_option("select[name=order_type]", "MARKET")
    page.select_option("select[name=time_in_force]", "DAY")
    for name in ("limit_price", "stop_price", "expire_date"):
        assert not page.locator(f"input[name={name}]").is_visible(), name
    page.select_option("select[name=order_type]", "STOP_LIMIT")
    assert page.locator("input[name=limit_price]").is_visible()
    assert page.locator("input[name=stop_price]").is_visible()
    page.select_option("select[name=time_in_force]", "GTD")
    assert page.locator("input[name=expire_date]").is_visible()


def test_typeahead_moves_with_arrows_enter_selects_escape_closes(refdata, login, oms_server):
    page = _ticket(login, oms_server)
    posts = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    page.fill("input[name=quantity]", "100")
    symbol = page.locator("#symbol")
    symbol.fill("Corp")
    page.wait_for_selector("#security-results:not([hidden]) [data-symbol]")
    options = page.locator("#security-results [data-symbol]")
    assert options.count() >= 2
    symbol.press("ArrowDown")
    symbol.press("ArrowDown")
    assert page.locator("#security-results li.active").count() == 1
    second = options.nth(1).get_attribute("data-symbol")
    assert (
        page.locator("#security-results li.active [data-symbol]").get_attribute("data-symbol")
        == second
    )
    symbol.press("ArrowUp")
    first = options.nth(0).get_attribute("data-symbol")
    symbol.press("Enter")
    assert symbol.input_value() == first
    assert page.locator("#security-results").is_hidden()
    page.wait_for_function(
        "document.querySelector('[data-fact=name]').textContent.startsWith(" + repr(first) + ")"
    )
    # Enter again, with the list closed: still no order.
    symbol.press("Enter")
    symbol.fill("Corp")
    page.wait_for_selector("#security-results:not([hidden]) [data-symbol]")
    symbol.press("Escape")
    assert page.locator("#security-results").is_hidden()
    # A submit would have sent its POST while the key event was handled.
    assert [url for url in posts if "/api/orders/" in url] == []
    assert page.locator("#order-result").is_hidden()
    assert not Order.objects.exists()


def test_check_refuses_a_quantity_off_the_lot_size_as_submit_does(refdata, login, oms_server):
    page = _ticket(login, oms_server)
    page.fill("#symbol", "AAPL")
    page.locator("#symbol").press("Escape")
    page.fill("input[name=quantity]", "10.5")
    page.click("#check-button")
    error = page.locator("[data-error-for=quantity]")
    page.wait_for_function(
        "document.querySelector('[data-error-for=quantity]').textContent.length > 0"
    )
    assert "lot size" in error.inner_text()
    checked = error.inner_text()
    page.click("#submit-button")
    page.wait_for_function(
        "document.querySelector('[data-error-for=quantity]').textContent.length > 0"
    )
    assert error.inner_text() == checked
    assert not Order.objects.exists()


def test_check_api_applies_the_submit_rules(refdata):
    client = Client()
    client.force_login(refdata.pm1)
    body = {"account": "ACCT1", "symbol": "AAPL", "side": "BUY", "quantity": "10.5"}
    response = client.post("/api/compliance/check/", body, content_type="application/json")
    assert response.status_code == 400
    assert "lot size" in str(response.json()["error"]["fields"]["quantity"])
    tick = {**body, "quantity": "10", "order_type": "LIMIT", "limit_price": "189.501"}
    response = client.post("/api/compliance/check/", tick, content_type="application/json")
    assert response.status_code == 400
    assert "tick size" in str(response.json()["error"]["fields"]["limit_price"])


def test_quantity_shorthand_is_shown_expanded_and_submitted(refdata, login, oms_server):
    page = _ticket(login, oms_server)
    page.fill("#symbol", "AAPL")
    page.locator("#symbol").press("Escape")
    quantity = page.locator("input[name=quantity]")
    hint = page.locator("[data-testid=quantity-expanded]")
    quantity.fill("10k")
    assert hint.inner_text() == "= 10,000"
    quantity.fill("1.5m")
    assert hint.inner_text() == "= 1,500,000"
    page.click("#submit-button")
    # The review writes the quantity out before anything is sent.
    review = page.locator("[data-testid=order-review]")
    review.locator("[data-review=quantity]", has_text="1,500,000").wait_for()
    assert not Order.objects.exists()
    page.click("#confirm-submit")
    page.wait_for_selector("#order-result:not([hidden])")
    assert quantity.input_value() == "1500000"
    assert Order.objects.get().quantity == Decimal("1500000")


def test_review_shows_notional_in_account_currency_nav_share_and_verdict(
    refdata, login, oms_server
):
    """A EUR stock for a USD account: the review converts at the FX table's rate, weighs the
    order in the account's NAV and shows the check's verdict; nothing is sent before Confirm."""
    from django.utils import timezone

    from compliance.models import RuleKind
    from compliance.services import rule_create
    from positions.models import CashBalance, FxRate
    from tests.factories import security

    security("SAPX", price="100.00", currency="EUR")
    FxRate.objects.update_or_create(
        base="EUR", quote="USD", as_of_date=timezone.now().date(), defaults={"rate": "1.10"}
    )
    CashBalance.objects.create(
        account=refdata.acct1,
        currency="USD",
        settled=Decimal("1000000"),
        opening_settled=Decimal("1000000"),
        projected=Decimal("1000000"),
    )
    rule_create(
        actor=refdata.compliance,
        as_of=timezone.now(),
        name="Fat finger (warn)",
        kind=RuleKind.ORDER_SIZE,
        parameters={"max_quantity": "500"},
        severity="WARN",
    )
    page = _ticket(login, oms_server)
    page.fill("#symbol", "SAPX")
    page.locator("#symbol").press("Escape")
    page.fill("input[name=quantity]", "1k")
    page.locator("input[name=quantity]").press("Enter")  # Enter reviews; it never submits
    review = page.locator("[data-testid=order-review]")
    review.wait_for()
    assert review.locator("[data-review=quantity]").inner_text() == "1,000"
    assert (
        review.locator("[data-review=notional_security]").inner_text().startswith("100,000.00 EUR")
    )
    assert review.locator("[data-review=notional]").inner_text() == "110,000.00 USD"
    assert review.locator("[data-review=pct_nav]").inner_text().startswith("11.00%")
    assert review.locator("[data-review=verdict]").inner_text() == "WARN"
    # The failing rule heads the compliance table.
    first = page.locator("[data-testid=compliance-results] tbody tr").first
    assert first.get_attribute("data-outcome") == "WARN"
    assert not Order.objects.exists()

    # An edit withdraws the review; Confirm is only reachable through a new one.
    page.fill("input[name=quantity]", "2000")
    assert review.is_hidden()
    page.click("#submit-button")
    review.locator("[data-review=notional]", has_text="220,000.00 USD").wait_for()
    page.click("#confirm-submit")
    page.wait_for_selector("#order-result:not([hidden])")
    order = Order.objects.get()
    assert order.quantity == Decimal(2000)
    assert order.status == "AWAITING_OVERRIDE"
