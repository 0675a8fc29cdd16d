"""One number formatter on every screen: separators, prices to the tick, money to the minor
unit, right-aligned (issue 17, item 4)."""

from __future__ import annotations

import pytest

from orders.lifecycle import OrderStatus
from tests.blotter.helpers import staged_order

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _align(locator) -> str:
    return locator.evaluate("el => getComputedStyle(el).textAlign")


def test_my_orders_numbers_are_grouped_to_the_tick_and_right_aligned(refdata, login, oms_server):
    order = staged_order(
        refdata.acct1,
        refdata.aapl,
        quantity="200000",
        order_type="LIMIT",
        limit_price="268.5",
        status=OrderStatus.WORKING,
    )
    page = login("pm1")
    page.goto(f"{oms_server}/orders/mine/")
    page.wait_for_selector("#my-orders[data-feed=live]")
    row = page.locator(f"tr[data-order-id='{order.pk}']")
    quantity = row.locator("[data-field=quantity]")
    assert quantity.inner_text() == "200,000"
    assert row.locator("[data-field=leaves_qty]").inner_text() == "200,000"
    assert row.locator("td[data-fmt=price]").first.inner_text() == "268.50"
    assert _align(quantity) == "right"
    assert _align(page.locator("[data-testid=my-orders] th.num").first) == "right"


def test_blotter_cells_use_the_formatter(refdata, login, oms_server):
    order = staged_order(
        refdata.acct1, refdata.msft, quantity="1250000", order_type="LIMIT", limit_price="110"
    )
    page = login("trader1")
    page.goto(f"{oms_server}/blotter/")
    page.wait_for_selector("[data-testid=feed-state]:text('live')")
    row = page.locator(f"#blotter-grid [role=row][row-id='{order.pk}']")
    assert row.locator("[col-id=quantity]").inner_text() == "1,250,000"
    assert row.locator("[col-id=limit_price]").inner_text() == "110.00"
    assert _align(row.locator("[col-id=quantity]")) == "right"


def test_formatter_money_follows_the_currency_and_keeps_decimal_quantities(
    refdata, login, oms_server
):
    page = login("pm1")
    page.goto(f"{oms_server}/orders/mine/")
    fmt = page.evaluate(
        """() => [OMS.fmt.money("1234567.891", "USD"), OMS.fmt.money("1234.5", "JPY"),
                   OMS.fmt.money("12.3456", "KWD"), OMS.fmt.qty("10.50000000"),
                   OMS.fmt.qty("3E+2"), OMS.fmt.price("100.125", "0.01"),
                   OMS.fmt.price("99", "0.0001"), OMS.fmt.qty("not a number")]"""
    )
    assert fmt == [
        "1,234,567.89",
        "1,235",
        "12.346",
        "10.5",
        "300",
        "100.125",
        "99.0000",
        "not a number",
    ]
