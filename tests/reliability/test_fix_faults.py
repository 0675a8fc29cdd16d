"""Faults from the counterparty, over real sockets to the simulator (through FaultProxy where
the wire itself misbehaves): replays, reordering, malformed and garbled messages, silence."""

from __future__ import annotations

import random
import time
from decimal import Decimal

import pytest

from tests.fix.conftest import routed_block, wait_until
from tests.reliability.conftest import block_state, scale

pytestmark = pytest.mark.django_db(transaction=True)


def _block(pk):
    from orders.models import Block

    return Block.objects.get(pk=pk)


def _cl(block, n=1):
    return f"OMS-B{block.pk}-{n}"


def _drained(sim):
    """Every message the simulator sent so far has been handled by the gateway: a report for
    an unknown ClOrdID is sent last and its quarantine row appears (one session, in order)."""
    from fixgateway.models import Quarantine

    before = Quarantine.objects.filter(reason="unknown_cl_ord_id").count()
    sim("unknown")
    wait_until(
        lambda: Quarantine.objects.filter(reason="unknown_cl_ord_id").count() > before,
        timeout=60,
        what="the gateway to drain the stream",
    )


def test_every_report_replayed_with_possdup_and_as_new_messages_changes_nothing(
    desk, broker, sim, gateway, figure
):
    from fixgateway.models import Execution

    sim("config", fill_mode="none")
    block = routed_block(desk, broker, "300", "100")
    wait_until(lambda: _block(block.pk).status == "WORKING", what="ack")
    rng = random.Random(3)
    fills = scale(12, 120)
    for _ in range(fills):
        sim("fill", cl_ord_id=_cl(block), quantity="3", price=f"{rng.randint(18000, 19999) / 100}")
    first = sim("fill", cl_ord_id=_cl(block), quantity="5", price="190")["exec_id"]
    sim("bust", cl_ord_id=_cl(block), exec_id=first)
    second = sim("fill", cl_ord_id=_cl(block), quantity="5", price="191")["exec_id"]
    sim("correct", cl_ord_id=_cl(block), exec_id=second, quantity="4", price="189.5")
    _drained(sim)
    before = block_state(block.pk)
    executions = Execution.objects.filter(fix_order__block=block).count()
    assert before["block"][1] == 3 * fills + 4

    replayed = sim("replay", cl_ord_id=_cl(block), poss_dup=True)["sent"]
    replayed += sim("replay", cl_ord_id=_cl(block), poss_dup=False)["sent"]
    _drained(sim)
    after = block_state(block.pk)
    applied = Execution.objects.filter(fix_order__block=block).count()
    figure(
        faults=replayed,
        checked=f"{replayed} reports replayed (PossDup and same ExecID), "
        f"cum {after['block'][1]} avg {after['block'][2]} unchanged",
        twice=applied - executions,
    )
    assert after == before
    assert applied == executions
    assert sim("state")["rejects"] == 0


def test_reports_shuffled_within_a_window_end_where_in_order_processing_ends(
    desk, broker, sim, gateway, figure
):
    from django.utils import timezone

    from allocation.services import allocation_finalise
    from orders.models import Block

    sim("config", fill_mode="none", prices={"AAPL": "190.00", "MSFT": "190.00"})
    in_order = routed_block(desk, broker, "300", "200", "100")
    shuffled = routed_block(desk, broker, "300", "200", "100", security=desk.msft)
    wait_until(
        lambda: {_block(in_order.pk).status, _block(shuffled.pk).status} == {"WORKING"},
        what="acks",
    )
    rng = random.Random(11)
    count, window = scale(40, 400), 8
    quantities = [Decimal(600 // count)] * count
    quantities[-1] += 600 - sum(quantities)
    fills = [[str(q), str(Decimal(rng.randint(18500, 19500)) / 100)] for q in quantities]
    order = list(range(count))
    permuted = []
    for start in range(0, count, window):
        chunk = order[start : start + window]
        rng.shuffle(chunk)
        permuted += chunk
    assert permuted != order
    sim("fills", cl_ord_id=_cl(in_order), fills=fills)
    sim("fills", cl_ord_id=_cl(shuffled), fills=fills, send_order=permuted)
    wait_until(
        lambda: (
            Block.objects.filter(pk__in=[in_order.pk, shuffled.pk], status="FILLED").count() == 2
        ),
        timeout=120,
        what="both blocks filled",
    )

    def comparable(pk):
        state = block_state(pk)
        return {
            "block": state["block"],
            "orders": state["orders"],
            # Account ids are the same in both blocks; only the security differs.
            "positions": state["positions"],
        }

    live = comparable(in_order.pk), comparable(shuffled.pk)
    assert live[0]["block"] == live[1]["block"]
    assert [o[1] for o in live[0]["orders"]] == [o[1] for o in live[1]["orders"]]
    now = timezone.now()
    for pk in (in_order.pk, shuffled.pk):
        allocation_finalise(block=Block.objects.get(pk=pk), as_of=now, actor=desk.trader)
    final = comparable(in_order.pk), comparable(shuffled.pk)
    figure(
        faults=sum(1 for i, j in zip(order, permuted, strict=True) if i != j),
        checked=f"{count} fills, window {window}: block, orders and positions equal "
        f"(avg {final[0]['block'][2]})",
    )
    assert final[0] == final[1]


def test_malformed_and_garbled_messages_leave_the_session_up_and_apply_nothing(
    desk, broker, sim, proxy, gateway, figure
):
    from fixgateway.models import SessionState

    sim("config", fill_mode="none")
    block = routed_block(desk, broker, "1000")
    wait_until(lambda: _block(block.pk).status == "WORKING", what="ack")
    sim("fill", cl_ord_id=_cl(block), quantity="10")
    wait_until(lambda: _block(block.pk).cum_qty == 10, what="first fill")
    before = block_state(block.pk)
    n = scale(200, 1000)
    started = time.monotonic()
    sim("malformed", cl_ord_id=_cl(block), count=n)
    proxy.inject(sim("garbled", cl_ord_id=_cl(block), count=n)["raw"])
    wait_until(lambda: proxy.injected >= n, timeout=60, what="garbled bytes delivered")
    wait_until(lambda: sim("state")["rejects"] >= n, timeout=120, what="session Rejects")
    _drained(sim)
    assert block_state(block.pk) == before
    rejects = sim("state")["rejects"]
    # Still the same session, in sequence: a real fill goes through.
    sim("fill", cl_ord_id=_cl(block), quantity="5")
    wait_until(lambda: _block(block.pk).cum_qty == 15, what="a fill after the abuse")
    state = SessionState.objects.get(broker=broker)
    assert state.logged_on
    assert len(sim("state")["sessions"]) == 1
    figure(
        faults=2 * n,
        checked=f"{n} malformed ({rejects} session Rejects), {n} garbled (ignored), "
        f"session up, nothing applied, {time.monotonic() - started:.1f} s",
    )
    assert rejects == n


@pytest.fixture
def broker(broker):
    """A short heartbeat: silence is noticed in seconds."""
    broker.heartbeat_seconds = 1
    broker.save(update_fields=["heartbeat_seconds"])
    return broker


def test_a_silent_counterparty_is_shown_down_within_two_heartbeats(
    desk, broker, sim, proxy, gateway, make_user, figure
):
    from django.test import Client

    from fixgateway.selectors import broker_sessions

    trader = make_user("silence-watcher", "Trader")
    client = Client()
    client.force_login(trader)

    def api_up() -> bool:
        rows = client.get("/api/blotter/sessions/").json()["sessions"]
        return next(r for r in rows if r["broker"] == broker.code)["logged_on"]

    wait_until(api_up, what="session up on the blotter")
    proxy.freeze()
    frozen_at = time.monotonic()
    wait_until(lambda: not api_up(), timeout=10, interval=0.1, what="blotter shows it down")
    noticed = time.monotonic() - frozen_at
    assert broker_sessions()[0]["logged_on"] is False
    proxy.thaw()
    wait_until(api_up, timeout=30, what="session back")
    back = time.monotonic() - frozen_at - noticed
    figure(
        faults=1,
        checked=f"silence shown on the blotter after {noticed:.1f} s (heartbeat 1 s), "
        f"back {back:.1f} s after the line came back",
    )
    assert noticed <= 2 * broker.heartbeat_seconds + 0.5
    assert back < 30
