"""The PM's order drawer (issue 17, item 1), in real Chromium at 1366 x 768: the timeline,
compliance with the failing rule first, fills and allocations of one order, and cancel, amend
and acknowledge through the APIs; a PM never sees another PM's order, even in a shared block."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db import transaction
from django.utils import timezone

from audit.models import AuditEvent
from compliance.models import RuleKind
from fixgateway.models import Broker
from orders.lifecycle import OrderStatus
from orders.models import Block, Order

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

TRADE_DATE = datetime.now(UTC).date()


def _warn_rule(refdata):
    from compliance.services import rule_create

    return rule_create(
        actor=refdata.compliance,
        as_of=timezone.now(),
        name="Fat finger (warn)",
        kind=RuleKind.ORDER_SIZE,
        parameters={"max_quantity": "1000"},
        severity="WARN",
    )


def _place(refdata, quantity: str, **kw) -> Order:
    from orders.entry import order_create

    kw.setdefault("order_type", "LIMIT" if "limit_price" in kw else "MARKET")
    order, _ = order_create(
        pm=refdata.pm1,
        account=refdata.acct1.code,
        symbol="AAPL",
        side="BUY",
        quantity=Decimal(quantity),
        as_of=timezone.now(),
        **kw,
    )
    order.refresh_from_db()
    return order


def _shared_filled_block(refdata) -> tuple[Order, Order]:
    """pm1's and pm2's orders in one AAPL block, filled in two executions, day finalised."""
    from allocation.services import (
        BlockFill,
        allocation_finalise,
        allocation_plan_fix,
        block_book,
        street_fills_record,
    )

    broker = Broker.objects.create(
        code="SIM", name="Simulator", port=9999, sender_comp_id="OMS", target_comp_id="SIM"
    )
    now = timezone.now()
    block = Block.objects.create(
        security=refdata.aapl,
        side="BUY",
        quantity=Decimal(400),
        status=Block.Status.WORKING,
        broker=broker,
        created_by=refdata.trader,
        created_at=now,
        routed_at=now,
    )
    orders = []
    for account, quantity in ((refdata.acct1, 300), (refdata.acct2, 100)):
        orders.append(
            Order.objects.create(
                account=account,
                security=refdata.aapl,
                side="BUY",
                quantity=Decimal(quantity),
                leaves_qty=Decimal(quantity),
                order_type="MARKET",
                status=OrderStatus.WORKING,
                pm=account.managers.first(),
                received_at=now,
                block=block,
            )
        )
    allocation_plan_fix(block=block, actor=refdata.trader, as_of=now)
    for ref, quantity, price in (("E1", "200", "190.00"), ("E2", "200", "191.00")):
        # What the FIX gateway does per execution: the block's cum/avg, the street fill, booking.
        with transaction.atomic():
            locked = Block.objects.select_for_update().select_related("security").get(pk=block.pk)
            q, p = Decimal(quantity), Decimal(price)
            value = (locked.avg_price or 0) * locked.cum_qty + q * p
            locked.cum_qty += q
            locked.avg_price = value / locked.cum_qty
            locked.save(update_fields=["cum_qty", "avg_price"])
            street_fills_record(fills=[BlockFill(locked, ref, q, p, TRADE_DATE)], as_of=now)
            block_book(block=locked, as_of=now)
    Block.objects.filter(pk=block.pk).update(status=Block.Status.FILLED)
    block.refresh_from_db()
    allocation_finalise(block=block, as_of=now)
    return orders[0], orders[1]


def _my_orders(login, oms_server):
    page = login("pm1")
    page.set_viewport_size({"width": 1366, "height": 768})
    page.goto(f"{oms_server}/orders/mine/")
    page.wait_for_selector("#my-orders[data-feed=live]")
    return page


def _open(page, order_id: int):
    page.locator(f"tr[data-order-id='{order_id}'] [data-open-order]").click()
    drawer = page.locator("#order-drawer")
    page.wait_for_selector(f"#order-drawer[data-order-id='{order_id}'][data-loaded='1']")
    return drawer


def test_drawer_shows_timeline_fills_and_own_allocation_only(refdata, login, oms_server):
    mine, theirs = _shared_filled_block(refdata)
    page = _my_orders(login, oms_server)
    assert page.locator(f"tr[data-order-id='{theirs.pk}']").count() == 0
    drawer = _open(page, mine.pk)

    assert drawer.locator("[data-testid=drawer-status]").inner_text() == "FILLED"
    kinds = drawer.locator("ol.timeline li").evaluate_all("els => els.map(e => e.dataset.kind)")
    assert kinds.count("fill") >= 1 and kinds[-1] == "fill", kinds
    fills = drawer.locator("[data-testid=drawer-fills] tbody tr")
    # 300 of 400: the order's shares of the two executions, at the executions' prices.
    rows = [[c.replace(",", "") for c in r.locator("td").all_inner_texts()] for r in fills.all()]
    assert sum(Decimal(q) for _, q, _ in rows) == Decimal(300)
    assert {p for _, _, p in rows} == {"190.00", "191.00"}
    allocations = drawer.locator("[data-testid=drawer-allocations] tbody tr")
    assert allocations.count() == 1
    cells = allocations.first.locator("td").all_inner_texts()
    assert cells[2] == "300"
    assert cells[3].startswith("190.50")  # the day's average: (200 x 190 + 200 x 191) / 400
    # Nothing of pm2's order or account reaches the drawer.
    assert "ACCT2" not in drawer.inner_text()
    # A filled order offers nothing to do.
    assert drawer.locator("[data-action]").count() == 0
    # The drawer fits the 1366 x 768 window and Escape closes it.
    box = drawer.bounding_box()
    assert box["x"] + box["width"] <= 1366 and box["height"] <= 768
    page.keyboard.press("Escape")
    assert drawer.is_hidden()

    # Asking for pm2's order by id (as a crafted page would) shows only "not found".
    page.evaluate(f"OMSOrderDrawer.open({theirs.pk})")
    page.locator("#order-drawer .drawer-message.error").wait_for()
    assert "not found" in drawer.inner_text().lower()
    assert "ACCT2" not in drawer.inner_text()
    assert drawer.locator("[data-testid=drawer-fills]").count() == 0


def test_acknowledge_a_warning_needs_a_reason_and_is_audited(refdata, login, oms_server):
    _warn_rule(refdata)
    order = _place(refdata, "5000")
    assert order.status == OrderStatus.AWAITING_OVERRIDE
    page = _my_orders(login, oms_server)
    drawer = _open(page, order.pk)

    assert drawer.locator("[data-testid=drawer-verdict]").inner_text() == "WARN"
    # The warning rule is the first row, whatever the rule order.
    assert (
        drawer.locator("[data-testid=drawer-rules] tbody tr").first.get_attribute("data-outcome")
        == "WARN"
    )

    drawer.locator("[data-action=override]").click()
    drawer.locator("form[data-form=override] button[type=submit]").click()
    assert "reason" in drawer.locator("[data-error-for=reason]").inner_text().lower()
    order.refresh_from_db()
    assert order.status == OrderStatus.AWAITING_OVERRIDE

    drawer.locator("form[data-form=override] textarea[name=reason]").fill(
        "Rebalance into AAPL, size agreed"
    )
    drawer.locator("form[data-form=override] button[type=submit]").click()
    drawer.locator("[data-testid=drawer-override]").wait_for()
    order.refresh_from_db()
    assert order.status == OrderStatus.STAGED
    event = AuditEvent.objects.get(action="compliance.override")
    assert event.actor_id == refdata.pm1.pk
    assert event.after["reason"] == "Rebalance into AAPL, size agreed"
    # The row on My orders follows over the feed.
    page.locator(
        f"tr[data-order-id='{order.pk}'] [data-field=status]", has_text="STAGED"
    ).wait_for()


def test_amend_and_cancel_go_through_the_api_rules(refdata, login, oms_server):
    order = _place(refdata, "100", limit_price=Decimal("190.00"))
    assert order.status == OrderStatus.STAGED
    page = _my_orders(login, oms_server)
    drawer = _open(page, order.pk)

    drawer.locator("[data-action=amend]").click()
    form = drawer.locator("form[data-form=amend]")
    # Off the tick: the API's own message lands under the field and nothing changes.
    form.locator("input[name=limit_price]").fill("190.005")
    form.locator("button[type=submit]").click()
    form.locator("[data-error-for=limit_price]", has_text="tick").wait_for()
    order.refresh_from_db()
    assert order.limit_price == Decimal("190.00")

    form.locator("input[name=limit_price]").fill("189.50")
    form.locator("input[name=quantity]").fill("150")
    form.locator("button[type=submit]").click()
    drawer.locator(".drawer-message.ok", has_text="Amendment sent").wait_for()
    order.refresh_from_db()
    assert (order.quantity, order.limit_price) == (Decimal(150), Decimal("189.50"))
    assert drawer.locator("ol.timeline li[data-kind=amend]").count() == 1

    drawer.locator("[data-action=cancel]").click()
    drawer.locator("form[data-form=cancel] input[name=reason]").fill("Changed my mind")
    drawer.locator("form[data-form=cancel] button[type=submit]").click()
    drawer.locator("[data-testid=drawer-status]", has_text="CANCELLED").wait_for()
    order.refresh_from_db()
    assert order.status == OrderStatus.CANCELLED
    assert drawer.locator("[data-action]").count() == 0


def test_ticket_opens_the_submitted_order_in_the_drawer(refdata, login, oms_server):
    page = login("pm1")
    page.set_viewport_size({"width": 1366, "height": 768})
    page.goto(f"{oms_server}/orders/ticket/")
    page.fill("#symbol", "AAPL")
    page.locator("#symbol").press("Escape")
    page.fill("input[name=quantity]", "100")
    page.click("#submit-button")
    page.click("#confirm-submit")
    page.locator("#order-result:not([hidden])").wait_for()
    order = Order.objects.get()
    page.click("#open-order")
    page.wait_for_selector(f"#order-drawer[data-order-id='{order.pk}'][data-loaded='1']")
    kinds = page.locator("#order-drawer ol.timeline li").evaluate_all(
        "els => els.map(e => e.dataset.kind)"
    )
    assert kinds[0] == "create"
    assert page.locator("#order-drawer [data-action=cancel]").is_visible()
