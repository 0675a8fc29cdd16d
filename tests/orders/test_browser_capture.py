"""A PM in real Chromium: enters an order on the ticket, finds it in My orders, uploads a
basket, previews it and confirms it."""

import re

import pytest

from orders.models import Basket, Order

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

BASKET = (
    "account,symbol,side,quantity,order_type,limit_price,stop_price,time_in_force,expire_date,instructions\n"
    "ACCT1,MSFT,BUY,50,MARKET,,,DAY,,\n"
    "ACCT1,XOM,SELL,20,LIMIT,111.25,,DAY,,\n"
    "ACCT1,NOPE,BUY,10,MARKET,,,DAY,,\n"
)


def test_pm_enters_an_order_sees_it_and_uploads_a_basket(refdata, login, oms_server, tmp_path):
    page = login("pm1")
    page.click("nav >> text=Order ticket")
    # Typing before the page's script listens starts no search: wait for it to load.
    page.wait_for_url(re.compile(r"/orders/ticket/$"), wait_until="load")
    page.wait_for_selector("#order-ticket")
    assert page.locator("select[name=account] option").all_inner_texts() == ["ACCT1 · ACCT1 Fund"]

    # Security search by name, then pick the result.
    page.fill("#symbol", "AAPL Co")
    page.click("#security-results [data-symbol=AAPL]")
    page.wait_for_function(
        "document.querySelector('[data-fact=reference_price]').textContent.includes('190')"
    )
    assert page.locator("[data-fact=position]").inner_text() == "0"
    page.fill("input[name=quantity]", "150")
    page.select_option("select[name=order_type]", "LIMIT")
    page.fill("input[name=limit_price]", "189.501")
    page.click("#submit-button")
    error = page.locator("[data-error-for=limit_price]")
    error.wait_for()
    page.wait_for_function(
        "document.querySelector('[data-error-for=limit_price]').textContent.length > 0"
    )
    assert "tick size" in error.inner_text()
    assert not Order.objects.exists()

    page.fill("input[name=limit_price]", "189.50")
    assert "28,425" in page.locator("[data-fact=notional]").inner_text()
    page.click("#submit-button")
    page.click("#confirm-submit")
    page.wait_for_selector("#order-result:not([hidden])")
    order = Order.objects.get()
    assert page.locator("#order-result [data-field=id]").inner_text() == str(order.pk)
    assert page.locator("#order-result [data-field=status]").inner_text() == "STAGED"
    assert (order.quantity, str(order.limit_price)) == (150, "189.50000000")
    assert "PASS" in page.locator("#compliance-panel").inner_text()

    page.click("nav >> text=My orders")
    row = page.locator(f"#my-orders tr[data-order-id='{order.pk}']")
    assert "AAPL" in row.inner_text()
    assert row.locator("[data-field=status]").inner_text() == "STAGED"

    page.click("nav >> text=Baskets")
    # The page's script listens for the file once loaded: a file set before then went unseen on
    # a busy machine.
    page.wait_for_url(re.compile(r"/orders/baskets/$"), wait_until="load")
    csv_path = tmp_path / "basket.csv"
    csv_path.write_text(BASKET, encoding="utf-8")
    page.set_input_files("#basket-file", str(csv_path))
    page.wait_for_selector("#preview:not([hidden])")
    summary = page.locator("#preview-summary").inner_text()
    assert summary == "3 lines: 2 orders to create, 1 errors."
    bad = page.locator("#preview-table tr.bad")
    assert bad.count() == 1
    assert re.search(r"^4\s.*symbol\s+Unknown symbol 'NOPE'\.$", bad.inner_text().strip(), re.S)
    page.fill("#basket-name", "Browser basket")
    page.click("#confirm-button")
    page.wait_for_selector("[data-testid=basket-created]")
    basket = Basket.objects.get()
    assert basket.name == "Browser basket"
    assert sorted(basket.orders.values_list("security__symbol", flat=True)) == ["MSFT", "XOM"]
    assert "2 orders" in page.locator("[data-testid=basket-created]").inner_text()

    page.click("text=See them in My orders")
    page.wait_for_selector("#my-orders")
    assert page.locator("#my-orders tbody tr[data-order-id]").count() == 3
