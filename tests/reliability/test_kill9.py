"""kill -9 of the FIX worker in the middle of 2,000 fills: a hot standby takes over within
10 s, every fill is applied exactly once and no order is sent twice."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from tests.fix.conftest import routed_block, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def test_kill_9_mid_stream_applies_every_fill_once_and_sends_nothing_twice(
    desk, broker, sim, gateway
):
    from fixgateway.models import Execution, SessionState
    from orders.models import Block, Order

    owner = gateway.procs[0]
    standby = gateway.start()
    time.sleep(1)  # the standby is up and polling the lock
    # 2,000 fills: 1,000 slices of one share for each block.
    sim("config", fill_mode="slices", slices=1000, interval=0.002)
    blocks = [
        routed_block(desk, broker, "600", "400"),
        routed_block(desk, broker, "1000", security=desk.msft),
    ]
    wait_until(
        lambda: Execution.objects.filter(exec_type="F").count() > 300, timeout=60, what="fills"
    )
    gateway.kill9(owner)
    killed_at = time.monotonic()
    wait_until(
        lambda: SessionState.objects.filter(logged_on=True, owner__endswith=f":{standby.pid}"),
        timeout=15,
        what="standby takeover",
    )
    takeover = time.monotonic() - killed_at
    assert takeover < 10
    restarted = gateway.start()  # the killed worker comes back, as the new standby
    assert restarted.poll() is None

    expected = {b.pk: b.quantity for b in blocks}

    def all_filled():
        return Block.objects.filter(pk__in=expected, status="FILLED").count() == len(expected)

    wait_until(all_filled, timeout=240, interval=0.5, what="every block filled")
    state = sim("state")
    by_first = {o["first_cl_ord_id"]: o for o in state["orders"]}
    total_fills = 0
    for block in Block.objects.filter(pk__in=expected):
        sim_order = by_first[f"OMS-B{block.pk}-1"]
        assert Decimal(sim_order["cum"]) == block.cum_qty == expected[block.pk]
        applied = Execution.objects.filter(fix_order__block=block, exec_type="F")
        assert applied.count() == sim_order["fills"]
        total_fills += sim_order["fills"]
        filled = sum(o.cum_qty for o in Order.objects.filter(block=block))
        assert filled == block.cum_qty
    assert total_fills >= 2000
    assert all(count == 1 for count in state["received"].values())
    assert len(state["received"]) == len(blocks)
