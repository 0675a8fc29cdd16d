"""The market panel of the blotter and positions pages in Chromium: live quotes over the
existing feed, stale flags, and the reference-price notice without a feed."""

from __future__ import annotations

import pytest

from tests.fix.conftest import routed_block, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_blotter_panel_follows_the_feed_and_flags_a_stale_security(
    desk, world, login, oms_server, settings
):
    broker = world.make(extra_config={"market_data": True})
    world.sim("md_config", rate=10)
    routed_block(desk, broker, "100", order_type="LIMIT", limit_price="150.00")
    from marketdata.models import Quote

    wait_until(lambda: Quote.objects.filter(security=desk.aapl).exists(), what="a quote")
    page = login("trader1")
    page.goto(f"{oms_server}/blotter/")
    page.wait_for_selector("#market-panel[data-loaded='1']")
    row = page.locator("#market-rows tr[data-symbol=AAPL]")
    assert "Live prices from SIMP" in page.inner_text("#market-feed-status")
    page.wait_for_function("Number(document.getElementById('market-panel').dataset.updates) >= 3")
    first = row.inner_text()
    page.wait_for_function(
        "t => document.querySelector('#market-rows tr[data-symbol=AAPL]').innerText !== t",
        arg=first,
    )
    assert row.get_attribute("data-stale") == "0"


def test_without_a_feed_the_positions_page_says_reference_prices(refdata, login, oms_server):
    from tests.factories import order

    order(refdata.acct1, refdata.aapl, refdata.pm1, status="STAGED")
    page = login("pm1")
    page.goto(f"{oms_server}/positions/")
    page.wait_for_selector("#market-panel[data-loaded='1']")
    assert "reference prices" in page.inner_text("#market-feed-status")
    cells = page.locator("#market-rows tr[data-symbol=AAPL] td").all_inner_texts()
    assert cells[3] == "190.00000000" or cells[3].startswith("190")
    assert cells[-1] == "reference"
    # pm1 sees only their own accounts' securities: nothing of pm2's.
    assert page.locator("#market-rows tr").count() == 1
