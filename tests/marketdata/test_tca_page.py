"""The TCA page in Chromium, its CSV export and the API: who may, what they see."""

from __future__ import annotations

import csv
import io
import os
from decimal import Decimal

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db(transaction=True)
RANGE = "date_from=2026-12-01&date_to=2026-12-01"


def _client(user) -> Client:
    c = Client()
    c.force_login(user)
    return c


def test_the_page_shows_the_summary_and_draws_its_charts(refdata, scenario, login, oms_server):
    page = login("trader1")
    page.goto(f"{oms_server}/tca/?{RANGE}&by=pm")
    page.wait_for_selector("body[data-tca-charts='1']")
    rows = page.locator("[data-testid=tca-summary] tbody tr")
    assert rows.count() == 2
    pm1 = rows.filter(has_text="pm1").locator("td").all_inner_texts()
    assert pm1[0] == "pm1" and pm1[4] == "50.00"
    assert "No market data feed configured" in page.inner_text("[data-testid=market-status]")
    for chart in ("tca-broker-chart", "tca-dist-chart", "tca-fills-chart"):
        # Chart.js sized and drew the canvas.
        assert page.locator(f"[data-testid={chart}]").evaluate("c => c.width > 0")
    assert page.locator("nav >> text=TCA").count() == 1
    if os.environ.get("OMS_DOCS_SCREENSHOTS"):
        # The README's picture of the page (docs/tca.png), taken from this very scenario.
        page.set_viewport_size({"width": 1400, "height": 900})
        page.wait_for_timeout(500)
        page.screenshot(path=os.environ["OMS_DOCS_SCREENSHOTS"] + "/tca.png", full_page=True)


def test_the_csv_export_and_the_api_give_the_same_figures(refdata, scenario):
    c = _client(refdata.compliance)
    response = c.get(f"/tca/export.csv?{RANGE}&by=order")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert sorted(r["shortfall_arrival_bps"] for r in rows) == ["-26.32", "50.00"]
    api = c.get(f"/api/tca/?{RANGE}&by=broker").json()
    assert api["summary"][0]["shortfall_arrival_bps"] == "11.89"
    summary = list(csv.DictReader(io.StringIO(c.get(f"/tca/export.csv?{RANGE}").content.decode())))
    assert summary[0]["broker"] == "BRK" and summary[0]["shortfall_arrival_bps"] == "11.89"


def test_a_pm_gets_only_their_own_accounts_through_the_api_and_not_the_page(refdata, scenario):
    c = _client(refdata.pm1)
    data = c.get(f"/api/tca/?{RANGE}&by=pm").json()
    assert [r["pm"] for r in data["summary"]] == ["pm1"]
    assert {o["account"] for o in data["orders"]} == {"ACCT1"}
    assert c.get(f"/tca/?{RANGE}").status_code == 403
    assert c.get(f"/tca/export.csv?{RANGE}").status_code == 403
    assert _client(refdata.ops).get(f"/api/tca/?{RANGE}").status_code == 403
    other_block = next(
        o["block"]
        for o in _client(refdata.trader).get(f"/api/tca/?{RANGE}").json()["orders"]
        if o["pm"] == "pm2"
    )
    assert c.get(f"/api/tca/blocks/{other_block}/fills/").status_code == 404


def test_bad_parameters_are_a_400_naming_them(refdata):
    c = _client(refdata.trader)
    for query, name in (
        ("by=desk", "by"),
        ("date_from=yesterday", "date_from"),
        ("colour=red", "colour"),
    ):
        response = c.get(f"/api/tca/?{query}")
        assert response.status_code == 400, query
        assert name in response.content.decode()
    assert c.get("/api/tca/blocks/abc/fills/").status_code == 404
    assert c.get("/tca/?by=desk").status_code == 400


def test_quotes_api_says_reference_prices_without_a_feed(refdata):
    data = _client(refdata.pm1).get(f"/api/marketdata/quotes/?security={refdata.aapl.pk}").json()
    assert data["status"]["feed"] is False
    (quote,) = data["quotes"]
    assert quote["source"] == "reference" and Decimal(quote["mid"]) == Decimal("190.00")
