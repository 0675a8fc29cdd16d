"""A PM's My orders page, live over their own feed, in real Chromium."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import transaction
from django.utils import timezone

from orders.lifecycle import OrderStatus
from orders.services import order_fill_apply, order_lock, order_set_status

from .helpers import staged_order

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_pm_sees_own_orders_live_and_never_another_pms(refdata, login, oms_server):
    mine = staged_order(refdata.acct1, refdata.aapl, quantity="400", status=OrderStatus.WORKING)
    theirs = staged_order(refdata.acct2, refdata.msft, quantity="70")
    page = login("pm1")
    page.goto(f"{oms_server}/orders/mine/")
    page.wait_for_selector("#my-orders[data-feed=live]")
    table = page.locator("[data-testid=my-orders]")
    assert table.locator(f"tr[data-order-id='{mine.pk}']").count() == 1
    assert table.locator(f"tr[data-order-id='{theirs.pk}']").count() == 0

    with transaction.atomic():
        order_fill_apply(
            order=order_lock(order_id=mine.pk),
            quantity=Decimal("100"),
            price=Decimal("190"),
            as_of=timezone.now(),
            exec_ref="E-1",
        )
    row = table.locator(f"tr[data-order-id='{mine.pk}']")
    row.locator("[data-field=status]", has_text="PARTIALLY_FILLED").wait_for()
    assert row.locator("[data-field=cum_qty]").inner_text() == "100"
    assert row.locator("[data-field=leaves_qty]").inner_text() == "300"

    # Another PM's order changes and a new one of theirs appears: nothing reaches pm1's page.
    order_set_status(
        order_id=theirs.pk, to_status=OrderStatus.APPROVED, as_of=timezone.now(), kind="unstage"
    )
    another = staged_order(refdata.acct2, refdata.xom)
    order_set_status(
        order_id=another.pk, to_status=OrderStatus.APPROVED, as_of=timezone.now(), kind="unstage"
    )
    # pm1's own new order is inserted live, after those: once it shows, the others had their
    # chance to arrive.
    new_mine = staged_order(refdata.acct1, refdata.xom, quantity="5")
    order_set_status(
        order_id=new_mine.pk, to_status=OrderStatus.APPROVED, as_of=timezone.now(), kind="unstage"
    )
    table.locator(f"tr[data-order-id='{new_mine.pk}'] [data-field=status]").filter(
        has_text="APPROVED"
    ).wait_for()
    assert table.locator(f"tr[data-order-id='{theirs.pk}']").count() == 0
    assert table.locator(f"tr[data-order-id='{another.pk}']").count() == 0
    assert "ACCT2" not in table.inner_text()
