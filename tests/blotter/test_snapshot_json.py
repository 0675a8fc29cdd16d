"""The snapshot's JSON, written by Postgres, is the rows the publisher's _row makes (the page
applies both to the same grid), in both forms, for every kind of value a row holds."""

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.utils import timezone

from fixgateway.models import FixOrder
from orders.block_services import block_create
from orders.blotter_selectors import ROW_FIELDS, blotter_rows, blotter_snapshot_json
from orders.lifecycle import OrderStatus
from orders.models import Order

from .helpers import staged_order

pytestmark = pytest.mark.django_db


def _orders(refdata, sim_broker):
    staged_order(
        refdata.acct1, refdata.aapl, quantity="100.5", order_type="LIMIT", limit_price="190.1250"
    )
    whole = staged_order(refdata.acct2, refdata.msft, side="SELL", quantity="7")
    # A received time on a whole second: isoformat() leaves the microseconds out.
    Order.objects.filter(pk=whole.pk).update(received_at=datetime(2026, 12, 3, 9, 30, tzinfo=UTC))
    part = staged_order(
        refdata.acct1, refdata.xom, quantity="400", status=OrderStatus.PARTIALLY_FILLED
    )
    Order.objects.filter(pk=part.pk).update(
        cum_qty=Decimal("100"), avg_price=Decimal("101.12345678"), compliance_status="PASS"
    )
    done = staged_order(refdata.acct2, refdata.aapl, quantity="50", status=OrderStatus.CANCELLED)
    Order.objects.filter(pk=done.pk).update(leaves_qty=Decimal("50"))
    blocked = staged_order(refdata.acct1, refdata.msft, quantity="3")
    block = block_create(order_ids=[blocked.pk], actor=refdata.trader, as_of=timezone.now())
    FixOrder.objects.create(
        block=block,
        broker=sim_broker,
        cl_ord_id="C-1",
        outbox_state="held",
        unconfirmed_since=datetime(2026, 12, 3, 10, 0, 0, 5, tzinfo=UTC),
        created_at=timezone.now(),
    )


@pytest.mark.parametrize(("user", "scope"), [("trader", "blotter"), ("pm1", "mine")])
def test_the_snapshot_json_is_the_publishers_rows(refdata, sim_broker, user, scope):
    _orders(refdata, sim_broker)
    who = getattr(refdata, user)
    now = timezone.now()
    expected = blotter_rows(user=who, scope=scope, as_of=now)
    assert len(expected) == (5 if scope == "blotter" else 3)
    assert json.loads(blotter_snapshot_json(user=who, scope=scope, as_of=now)) == expected
    columns = json.loads(blotter_snapshot_json(user=who, scope=scope, as_of=now, form="columns"))
    assert [dict(zip(ROW_FIELDS, row, strict=True)) for row in columns] == expected


def test_the_snapshot_api_in_both_forms(client, refdata, sim_broker, make_user):
    _orders(refdata, sim_broker)
    client.force_login(refdata.trader)
    objects = client.get("/api/blotter/snapshot/")
    assert objects.status_code == 200 and objects["Content-Type"] == "application/json"
    columns = client.get("/api/blotter/snapshot/?form=columns").json()
    assert columns["columns"] == list(ROW_FIELDS)
    rows = [dict(zip(columns["columns"], row, strict=True)) for row in columns["rows"]]
    assert rows == objects.json()["rows"] and isinstance(columns["seq"], int)
    bad = client.get("/api/blotter/snapshot/?form=xml")
    # A 400 naming the parameter (oms.api.query_or_400).
    assert bad.status_code == 400 and "form" in bad.json()["error"]["fields"]
    # A user with no role sees no account: an empty query, not an error.
    client.force_login(make_user("nobody"))
    empty = client.get("/api/blotter/snapshot/?scope=mine&form=columns")
    assert empty.status_code == 200 and empty.json()["rows"] == []
