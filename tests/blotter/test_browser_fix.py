"""End to end in real Chromium: the trader blocks two staged orders, routes the block to the
broker simulator through the FIX gateway, watches partial fills arrive, and cancels the rest."""

from __future__ import annotations

from decimal import Decimal

import pytest

from fixgateway.models import FixOrder
from orders.models import Block, Order
from tests.fix.conftest import wait_until

from .helpers import staged_order

pytestmark = [pytest.mark.browser, pytest.mark.fix, pytest.mark.django_db(transaction=True)]


def _status_cell(page, order_id: int):
    return page.locator(f"#blotter-grid [role=row][row-id='{order_id}'] [col-id='status']")


def _check(page, order_id: int):
    page.locator(f"#blotter-grid [row-id='{order_id}'] .ag-selection-checkbox input").first.check()


def test_trader_blocks_routes_watches_fills_and_cancels(
    refdata, broker, sim, gateway, login, oms_server
):
    sim("config", fill_mode="none")  # the order rests; the test makes the broker fill it
    a = staged_order(refdata.acct1, refdata.aapl, quantity="300")
    b = staged_order(refdata.acct2, refdata.aapl, quantity="100")
    bystander = staged_order(refdata.acct1, refdata.msft, quantity="10")

    page = login("trader1")
    page.goto(f"{oms_server}/blotter/")
    page.wait_for_selector("[data-testid=feed-state]:text('live')")
    page.wait_for_selector("[data-testid=fix-sessions] [data-broker=SIMT].up")
    for order in (a, b, bystander):
        assert _status_cell(page, order.pk).inner_text() == "STAGED"

    _check(page, a.pk)
    _check(page, b.pk)
    page.click("[data-action=block]")
    page.wait_for_selector("[data-testid=notice]:text('Block ')")
    block = Block.objects.get()
    block_cell = f"#blotter-grid [role=row][row-id='{a.pk}'] [col-id='block_id']"
    page.locator(block_cell, has_text=str(block.pk)).wait_for()

    _check(page, a.pk)
    _check(page, b.pk)
    page.click("[data-action=route]")
    page.wait_for_selector("#route-dialog[open]")
    page.select_option("#r-broker", str(broker.pk))
    page.select_option("#r-type", "MARKET")
    page.select_option("#r-strategy", "DMA")
    page.click("[data-testid=route-submit]")
    page.wait_for_selector("[data-testid=notice]:text('routed to SIMT')")
    # The broker acknowledges: both orders working, shown without a reload.
    _status_cell(page, a.pk).filter(has_text="WORKING").wait_for()
    _status_cell(page, b.pk).filter(has_text="WORKING").wait_for()
    # (The broker column is off to the right, outside the rendered columns: read the row.)
    row_b = page.evaluate(f"() => window.OMSBlotter.api.getRowNode('{b.pk}').data")
    assert (row_b["broker"], row_b["strategy"], row_b["block_id"]) == ("SIMT", "DMA", block.pk)

    cl_ord_id = FixOrder.objects.get(block=block).cl_ord_id
    sim("fill", cl_ord_id=cl_ord_id, quantity="100")
    _status_cell(page, a.pk).filter(has_text="PARTIALLY_FILLED").wait_for()
    sim("fill", cl_ord_id=cl_ord_id, quantity="60")
    page.wait_for_function(
        f"""() => {{
            const api = window.OMSBlotter.api;
            const qa = Number(api.getRowNode('{a.pk}').data.cum_qty);
            const qb = Number(api.getRowNode('{b.pk}').data.cum_qty);
            return qa + qb === 160;
        }}"""
    )
    filled_a = Order.objects.get(pk=a.pk).cum_qty
    filled_b = Order.objects.get(pk=b.pk).cum_qty
    assert filled_a + filled_b == Decimal("160")
    assert filled_a == Decimal("120") and filled_b == Decimal("40")  # pro-rata 3:1
    pct = f"#blotter-grid [role=row][row-id='{a.pk}'] [col-id='pct_filled']"
    assert page.locator(pct).inner_text() == "40%"

    _check(page, a.pk)
    page.click("[data-action=cancel]")
    page.wait_for_selector("[data-testid=notice]:text('Cancel sent')")
    _status_cell(page, a.pk).filter(has_text="CANCELLED").wait_for()
    _status_cell(page, b.pk).filter(has_text="CANCELLED").wait_for()
    wait_until(lambda: Block.objects.get(pk=block.pk).status == "CANCELLED", what="cancelled")
    orders = {o.pk: o for o in Order.objects.filter(pk__in=[a.pk, b.pk])}
    assert [(orders[pk].status, orders[pk].cum_qty) for pk in (a.pk, b.pk)] == [
        ("CANCELLED", Decimal("120")),
        ("CANCELLED", Decimal("40")),
    ]
    assert _status_cell(page, bystander.pk).inner_text() == "STAGED"
