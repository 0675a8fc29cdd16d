"""API and pages: values, filters, cash ladder, exposure, and a PM sees only their accounts."""

from datetime import UTC, date, datetime
from decimal import Decimal as D

import pytest

from positions.services import cash_adjust, fx_rate_set, position_fill_apply
from tests import factories

pytestmark = pytest.mark.django_db

AS_OF = datetime(2025, 6, 2, 14, tzinfo=UTC)


def fill(acct, sec, side, qty, price, ref, settle=date(2025, 6, 3)):
    position_fill_apply(
        account_id=acct.pk,
        security_id=sec.pk,
        side=side,
        quantity=D(qty),
        price=D(price),
        trade_date=date(2025, 6, 2),
        settle_date=settle,
        fill_ref=ref,
        as_of=AS_OF,
    )


@pytest.fixture
def book(refdata):
    fill(refdata.acct1, refdata.aapl, "BUY", "100", "180", "a1")  # ref price 190
    fill(refdata.acct1, refdata.xom, "SELL_SHORT", "50", "120", "a2")  # ref price 110
    fill(refdata.acct2, refdata.msft, "BUY", "10", "400", "b1")  # ref price 410
    cash_adjust(
        account_id=refdata.acct1.pk,
        currency="USD",
        amount=D("-12.50"),
        settle_date=date(2025, 6, 3),
        reason="commission",
        ref="a1",
        as_of=AS_OF,
    )
    return refdata


def test_positions_api_values_for_trader(client, book):
    client.force_login(book.trader)
    body = client.get("/api/positions/", {"account": "ACCT1"}).json()
    rows = {r["symbol"]: r for r in body["results"]}
    assert body["count"] == 2
    aapl = rows["AAPL"]
    assert D(aapl["quantity"]) == 100 and D(aapl["avg_cost"]) == 180
    assert D(aapl["market_value"]) == D(19000) and D(aapl["unrealized_pnl"]) == D(1000)
    xom = rows["XOM"]
    assert D(xom["market_value"]) == D(-5500) and D(xom["unrealized_pnl"]) == D(500)
    # NAV: 19000 - 5500 + cash (-18000 + 6000 - 12.50) = 1487.50
    assert D(aapl["pct_nav"]) == (D(19000) / D("1487.50") * 100).quantize(D("0.0001"))
    assert {r["account_code"] for r in client.get("/api/positions/").json()["results"]} == {
        "ACCT1",
        "ACCT2",
    }
    assert [r["symbol"] for r in client.get("/api/positions/?sector=Energy").json()["results"]] == [
        "XOM"
    ]


def test_pm_sees_only_their_accounts_in_the_api(client, book):
    client.force_login(book.pm1)
    rows = client.get("/api/positions/").json()["results"]
    assert {r["account_code"] for r in rows} == {"ACCT1"}
    assert client.get("/api/positions/", {"account": "ACCT2"}).status_code == 404
    assert client.get("/api/positions/", {"account": str(book.acct2.pk)}).status_code == 404
    cash = client.get("/api/cash/").json()["results"]
    assert {c["account_code"] for c in cash} == {"ACCT1"}
    assert client.get("/api/cash/", {"account": "ACCT2"}).status_code == 404
    exposure = client.get("/api/exposure/").json()["results"]
    assert {r["label"] for r in exposure} == {"AAPL", "XOM"}
    client.logout()
    assert client.get("/api/positions/").status_code in (401, 403)


def test_pm_sees_only_their_accounts_on_the_pages(client, book):
    client.force_login(book.pm1)
    page = client.get("/positions/").content.decode()
    assert 'data-testid="position-ACCT1-AAPL"' in page
    assert "ACCT2" not in page and "MSFT" not in page
    assert client.get("/positions/?account=ACCT2").status_code == 404
    ladder = client.get("/positions/cash/").content.decode()
    assert "ladder-ACCT1-USD" in ladder and "ACCT2" not in ladder
    exposure = client.get("/positions/exposure/").content.decode()
    assert "AAPL" in exposure and "MSFT" not in exposure


def test_cash_api_ladder(client, book):
    fill(book.acct1, book.aapl, "BUY", "10", "190", "a3", settle=date(2025, 6, 4))
    client.force_login(book.ops)
    [usd] = client.get("/api/cash/", {"account": "ACCT1"}).json()["results"]
    assert D(usd["settled"]) == 0
    steps = [(s["settle_date"], D(s["amount"]), D(s["projected"])) for s in usd["steps"]]
    assert steps == [
        ("2025-06-03", D("-12012.50"), D("-12012.50")),
        ("2025-06-04", D(-1900), D("-13912.50")),
    ]
    assert D(usd["projected"]) == D("-13912.50")


def test_exposure_api_by_sector_and_issuer(client, book):
    client.force_login(book.compliance)
    sectors = {r["label"]: r for r in client.get("/api/exposure/?by=sector").json()["results"]}
    tech = sectors["Information Technology"]
    assert D(tech["long_value"]) == D(19000 + 4100) and D(tech["short_value"]) == 0
    energy = sectors["Energy"]
    assert D(energy["short_value"]) == D(-5500) and D(energy["gross_value"]) == D(5500)
    issuers = {r["label"] for r in client.get("/api/exposure/?by=issuer").json()["results"]}
    assert issuers == {"AAPL Inc.", "MSFT Inc.", "XOM Inc."}
    assert client.get("/api/exposure/?by=colour").status_code == 400


def test_nav_converts_other_currencies_through_fx_rates(client, refdata):
    from positions.selectors import account_navs

    sap = factories.security("SAP", price="100.00", currency="EUR")
    fx_rate_set(base="EUR", quote="USD", rate=D("1.10"), as_of_date=date(2025, 6, 1))
    fill(refdata.acct1, sap, "BUY", "10", "90", "e1")  # EUR cash -900, position 1000 EUR
    nav = account_navs(account_ids=[refdata.acct1.pk])[refdata.acct1.pk]
    assert nav == D("110.00")  # (1000 - 900) EUR at 1.10


def test_exposure_page_serves_charts(client, book):
    client.force_login(book.compliance)
    page = client.get("/positions/exposure/").content.decode()
    assert "vendor/chart.js/dist/chart.umd.js" in page
    assert 'id="exposure-data"' in page and "Energy" in page


# --- the money view on the pages: a missing FX rate is said, a bond is per 100 plus accrued ---


def test_a_missing_fx_rate_is_said_on_every_positions_page_never_taken_as_one(client, book):
    """ACCT1 holds a JPY stock and the FX rates table has no JPY rate: its NAV and % of NAV
    say why they are missing, the exposure pages leave it out and say so; nothing is a 500."""
    toyo = factories.security("TOYO", price="2100", currency="JPY", sector="Industrials")
    fill(book.acct1, toyo, "BUY", "100", "2000", "j1")
    message = "No FX rate for JPY/USD: add one in the FX rates table."
    client.force_login(book.compliance)
    page = client.get("/positions/", {"account": "ACCT1"})
    assert page.status_code == 200 and message in page.content.decode()
    rows = {
        r["symbol"]: r
        for r in client.get("/api/positions/", {"account": "ACCT1"}).json()["results"]
    }
    assert rows["TOYO"]["pct_nav"] is None and rows["TOYO"]["fx_error"] == message
    assert rows["TOYO"]["market_value"] == "210000.00000000"  # in yen, its own currency
    exposure = client.get("/positions/exposure/")
    assert exposure.status_code == 200 and message in exposure.content.decode()
    body = client.get("/api/exposure/?by=security").json()
    assert body["fx_errors"] == [message]
    assert "TOYO" not in {r["label"] for r in body["results"]}
    assert "AAPL" in {r["label"] for r in body["results"]}


def test_a_bond_is_worth_face_per_100_plus_accrued_on_the_pages(client, refdata):
    """1,000,000 face of a 6% 30/360 bond bought at 99.00, reference price 99.50: the position
    costs 990,000 (its average cost stays 99.00, a price per 100); valued at 995,000 clean, so
    5,000 unrealized; its market value and its exposure add the accrued interest."""
    from oms.money import Terms

    bond = factories.bond("UST30")
    fill(refdata.acct1, bond, "BUY", "1000000", "99.00", "u1")
    client.force_login(refdata.compliance)
    [row] = client.get("/api/positions/", {"account": "ACCT1"}).json()["results"]
    assert (D(row["avg_cost"]), D(row["cost_basis"])) == (D("99.00"), D("990000"))
    assert D(row["unrealized_pnl"]) == D("5000")
    from django.utils import timezone

    accrued = D(1_000_000) * Terms.of(bond).accrued_per_unit(timezone.now().date())
    assert D(row["market_value"]) == (D(995_000) + accrued).quantize(D("0.01"))
    [exposure] = client.get("/api/exposure/?by=security").json()["results"]
    assert D(exposure["long_value"]) == (D(995_000) + accrued).quantize(D("0.01"))
