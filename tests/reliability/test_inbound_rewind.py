"""kill -9 of the FIX worker while execution reports sit received but uncommitted (QuickFIX has
counted them, the applier has not committed them): after the restart the session is wound back
to the database's inbound mark, the broker resends them flagged PossDup, and each is applied
exactly once."""

from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from tests.conftest import _test_database_url
from tests.fix.conftest import routed_block, wait_until
from tests.reliability.conftest import scale

pytestmark = pytest.mark.django_db(transaction=True)


def _expected_inbound(store: Path, broker) -> int:
    """The inbound MsgSeqNum the gateway's QuickFIX store expects next (what it has counted
    as received, plus one)."""
    path = store / f"{broker.fix_version}-OMS-{broker.target_comp_id}.seqnums"
    return int(path.read_text().split(":")[1])


def test_reports_received_but_not_committed_at_kill_9_are_resent_and_applied_once(
    desk, broker, sim, gateway, gateway_env, figure
):
    from fixgateway.models import Execution, SessionState
    from orders.models import Block

    started = time.monotonic()
    store = Path(gateway_env["OMS_FIX_STORE_DIR"])
    sim("config", fill_mode="none")
    block = routed_block(desk, broker, "100000")
    cl_ord_id = f"OMS-B{block.pk}-1"
    wait_until(lambda: Block.objects.get(pk=block.pk).status == "WORKING", what="ack")
    for _ in range(3):
        sim("fill", cl_ord_id=cl_ord_id, quantity="10")
    wait_until(lambda: Block.objects.get(pk=block.pk).cum_qty == 30, what="three fills")
    mark = SessionState.objects.get(broker=broker).inbound_applied_seq_num
    assert mark > 0

    # Hold the block's row: the applier takes the next reports off the queue but cannot commit
    # them, while QuickFIX goes on counting them as received.
    lost = scale(40, 400)
    holder = psycopg.connect(_test_database_url())
    try:
        holder.execute("SELECT id FROM orders_block WHERE id = %s FOR UPDATE", [block.pk])
        sim("fills", cl_ord_id=cl_ord_id, fills=[["10", "190.00"]] * lost)
        wait_until(
            lambda: _expected_inbound(store, broker) > mark + lost,
            timeout=30,
            what="every report received by the gateway",
        )
        (victim,) = gateway.procs
        gateway.kill9(victim)
    finally:
        holder.rollback()
        holder.close()
    received = _expected_inbound(store, broker) - 1
    assert Execution.objects.filter(fix_order__block=block, exec_type="F").count() == 3
    assert SessionState.objects.get(broker=broker).inbound_applied_seq_num == mark
    assert received >= mark + lost  # a real gap: received, counted, never committed

    gateway.start()
    total = 3 + lost
    wait_until(
        lambda: Block.objects.get(pk=block.pk).cum_qty == 10 * total,
        timeout=60,
        what="the lost reports resent and applied",
    )
    fills = Execution.objects.filter(fix_order__block=block, exec_type="F")
    resent = sum(1 for raw in fills.values_list("raw", flat=True) if "|43=Y|" in raw)
    by_sim = next(o for o in sim("state")["orders"] if o["first_cl_ord_id"] == cl_ord_id)
    applied = fills.count()
    figure(
        faults=1,
        checked=f"{lost} reports received but uncommitted at kill -9 (mark {mark}, store at "
        f"{received}), {resent} came again as PossDup resends",
        lost=max(0, by_sim["fills"] - applied),
        twice=max(0, applied - by_sim["fills"]),
        seconds=time.monotonic() - started,
    )
    assert applied == by_sim["fills"] == total
    assert len(set(fills.values_list("exec_id", flat=True))) == total
    assert resent == lost
    block.refresh_from_db()
    assert block.cum_qty == Decimal(by_sim["cum"]) == 10 * total
    state = SessionState.objects.get(broker=broker)
    assert state.inbound_applied_seq_num >= received
