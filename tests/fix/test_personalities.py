"""The OMS against the broker personalities, over real sockets: the gateway subprocess and the
simulator (fixgateway.simulator.PERSONALITIES) on 127.0.0.1."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from tests.fix.conftest import routed_block, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def _block(pk):
    from orders.models import Block

    return Block.objects.get(pk=pk)


def _statuses(block_pk):
    from orders.models import Order

    return [o.status for o in Order.objects.filter(block_id=block_pk).order_by("pk")]


def _cl(block, n=1):
    return f"OMS-B{block.pk}-{n}"


# -- the outbox obeys the trader ----------------------------------------------------------


def test_an_old_queued_order_is_held_until_the_trader_releases_it(world, desk, client):
    from django.utils import timezone

    from fixgateway.models import OutboxMessage
    from oms.models import OpsException

    broker = world.make(sim=False)
    old = routed_block(desk, broker, "100", as_of=timezone.now() - timedelta(seconds=120))
    fresh = routed_block(desk, broker, "20")
    world.sim_start()
    world.wait_logon()
    wait_until(lambda: _block(fresh.pk).status == "FILLED", what="the fresh order filled")
    wait_until(
        lambda: OutboxMessage.objects.filter(cl_ord_id=_cl(old), status="HELD").exists(),
        what="the old order held",
    )
    assert _cl(old) not in world.sim("state")["received"]
    assert _block(old.pk).status == "ROUTED"
    assert OpsException.objects.filter(kind="held_order", block_id=old.pk).exists()
    client.force_login(desk.trader)
    held = client.get("/api/held-orders/").json()["held"]
    assert [h["block_id"] for h in held] == [old.pk]
    response = client.post(
        f"/api/held-orders/{old.pk}/release/",
        {"note": "still wanted"},
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    wait_until(lambda: _block(old.pk).status == "FILLED", what="the released order filled")
    assert world.sim("state")["received"][_cl(old)] == 1
    assert _statuses(old.pk) == ["FILLED"]


# -- personalities ------------------------------------------------------------------------


def test_a_broker_that_never_acknowledges_fills_straight_away(world, desk):
    from fixgateway.models import Execution

    broker = world.make(personalities=("no_ack",))
    block = routed_block(desk, broker, "300", "100")
    wait_until(lambda: _block(block.pk).status == "FILLED", what="filled without an ack")
    assert _statuses(block.pk) == ["FILLED", "FILLED"]
    assert set(Execution.objects.values_list("exec_type", flat=True)) == {"F"}


def test_a_broker_without_trade_date_books_on_the_day_received(world, desk):
    from django.utils import timezone

    from fixgateway.models import Execution

    broker = world.make(personalities=("no_trade_date",))
    block = routed_block(desk, broker, "100")
    wait_until(lambda: _block(block.pk).status == "FILLED", what="filled")
    assert list(Execution.objects.filter(exec_type="F").values_list("trade_date", flat=True)) == [
        None
    ]
    assert _block(block.pk).cum_qty == Decimal(100)
    assert timezone.now().date()  # booked on the day received (allocation's rule)


def test_a_broker_that_refuses_replaces_puts_the_block_back_and_says_why(world, desk):
    from django.utils import timezone

    from orders.block_services import block_replace

    broker = world.make(personalities=("no_replace",))
    block = routed_block(desk, broker, "300", order_type="LIMIT", limit_price="150.00")
    wait_until(lambda: _block(block.pk).status == "WORKING", what="ack")
    block_replace(
        block_id=block.pk, limit_price=Decimal("151"), actor=desk.trader, as_of=timezone.now()
    )
    wait_until(lambda: _block(block.pk).fix_order.last_reject, what="the replace refused")
    b = _block(block.pk)
    assert (b.status, b.limit_price) == ("WORKING", Decimal(150))
    assert _statuses(block.pk) == ["WORKING"]
    reject = b.fix_order.last_reject
    assert reject["message"] == "OrderCancelReplaceRequest"
    assert "Unsupported message type" in reject["text"]


def test_a_broker_without_status_requests_leaves_orders_alone_and_says_so(world, desk):
    from oms.models import OpsException

    broker = world.make(personalities=("no_status_requests",))
    block = routed_block(desk, broker, "300", order_type="LIMIT", limit_price="150.00")
    wait_until(lambda: _block(block.pk).status == "WORKING", what="ack")
    # A restart of the gateway asks the status of every working order at logon.
    world.gateway.stop_all()
    world.gateway.start()
    world.wait_logon()
    wait_until(
        lambda: OpsException.objects.filter(kind="status_request_refused").exists(),
        what="the refusal noticed",
    )
    assert world.sim("state")["status_refused"] >= 1
    assert _block(block.pk).status == "WORKING"
    assert _statuses(block.pk) == ["WORKING"]
    assert not OpsException.objects.filter(kind="unmatched_reject").exists()


def test_a_broker_that_restarts_with_its_numbering_reset_and_an_empty_book(world, desk):
    from oms.models import OpsException

    broker = world.make(extra_config={"session": {"ResetOnLogon": "Y"}})
    resting = routed_block(desk, broker, "100", order_type="LIMIT", limit_price="150.00")
    wait_until(lambda: _block(resting.pk).status == "WORKING", what="ack")
    world.sim.stop()
    world.sim_start(personalities=("reset_on_restart",), store="sim-store-2")
    world.wait_logon()
    # The broker no longer knows the order: its answer to the status request says so.
    wait_until(lambda: _block(resting.pk).status == "REJECTED", what="reconciled on logon")
    assert "reconciled on logon" in _block(resting.pk).fix_order.last_reject["text"]
    fresh = routed_block(desk, broker, "10")
    wait_until(lambda: _block(fresh.pk).status == "FILLED", what="trading again after the reset")
    assert not OpsException.objects.filter(kind="unmatched_reject").exists()


def test_a_broker_that_restarts_its_numbering_unannounced_is_flagged_until_agreed(world, desk):
    from fixgateway.models import Broker
    from oms.models import OpsException

    broker = world.make()
    world.sim.stop()
    world.sim_start(personalities=("reset_on_restart",), store="sim-store-2")
    wait_until(
        lambda: OpsException.objects.filter(
            kind="session_sequence", resolved_at__isnull=True
        ).exists(),
        what="the refused numbering flagged",
    )
    exception = OpsException.objects.get(kind="session_sequence")
    assert "MsgSeqNum too low" in exception.summary and exception.broker_id == broker.pk
    # Operations agree a reset with the broker: ResetOnLogon, and the gateway restarted.
    Broker.objects.filter(pk=broker.pk).update(extra_config={"session": {"ResetOnLogon": "Y"}})
    world.gateway.stop_all()
    world.gateway.start()
    world.wait_logon()
    wait_until(
        lambda: OpsException.objects.get(pk=exception.pk).resolved_at is not None,
        what="resolved at logon",
    )
    block = routed_block(desk, broker, "10")
    wait_until(lambda: _block(block.pk).status == "FILLED", what="trading again")


# -- tags by version and broker -------------------------------------------------------------


def test_a_vwap_to_a_fix42_broker_is_refused_up_front(world, desk, client):
    from django.utils import timezone

    from fixgateway.models import OutboxMessage
    from orders.block_services import block_create
    from tests.blotter.helpers import staged_order

    broker = world.make(fix_version="FIX.4.2", personalities=("fix42_no_algo_tags",))
    order = staged_order(desk.acct1, desk.aapl)
    block = block_create(order_ids=[order.pk], actor=desk.trader, as_of=timezone.now())
    client.force_login(desk.trader)
    response = client.post(
        f"/api/blocks/{block.pk}/route/",
        {
            "broker_id": broker.pk,
            "order_type": "MARKET",
            "strategy": "VWAP",
            "strategy_params": {"start_time": "09:30", "end_time": "09:31"},
        },
        content_type="application/json",
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "strategy_not_supported"
    assert not OutboxMessage.objects.exists()
    assert _block(block.pk).status == "OPEN"
    assert world.sim("state")["received"] == {}


def test_a_fix42_broker_with_a_tag_map_gets_the_algo_in_its_own_tags(world, desk):
    from fixgateway.models import Quarantine

    broker = world.make(
        fix_version="FIX.4.2",
        personalities=("fix42_no_algo_tags",),
        extra_config={
            "strategy_tag": 6000,
            "strategy_tags": {"start_time": 6001, "end_time": 6002},
        },
    )
    world.sim(
        "config",
        fill_mode="slices",
        slices=3,
        time_scale=0.02,
        strategy_tag=6000,
        param_tags={"start_time": 6001, "end_time": 6002},
    )
    block = routed_block(
        desk,
        broker,
        "300",
        strategy="VWAP",
        strategy_params={"start_time": "09:30", "end_time": "09:31"},
    )
    wait_until(lambda: _block(block.pk).status == "FILLED", timeout=30, what="VWAP filled")
    (sent,) = world.sim("state")["orders"]
    assert sent["tags"] == {"6000": "1", "6001": "09:30", "6002": "09:31"}
    assert sent["strategy"] == "1" and sent["fills"] == 3
    assert not Quarantine.objects.exists()


def test_a_session_reject_naming_847_reaches_the_trader_with_its_name(world, desk, client):
    from orders.models import OrderEvent

    broker = world.make(
        fix_version="FIX.4.2",
        personalities=("fix42_no_algo_tags",),
        # Misconfigured: claims the broker takes 847 over 4.2; its engine refuses it.
        extra_config={"strategy_tag": 847, "strategy_tags": {"start_time": 6001}},
    )
    block = routed_block(
        desk, broker, "100", "50", strategy="VWAP", strategy_params={"start_time": "09:30"}
    )
    wait_until(lambda: _block(block.pk).status == "REJECTED", what="rejected by the engine")
    assert _statuses(block.pk) == ["REJECTED", "REJECTED"]
    reject = _block(block.pk).fix_order.last_reject
    assert reject["tag"] == "847 (TargetStrategy)"
    assert reject["source"] == "Session reject" and "Invalid tag number" in reject["text"]
    client.force_login(desk.trader)
    shown = client.get(f"/api/blocks/{block.pk}/").json()
    assert "847 (TargetStrategy)" in shown["last_reject"]["text"]
    texts = OrderEvent.objects.filter(order__block_id=block.pk, kind="rejected").values_list(
        "details", flat=True
    )
    assert all("847 (TargetStrategy)" in d["text"] for d in texts)
    assert world.sim("state")["orders"] == []  # the engine refused it before the broker
