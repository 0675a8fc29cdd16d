"""More than one web process: a change made through one Daphne reaches a blotter connected to
another (the channel layer in Redis is shared), and each keeps its own bounded pool."""

from __future__ import annotations

import pytest
import requests
from rest_framework.authtoken.models import Token

from tests.conftest import _test_database_url, daphne_serving

from .helpers import session_cookie, staged_order, ws_connect, ws_json

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_a_block_made_through_one_daphne_reaches_a_blotter_on_another(refdata):
    orders = [staged_order(refdata.acct1, refdata.aapl), staged_order(refdata.acct2, refdata.aapl)]
    token = Token.objects.create(user=refdata.trader).key
    database_url = _test_database_url()
    with (
        daphne_serving(database_url, OMS_DB_POOL_SIZE="3") as web_a,
        daphne_serving(database_url, OMS_DB_POOL_SIZE="3") as web_b,
    ):
        with (
            ws_connect(web_b, "/ws/blotter/", cookie=session_cookie(refdata.trader)) as desk,
            ws_connect(web_b, "/ws/orders/mine/", cookie=session_cookie(refdata.pm1)) as pm1,
        ):
            assert ws_json(desk)["type"] == "subscribed"
            assert ws_json(pm1)["type"] == "subscribed"
            made = requests.post(
                f"{web_a}/api/blocks/",
                json={"order_ids": [o.pk for o in orders]},
                headers={"Authorization": f"Token {token}"},
                timeout=30,
            )
            assert made.status_code == 201, made.text
            rows = ws_json(desk, timeout=10)["rows"]
            assert sorted(r["id"] for r in rows) == sorted(o.pk for o in orders)
            assert {r["block_id"] for r in rows} == {made.json()["id"]}
            # pm1's feed on the other process carries pm1's order only.
            assert [r["id"] for r in ws_json(pm1, timeout=10)["rows"]] == [orders[0].pk]
