"""Quantities and prices leave the blotter API as exact decimal strings, never JSON floats."""

import pytest

from .helpers import staged_order

pytestmark = pytest.mark.django_db


def test_block_api_returns_decimal_strings(client, refdata):
    first = staged_order(refdata.acct1, refdata.aapl, quantity="100.5", pm=refdata.pm1)
    second = staged_order(refdata.acct2, refdata.aapl, quantity="1000", pm=refdata.pm2)
    client.force_login(refdata.trader)
    response = client.post(
        "/api/blocks/", {"order_ids": [first.pk, second.pk]}, content_type="application/json"
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["quantity"] == "1100.5"
    assert body["cum_qty"] == "0"
    detail = client.get(f"/api/blocks/{body['id']}/").json()
    assert detail["quantity"] == "1100.5" and detail["avg_price"] is None
