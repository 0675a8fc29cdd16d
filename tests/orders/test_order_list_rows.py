"""The order list answers from rows (orders.serializers.order_rows), not model instances: the
same JSON as OrderSerializer gives for the same orders, field by field, for orders of every
shape (market and limit, stop, basket and block, filled with an average price, expiring)."""

from __future__ import annotations

import json
from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from orders.models import Basket, Block, Order
from orders.serializers import OrderSerializer

pytestmark = pytest.mark.django_db


def test_the_list_gives_what_the_serializer_gives_for_every_shape_of_order(refdata):
    now = timezone.now()
    basket = Basket.objects.create(created_by=refdata.pm1, name="model", created_at=now)
    block = Block.objects.create(
        security=refdata.aapl,
        side="BUY",
        quantity=Decimal("300"),
        order_type="LIMIT",
        limit_price=Decimal("190.125"),
        created_by=refdata.trader,
        created_at=now,
    )
    shapes = [
        {"order_type": "MARKET"},
        {"order_type": "LIMIT", "limit_price": Decimal("189.5"), "basket": basket},
        {"order_type": "STOP_LIMIT", "limit_price": Decimal("10"), "stop_price": Decimal("9.75")},
        {
            "order_type": "LIMIT",
            "limit_price": Decimal("190.125"),
            "block": block,
            "status": "PARTIALLY_FILLED",
            "cum_qty": Decimal("40"),
            "avg_price": Decimal("190.12345678"),
            "time_in_force": "GTD",
            "expire_date": date(2026, 12, 31),
            "instructions": "work it, ünïcode",
            "reference_price_at_entry": Decimal("190"),
            "estimated_notional": Decimal("19012.50"),
        },
    ]
    for n, shape in enumerate(shapes):
        Order.objects.create(
            account=refdata.acct1 if n % 2 else refdata.acct2,
            security=refdata.aapl,
            side="SELL" if n == 2 else "BUY",
            quantity=Decimal("100.5") if n == 1 else Decimal("100"),
            pm=refdata.pm1 if n % 2 else refdata.pm2,
            received_at=now - timedelta(minutes=n),
            leaves_qty=Decimal("100"),
            **{"status": "STAGED", **shape},
        )
    client = APIClient()
    client.force_authenticate(refdata.trader)
    response = client.get("/api/orders/")
    assert response.status_code == 200
    listed = response.json()["results"]
    expected = OrderSerializer(
        Order.objects.select_related("account", "security", "pm").order_by("-received_at", "-id"),
        many=True,
    ).data
    # As JSON, as the client reads it: the same text for every field of every order.
    assert json.loads(json.dumps(listed)) == json.loads(json.dumps(expected, default=str))
    assert len(listed) == len(shapes)
    assert {o["block"] for o in listed} == {None, block.pk}
    assert {o["basket"] for o in listed} == {None, basket.pk}


def test_a_list_filtered_by_account_holds_that_accounts_orders_newest_first(refdata):
    now = timezone.now()
    for n in range(6):
        Order.objects.create(
            account=refdata.acct1 if n % 3 else refdata.acct2,
            security=refdata.aapl,
            side="BUY",
            quantity=Decimal("100"),
            pm=refdata.pm1 if n % 3 else refdata.pm2,
            received_at=now - timedelta(minutes=n),
            leaves_qty=Decimal("100"),
            status="STAGED",
        )
    client = APIClient()
    client.force_authenticate(refdata.trader)
    listed = client.get("/api/orders/?account=ACCT1").json()["results"]
    assert [o["account"] for o in listed] == ["ACCT1"] * 4
    received = [o["received_at"] for o in listed]
    assert received == sorted(received, reverse=True)
    assert client.get("/api/orders/?account=NOSUCH").json()["results"] == []
    # A PM names another PM's account: nothing, as for an account that does not exist.
    client.force_authenticate(refdata.pm1)
    assert client.get("/api/orders/?account=ACCT2").json()["results"] == []
