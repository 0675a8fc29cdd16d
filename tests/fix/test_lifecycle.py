"""Orders over real sockets: the gateway subprocess against the simulator."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.fix.conftest import routed_block, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def _block(pk):
    from orders.models import Block

    return Block.objects.get(pk=pk)


def _orders(block_pk):
    from orders.models import Order

    return list(Order.objects.filter(block_id=block_pk).order_by("pk"))


def test_it_routes_acknowledges_and_fills_a_block_across_its_orders(desk, broker, sim, gateway):
    block = routed_block(desk, broker, "300", "100")
    wait_until(lambda: _block(block.pk).status == "FILLED", what="block filled")
    b = _block(block.pk)
    assert b.cum_qty == Decimal("400")
    assert b.avg_price == Decimal("190.00")
    orders = _orders(block.pk)
    assert [o.status for o in orders] == ["FILLED", "FILLED"]
    assert [o.cum_qty for o in orders] == [Decimal("300"), Decimal("100")]
    state = sim("state")
    assert state["received"] == {f"OMS-B{block.pk}-1": 1}
