"""The PM's pages: who may open them, and My orders shows only the PM's orders, filtered."""

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from tests import factories

pytestmark = pytest.mark.django_db


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.parametrize("url", ["/orders/ticket/", "/orders/mine/", "/orders/baskets/"])
def test_pages_are_for_pms_and_admin(refdata, url):
    assert client_for(refdata.pm1).get(url).status_code == 200
    assert client_for(refdata.admin).get(url).status_code == 200
    assert client_for(refdata.trader).get(url).status_code == 403
    assert Client().get(url).status_code == 302  # to the login page


def test_ticket_offers_only_the_pms_accounts(refdata):
    html = client_for(refdata.pm1).get("/orders/ticket/").content.decode()
    assert 'value="ACCT1"' in html and 'value="ACCT2"' not in html


def test_my_orders_lists_own_orders_with_filters(refdata):
    mine = factories.order(refdata.acct1, refdata.aapl, refdata.pm1, status="STAGED")
    other = factories.order(refdata.acct1, refdata.msft, refdata.pm1, status="CANCELLED")
    theirs = factories.order(refdata.acct2, refdata.aapl, refdata.pm2)
    page = client_for(refdata.pm1).get("/orders/mine/")
    ids = {o["id"] for o in page.context["page"]}
    assert ids == {mine.pk, other.pk}
    html = page.content.decode()
    assert 'id="my-orders"' in html and f'data-order-id="{mine.pk}"' in html
    assert f'data-order-id="{theirs.pk}"' not in html
    filtered = client_for(refdata.pm1).get("/orders/mine/?status=STAGED&symbol=AAPL")
    assert {o["id"] for o in filtered.context["page"]} == {mine.pk}


def test_my_orders_shows_each_figure_as_written_and_times_in_utc(refdata):
    received = datetime(2026, 3, 2, 14, 5, 9, 654321, tzinfo=UTC)
    order = factories.order(
        refdata.acct1,
        refdata.aapl,
        refdata.pm1,
        side="SELL_SHORT",
        quantity="1200.000000",
        order_type="LIMIT",
        limit_price="187.2500",
        status="PARTIALLY_FILLED",
        time_in_force="GTD",
        expire_date=date(2026, 3, 20),
        cum_qty=Decimal("200"),
        avg_price=Decimal("187.123400"),
        received_at=received,
    )
    order.leaves_qty = Decimal("1000.00")
    order.save(update_fields=["leaves_qty"])
    html = client_for(refdata.pm1).get("/orders/mine/").content.decode()
    row = html[html.index(f'data-order-id="{order.pk}"') :]
    row = row[: row.index("</tr>")]
    cells = [c.split(">", 1)[1] for c in row.split("<td")[2:]]
    cells = [c[: c.index("</td>")] for c in cells]
    assert cells == [
        "2026-03-02 14:05:09",
        "ACCT1",
        "AAPL",
        "Sell short",
        "1200",
        "Limit",
        "187.25",
        "GTD 2026-03-20",
        "PARTIALLY_FILLED",
        "200",
        "1000",
        "187.1234",
        order.compliance_status,
    ]
    ticks = {Decimal(t.split('"')[0]) for t in row.split('data-tick="')[1:]}
    assert ticks == {Decimal(refdata.aapl.tick_size)}
    assert f'data-version="{order.version}"' in html


def test_my_orders_reads_a_page_in_the_same_queries_for_one_order_or_many(
    refdata, django_assert_max_num_queries
):
    # The page reads only the columns it shows (orders.views.MY_ORDERS_COLUMNS): a field it
    # shows but did not read would cost a query per row here.
    client = client_for(refdata.pm1)
    factories.order(refdata.acct1, refdata.aapl, refdata.pm1, status="STAGED")
    with CaptureQueriesContext(connection) as one:
        assert client.get("/orders/mine/").status_code == 200
    for n in range(30):
        factories.order(refdata.acct1, refdata.msft if n % 2 else refdata.aapl, refdata.pm1)
    with django_assert_max_num_queries(len(one)):
        html = client.get("/orders/mine/").content.decode()
    assert html.count("data-order-id=") == 31
    assert "MSFT" in html and "AAPL" in html
