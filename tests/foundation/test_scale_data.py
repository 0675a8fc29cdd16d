"""The scale benchmark's history (bench/scale_bench.py), generated set-wise at a small size:
the audit chain it extends still verifies, every order belongs to a PM managing its account,
and the blotter shows the working set, not the history."""

from datetime import UTC, datetime

import pytest

from audit.selectors import audit_chain_verify
from orders.blotter_selectors import blotter_rows
from orders.models import Block, Order, OrderEvent

pytestmark = pytest.mark.django_db


def test_generated_history_verifies_and_keeps_to_its_pms(monkeypatch):
    from bench import scale_bench

    monkeypatch.setattr(scale_bench, "HISTORY", 600)
    monkeypatch.setattr(scale_bench, "WORKING", 45)
    firm = scale_bench._firm()
    scale_bench._positions(firm)
    data = scale_bench._history(firm)

    assert Order.objects.count() == 645
    assert OrderEvent.objects.count() == 3 * 645
    assert data["audit_rows_generated"] == 3 * 645
    checked, broken = audit_chain_verify()
    assert broken is None
    assert checked == data["audit_rows"]
    # A PM's orders are in the accounts they manage, so "own accounts only" holds for the data.
    strays = [
        o.pk
        for o in Order.objects.prefetch_related("account__managers")
        if o.pm_id not in {m.pk for m in o.account.managers.all()}
    ]
    assert strays == []
    # Each working block holds one security and side, and its quantity is its orders'.
    for block in Block.objects.prefetch_related("orders"):
        orders = list(block.orders.all())
        assert {(o.security_id, o.side) for o in orders} == {(block.security_id, block.side)}
        assert sum(o.quantity for o in orders) == block.quantity
    rows = blotter_rows(user=firm["trader"], scope="blotter", as_of=datetime.now(UTC))
    assert len(rows) == 45
    assert {r["status"] for r in rows} == {"WORKING"}
