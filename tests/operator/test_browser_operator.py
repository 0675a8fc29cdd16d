"""The operator's tools on the blotter, in real Chromium against the gateway and the broker
simulator over 127.0.0.1: an engaged kill switch is a banner the trader releases with a
reason; the block side panel shows the block's execution, ClOrdID and messages."""

from __future__ import annotations

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from fixgateway import killswitch
from fixgateway.models import Execution, KillSwitch
from orders.models import Order
from tests.fix.conftest import broker, gateway, gateway_env, routed_block, sim, wait_until

__all__ = ["broker", "gateway", "gateway_env", "sim"]  # the FIX world's fixtures

pytestmark = [pytest.mark.browser, pytest.mark.fix, pytest.mark.django_db(transaction=True)]


def test_kill_switch_banner_release_and_block_panel(
    refdata, broker, sim, gateway, login, oms_server
):
    block = routed_block(refdata, broker, "100")
    fill = wait_until(
        lambda: Execution.objects.filter(fix_order__block=block, exec_type="F").first(),
        what="the simulator's fill",
    )
    order = Order.objects.get(block=block)
    killswitch.kill_switch_engage(scope="all", value="", actor=refdata.trader, as_of=timezone.now())

    page = login("trader1")
    page.goto(f"{oms_server}/blotter/")
    banner = page.locator("[data-testid=kill-switches] .kill-banner[data-scope=all]")
    banner.wait_for()
    assert "KILL SWITCH ENGAGED: Everything" in banner.inner_text()
    page.wait_for_selector("[data-testid=fix-sessions] [data-broker=SIMT].up")
    assert "open exception" in page.locator("[data-testid=exceptions-open]").inner_text()

    banner.locator("[data-action=release]").click()
    page.wait_for_selector("#release-dialog[open]")
    page.fill("#rel-reason", "desk checked, market calm again")
    page.click("[data-testid=release-submit]")
    page.wait_for_selector("[data-testid=notice]:text('Kill switch released')")
    banner.wait_for(state="detached")
    switch = KillSwitch.objects.get()
    assert switch.released_at is not None and switch.released_by == refdata.trader
    assert switch.release_reason == "desk checked, market calm again"
    assert AuditEvent.objects.filter(action="fix.kill_switch_release").exists()

    page.wait_for_selector("[data-testid=feed-state]:text('live')")
    row = page.locator(f"#blotter-grid [row-id='{order.pk}']")
    row.locator(".ag-selection-checkbox input").first.check()
    page.click("[data-action=block-panel]")
    panel = page.locator("[data-testid=block-panel]")
    panel.locator("[data-testid=block-executions] td", has_text=fill.exec_id).wait_for()
    executions = panel.locator("[data-testid=block-executions]").inner_text()
    assert "100" in executions and "190" in executions
    assert block.fix_order.cl_ord_id in panel.locator("[data-testid=block-clordids]").inner_text()
    messages = panel.locator("[data-testid=block-messages] summary")
    assert "NewOrderSingle" in messages.first.inner_text()
    assert messages.count() >= 2
    # The block number in the grid opens the same panel.
    page.click("[data-action=panel-close]")
    assert panel.is_hidden()
    page.evaluate("() => window.OMSBlotter.api.ensureColumnVisible('block_id')")
    page.locator(f"#blotter-grid [row-id='{order.pk}'] [col-id='block_id']").click()
    panel.locator("[data-testid=block-executions] td", has_text=fill.exec_id).wait_for()
