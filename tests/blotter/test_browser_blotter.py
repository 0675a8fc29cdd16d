"""The blotter in real Chromium against a real Daphne."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from django.db import transaction
from django.utils import timezone

from oms.models import UserPreference
from orders.lifecycle import OrderStatus
from orders.models import Block, Order
from orders.services import order_fill_apply, order_lock

from .helpers import staged_order

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _row(page, order_id: int):
    return page.locator(f"#blotter-grid [role=row][row-id='{order_id}']")


def _cell(page, order_id: int, col: str):
    return _row(page, order_id).locator(f"[col-id='{col}']")


def _open_blotter(login, oms_server, username="trader1"):
    page = login(username)
    page.goto(f"{oms_server}/blotter/")
    page.wait_for_selector("[data-testid=feed-state]:text('live')")
    return page


def test_trader_sees_staged_orders_and_blocks_two(refdata, login, oms_server):
    a = staged_order(refdata.acct1, refdata.aapl, quantity="300")
    b = staged_order(refdata.acct2, refdata.aapl, quantity="200")
    other = staged_order(refdata.acct2, refdata.msft, quantity="50")
    page = _open_blotter(login, oms_server)
    for order in (a, b, other):
        assert _cell(page, order.pk, "status").inner_text() == "STAGED"
    assert _cell(page, a.pk, "pm").inner_text() == "pm1"
    assert _cell(page, b.pk, "account").inner_text() == "ACCT2"
    page.locator(f"#blotter-grid [row-id='{a.pk}'] .ag-selection-checkbox input").first.check()
    page.locator(f"#blotter-grid [row-id='{b.pk}'] .ag-selection-checkbox input").first.check()
    page.click("[data-action=block]")
    page.wait_for_selector("[data-testid=notice]:text('Block ')")
    block = Block.objects.get()
    assert block.quantity == Decimal("500")
    assert set(block.orders.values_list("pk", flat=True)) == {a.pk, b.pk}
    # The block ids arrive over the websocket, without a reload.
    page.wait_for_function(
        f"""() => {{
            const api = window.OMSBlotter.api;
            const n1 = api.getRowNode('{a.pk}'), n2 = api.getRowNode('{b.pk}');
            return n1 && n2 && n1.data.block_id === {block.pk} && n2.data.block_id === {block.pk};
        }}"""
    )
    assert _cell(page, block.orders.first().pk, "block_id").inner_text() == str(block.pk)
    assert _cell(page, other.pk, "block_id").inner_text() == ""

    # Mixing securities is refused with the API's message.
    page.locator(f"#blotter-grid [row-id='{other.pk}'] .ag-selection-checkbox input").first.check()
    page.locator(f"#blotter-grid [row-id='{a.pk}'] .ag-selection-checkbox input").first.check()
    page.click("[data-action=block]")
    page.wait_for_selector("[data-testid=notice].error")
    assert "already in block" in page.locator("[data-testid=notice]").inner_text()


def test_fills_arrive_live_and_rows_are_coloured_by_status(refdata, login, oms_server):
    order = staged_order(refdata.acct1, refdata.aapl, quantity="1000", status=OrderStatus.WORKING)
    page = _open_blotter(login, oms_server)
    assert "st-WORKING" in _row(page, order.pk).first.get_attribute("class")
    with transaction.atomic():
        order_fill_apply(
            order=order_lock(order_id=order.pk),
            quantity=Decimal("250"),
            price=Decimal("190.5"),
            as_of=timezone.now(),
            exec_ref="T-1",
        )
    page.wait_for_function(
        f"() => window.OMSBlotter.api.getRowNode('{order.pk}').data.cum_qty === '250'"
    )
    page.wait_for_selector(f"#blotter-grid [row-id='{order.pk}'].st-PARTIALLY_FILLED")
    assert _cell(page, order.pk, "leaves_qty").inner_text() == "750"
    assert _cell(page, order.pk, "avg_price").inner_text() == "190.50"
    assert _cell(page, order.pk, "pct_filled").inner_text() == "25%"
    # A new order appears too.
    fresh = staged_order(refdata.acct2, refdata.xom)
    with transaction.atomic():
        from orders.services import order_transition

        order_transition(
            order=order_lock(order_id=fresh.pk),
            to_status=OrderStatus.APPROVED,
            as_of=timezone.now(),
            kind="unstage",
        )
    _cell(page, fresh.pk, "status").filter(has_text="APPROVED").wait_for()


def test_layout_is_remembered_per_user(refdata, login, oms_server):
    staged_order(refdata.acct1, refdata.aapl)
    page = _open_blotter(login, oms_server)
    page.click("[data-action=columns]")
    page.locator("[data-testid=columns-menu] label", has_text="Strategy").locator("input").uncheck()
    page.select_option("[data-testid=group-by]", "symbol")
    deadline_ok = False
    for _ in range(50):
        pref = UserPreference.objects.filter(user=refdata.trader, key="blotter.layout").first()
        if pref and pref.value.get("group_by") == "symbol":
            deadline_ok = True
            break
        page.wait_for_timeout(100)
    assert deadline_ok
    hidden = {c["colId"] for c in pref.value["columns"] if c.get("hide")}
    assert "strategy" in hidden
    page.reload()
    page.wait_for_selector("[data-testid=feed-state]:text('live')")
    assert page.locator("#blotter-grid .ag-header-cell[col-id='strategy']").count() == 0
    assert page.locator("[data-testid=group-by]").input_value() == "symbol"
    page.wait_for_selector("[data-testid=groups] [data-group='AAPL']")
    assert re.search(r"Symbol AAPL: 1", page.locator("[data-testid=groups]").inner_text())
    group_header = "#blotter-grid .ag-header-cell[col-id='group'] .ag-header-cell-text"
    assert page.locator(group_header).inner_text() == "Group"


def test_pm_cannot_open_the_blotter(refdata, login, oms_server):
    page = login("pm1")
    response = page.goto(f"{oms_server}/blotter/")
    assert response.status == 403
    assert Order.objects.count() == 0
