"""The PM's pages: who may open them, and My orders shows only the PM's orders, filtered."""

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
    ids = {o.pk for o in page.context["page"]}
    assert ids == {mine.pk, other.pk}
    html = page.content.decode()
    assert 'id="my-orders"' in html and f'data-order-id="{mine.pk}"' in html
    assert f'data-order-id="{theirs.pk}"' not in html
    filtered = client_for(refdata.pm1).get("/orders/mine/?status=STAGED&symbol=AAPL")
    assert {o.pk for o in filtered.context["page"]} == {mine.pk}


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
