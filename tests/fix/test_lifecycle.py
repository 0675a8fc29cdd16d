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


def _executions(block_pk, **filters):
    from fixgateway.models import Execution

    return Execution.objects.filter(fix_order__block_id=block_pk, **filters)


def _cl(block, n=1):
    return f"OMS-B{block.pk}-{n}"


def test_it_books_partial_fills_over_a_vwap_window(desk, broker, sim, gateway):
    sim("config", fill_mode="slices", slices=5, time_scale=0.02)
    block = routed_block(
        desk,
        broker,
        "1000",
        strategy="VWAP",
        strategy_params={"start_time": "09:30", "end_time": "09:31"},
    )
    wait_until(lambda: _block(block.pk).status == "PARTIALLY_FILLED", what="a partial fill")
    wait_until(lambda: _block(block.pk).status == "FILLED", what="block filled")
    qtys = [e.last_qty for e in _executions(block.pk, exec_type="F").order_by("id")]
    assert len(qtys) == 5 and sum(qtys) == Decimal("1000")
    # The U-shaped VWAP curve: the first and last slices are the largest.
    assert qtys[0] > qtys[2] and qtys[-1] > qtys[2]
    assert _orders(block.pk)[0].cum_qty == Decimal("1000")


def test_it_cancels_a_resting_block(desk, broker, sim, gateway):
    from django.utils import timezone

    from orders.block_services import block_cancel

    block = routed_block(desk, broker, "200", "100", order_type="LIMIT", limit_price="150.00")
    wait_until(lambda: _block(block.pk).status == "WORKING", what="ack")
    assert [o.status for o in _orders(block.pk)] == ["WORKING", "WORKING"]
    block_cancel(block_id=block.pk, actor=desk.trader, as_of=timezone.now())
    wait_until(lambda: _block(block.pk).status == "CANCELLED", what="cancelled")
    assert [(o.status, o.leaves_qty) for o in _orders(block.pk)] == [
        ("CANCELLED", 0),
        ("CANCELLED", 0),
    ]
    assert sim("state")["orders"][0]["status"] == "4"


def test_it_replaces_the_limit_and_the_new_price_fills(desk, broker, sim, gateway):
    from django.utils import timezone

    from orders.block_services import block_replace

    block = routed_block(desk, broker, "300", order_type="LIMIT", limit_price="150.00")
    wait_until(lambda: _block(block.pk).status == "WORKING", what="ack")
    block_replace(
        block_id=block.pk,
        quantity=Decimal("250"),
        limit_price=Decimal("195.00"),
        actor=desk.trader,
        as_of=timezone.now(),
    )
    wait_until(lambda: _block(block.pk).status == "FILLED", what="filled after replace")
    b = _block(block.pk)
    assert (b.quantity, b.limit_price, b.cum_qty) == (Decimal(250), Decimal(195), Decimal(250))
    assert b.fix_order.cl_ord_id == _cl(block, 2)


def test_a_refused_cancel_puts_the_block_back(desk, broker, sim, gateway):
    from django.utils import timezone

    from orders.block_services import block_cancel

    sim("config", refuse_cancels=True)
    block = routed_block(desk, broker, "100", order_type="LIMIT", limit_price="150.00")
    wait_until(lambda: _block(block.pk).status == "WORKING", what="ack")
    block_cancel(block_id=block.pk, actor=desk.trader, as_of=timezone.now())
    assert _block(block.pk).status == "PENDING_CANCEL"
    wait_until(lambda: _block(block.pk).status == "WORKING", what="cancel rejected")
    assert _orders(block.pk)[0].status == "WORKING"
    assert _block(block.pk).fix_order.pending_kind == ""


def test_a_rejected_order_is_rejected_with_its_orders(desk, broker, sim, gateway):
    sim("config", reject_rate=1.0)
    block = routed_block(desk, broker, "100", "50")
    wait_until(lambda: _block(block.pk).status == "REJECTED", what="reject")
    assert [o.status for o in _orders(block.pk)] == ["REJECTED", "REJECTED"]


def test_duplicates_and_possdup_change_nothing_and_a_conflicting_execid_is_quarantined(
    desk, broker, sim, gateway
):
    from fixgateway.models import Quarantine

    sim("config", fill_mode="none")
    block = routed_block(desk, broker, "300")
    wait_until(lambda: _block(block.pk).status == "WORKING", what="ack")
    sim("fill", cl_ord_id=_cl(block), quantity="100")
    wait_until(lambda: _block(block.pk).cum_qty == 100, what="first fill")
    sim("duplicate", cl_ord_id=_cl(block), poss_dup=True)
    sim("duplicate", cl_ord_id=_cl(block), poss_dup=False)
    sim("conflict", cl_ord_id=_cl(block))
    wait_until(lambda: Quarantine.objects.filter(reason="exec_id_conflict").exists(), what="q")
    sim("fill", cl_ord_id=_cl(block), quantity="50")  # the session is alive and in order
    wait_until(lambda: _block(block.pk).cum_qty == 150, what="second fill")
    assert _executions(block.pk, exec_type="F").count() == 2
    assert _orders(block.pk)[0].cum_qty == Decimal(150)


def test_busts_and_corrections_adjust_cum_average_and_positions_exactly(desk, broker, sim, gateway):
    from positions.models import Position

    sim("config", fill_mode="none")
    block = routed_block(desk, broker, "300", "100")
    wait_until(lambda: _block(block.pk).status == "WORKING", what="ack")
    first = sim("fill", cl_ord_id=_cl(block), quantity="100", price="190")["exec_id"]
    second = sim("fill", cl_ord_id=_cl(block), quantity="100", price="192")["exec_id"]
    wait_until(lambda: _block(block.pk).cum_qty == 200, what="fills")
    assert _block(block.pk).avg_price == Decimal("191")
    sim("bust", cl_ord_id=_cl(block), exec_id=first)
    wait_until(lambda: _block(block.pk).cum_qty == 100, what="bust")
    assert _block(block.pk).avg_price == Decimal("192")
    sim("correct", cl_ord_id=_cl(block), exec_id=second, quantity="80", price="189")
    wait_until(lambda: _block(block.pk).avg_price == Decimal("189"), what="correction")
    b = _block(block.pk)
    assert b.cum_qty == Decimal(80)
    assert sum(o.cum_qty for o in _orders(block.pk)) == Decimal(80)
    held = Position.objects.filter(security=desk.aapl).values_list("quantity", flat=True)
    assert sum(held) == Decimal(80)
    states = dict(_executions(block.pk).values_list("exec_id", "state"))
    assert states[first] == "BUSTED" and states[second] == "CORRECTED"


def test_an_unknown_clordid_gets_dont_know_and_is_quarantined(desk, broker, sim, gateway):
    from fixgateway.models import Quarantine

    block = routed_block(desk, broker, "10")
    wait_until(lambda: _block(block.pk).status == "FILLED", what="filled")
    sent = sim("unknown")["exec_id"]
    wait_until(lambda: sim("state")["dk"], what="DontKnowTrade at the broker")
    assert sim("state")["dk"][0]["exec_id"] == sent
    q = Quarantine.objects.get(reason="unknown_cl_ord_id")
    assert "NOT-OURS-1" in q.raw


def test_unsolicited_cancel_and_out_of_order_fills(desk, broker, sim, gateway):
    sim("config", fill_mode="none")
    block = routed_block(desk, broker, "10")
    wait_until(lambda: _block(block.pk).status == "WORKING", what="ack")
    sim("out_of_order", cl_ord_id=_cl(block))
    wait_until(lambda: _block(block.pk).cum_qty == 2, what="two fills")
    sim("unsolicited_cancel", cl_ord_id=_cl(block))
    wait_until(lambda: _block(block.pk).status == "CANCELLED", what="cancel")
    o = _orders(block.pk)[0]
    assert (o.status, o.cum_qty, o.leaves_qty) == ("CANCELLED", 2, 0)
