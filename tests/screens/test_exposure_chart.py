"""The exposure charts read in % of NAV, with the money and the whole name in the tooltip, and
long names shortened on the axis (issue 17: labels were clipped, no % of NAV)."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from positions.selectors import firm_nav
from tests.factories import PASSWORD
from tests.positions.test_pages_and_api import fill

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_exposure_charts_are_in_percent_of_nav(refdata, browser, oms_server):
    fill(refdata.acct1, refdata.aapl, "BUY", "100", "180", "a1")
    fill(refdata.acct1, refdata.xom, "SELL_SHORT", "50", "120", "a2")
    nav = firm_nav(account_ids=None)
    context = browser.new_context(viewport={"width": 1366, "height": 768})
    page = context.new_page()
    page.set_default_timeout(15_000)
    try:
        page.goto(f"{oms_server}/login/")
        page.fill("input[name=username]", "compliance1")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_selector("[data-testid=username]")
        page.goto(f"{oms_server}/positions/exposure/")
        page.wait_for_function("() => window.Chart && Chart.getChart('sector-chart')")
        chart = page.evaluate(
            """() => {
                const c = Chart.getChart('sector-chart');
                return {
                    title: c.options.scales.x.title.text,
                    labels: c.data.labels,
                    long: c.data.datasets[0].data,
                    short: c.data.datasets[1].data,
                };
            }"""
        )
        assert chart["title"] == "% of NAV"
        pairs = zip(chart["long"], chart["short"], strict=True)
        sectors = dict(zip(chart["labels"], pairs, strict=True))
        # AAPL: 100 at its reference price 190; XOM short 50 at 110 (sign as the table has it).
        tech_long = sectors["Information Technology"][0]
        assert abs(D(str(tech_long)) - 100 * D(19000) / nav) < D("0.0001")
        assert sectors["Energy"][1] != 0
    finally:
        context.close()
