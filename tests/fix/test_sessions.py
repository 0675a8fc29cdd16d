"""FIX sessions over real sockets (the gateway subprocess and the simulator's personalities):
liveness within seconds of the owner dying, learning whether a broker answers status
requests, orders a reset broker cannot confirm, and counterparty sequence resets."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from tests.fix.conftest import routed_block, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def _status(broker) -> dict:
    from fixgateway.selectors import session_statuses

    return session_statuses(broker_id=broker.pk)[0]


def _block(pk):
    from orders.models import Block

    return Block.objects.select_related("fix_order").get(pk=pk)


def _statuses(block_pk):
    from orders.models import Order

    return [o.status for o in Order.objects.filter(block_id=block_pk).order_by("pk")]


def _post(client, url, body=None):
    return client.post(url, body or {}, content_type="application/json")


# -- liveness -------------------------------------------------------------------------------


def test_a_killed_gateway_shows_the_session_down_within_five_seconds(world, client):
    broker = world.make()
    wait_until(lambda: _status(broker)["status"] == "up", what="session up")
    health = client.get("/healthz").json()["fix_sessions"]
    assert health["ok"] and health["status"] == {broker.code: "up"}

    (process,) = world.gateway.procs
    world.gateway.kill9(process)
    wait_until(
        lambda: _status(broker)["status"] == "down", timeout=5, interval=0.1, what="shown down"
    )
    status = _status(broker)
    assert not status["logged_on"] and not status["owner_alive"]
    assert "stopped" in status["reason"]
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["fix_sessions"]["down"] == [broker.code]


# -- status requests, learned per broker ----------------------------------------------------


def test_a_broker_that_answers_status_requests_is_remembered(world, desk):
    from fixgateway.models import Broker

    broker = world.make()
    block = routed_block(desk, broker, "100", order_type="LIMIT", limit_price="150.00")
    wait_until(lambda: _block(block.pk).status == "WORKING", what="ack")
    world.gateway.stop_all()
    world.gateway.start()
    wait_until(
        lambda: Broker.objects.get(pk=broker.pk).status_requests == "answered",
        what="the status report noticed",
    )
    assert _block(block.pk).fix_order.unconfirmed_since is None


def test_a_broker_that_refuses_status_requests_is_asked_once(world, desk, client):
    from fixgateway.models import Broker
    from oms.models import OpsException

    broker = world.make(personalities=("no_status_requests",))
    block = routed_block(desk, broker, "300", order_type="LIMIT", limit_price="150.00")
    wait_until(lambda: _block(block.pk).status == "WORKING", what="ack")
    world.gateway.stop_all()
    world.gateway.start()
    wait_until(
        lambda: Broker.objects.get(pk=broker.pk).status_requests == "refused",
        what="the refusal learned",
    )
    # The order asked about could not be confirmed: the trader sees it, once.
    wait_until(lambda: _block(block.pk).fix_order.unconfirmed_since, what="flagged")
    assert _block(block.pk).status == "WORKING"
    refused = world.sim("state")["status_refused"]
    assert refused == 1
    # The trader checked with the broker: the order stays, the flag goes.
    client.force_login(desk.trader)
    url = f"/api/unconfirmed-orders/{block.pk}/confirm/"
    assert _post(client, url).status_code == 400
    assert _post(client, url, {"note": "on the broker's screen"}).status_code == 200
    assert _block(block.pk).fix_order.unconfirmed_since is None
    assert OpsException.objects.get(kind="unconfirmed_at_broker").resolved_at is not None
    assert _post(client, url, {"note": "again"}).status_code == 409

    world.gateway.stop_all()
    world.gateway.start()
    world.wait_logon()
    # Status requests would go before this order on the wire: once it is filled, none came.
    fresh = routed_block(desk, broker, "10")
    wait_until(lambda: _block(fresh.pk).status == "FILLED", what="trading after the logon")
    assert world.sim("state")["status_refused"] == refused
    assert OpsException.objects.filter(kind="unconfirmed_at_broker").count() == 1
    assert not OpsException.objects.filter(kind="quarantined_report").exists()


# -- orders a reset broker cannot confirm -------------------------------------------------------


def test_orders_a_reset_broker_cannot_confirm_are_flagged_for_the_trader(world, desk, make_user):
    from django.test import Client

    from audit.models import AuditEvent
    from fixgateway.models import Broker
    from oms.models import OpsException

    broker = world.make(
        extra_config={"session": {"ResetOnLogon": "Y"}}, personalities=("no_status_requests",)
    )
    Broker.objects.filter(pk=broker.pk).update(status_requests="refused")  # learned before
    gone = routed_block(desk, broker, "100", order_type="LIMIT", limit_price="150.00")
    partly = routed_block(desk, broker, "300", order_type="LIMIT", limit_price="150.00")
    wait_until(lambda: _block(partly.pk).status == "WORKING", what="ack")
    world.sim("fill", cl_ord_id=f"OMS-B{partly.pk}-1", quantity="100")
    wait_until(lambda: _block(partly.pk).cum_qty == 100, what="partly filled")

    world.sim.stop()
    world.sim_start(personalities=("reset_on_restart", "no_status_requests"), store="sim-store-2")
    world.wait_logon()
    wait_until(
        lambda: (
            OpsException.objects.filter(
                kind="unconfirmed_at_broker", resolved_at__isnull=True
            ).count()
            == 2
        ),
        what="both blocks flagged",
    )
    assert world.sim("state")["status_refused"] == 0  # not asked: known to refuse
    for pk in (gone.pk, partly.pk):
        assert _block(pk).fix_order.unconfirmed_since is not None
        assert OpsException.objects.get(kind="unconfirmed_at_broker", block_id=pk)

    trader, compliance = Client(), Client()
    trader.force_login(desk.trader)
    compliance.force_login(make_user("unconfirmed-reader", "Compliance"))
    listed = compliance.get("/api/unconfirmed-orders/").json()["unconfirmed"]
    assert [(r["block_id"], r["leaves_qty"]) for r in listed] == [
        (gone.pk, "100"),
        (partly.pk, "200"),
    ]
    shown = trader.get(f"/api/blocks/{gone.pk}/").json()
    assert shown["unconfirmed_at_broker"] and "reset" in shown["unconfirmed_reason"]
    assert (
        _post(compliance, f"/api/unconfirmed-orders/{gone.pk}/cancel/", {"reason": "x"}).status_code
        == 403
    )

    # Cancel locally: nothing on the wire, the block and its order CANCELLED, audited.
    assert _post(trader, f"/api/unconfirmed-orders/{gone.pk}/cancel/").status_code == 400
    response = _post(
        trader, f"/api/unconfirmed-orders/{gone.pk}/cancel/", {"reason": "broker lost it"}
    )
    assert response.status_code == 200, response.content
    assert (_block(gone.pk).status, _statuses(gone.pk)) == ("CANCELLED", ["CANCELLED"])
    assert _block(gone.pk).fix_order.unconfirmed_since is None
    assert AuditEvent.objects.filter(action="fix.unconfirmed_cancel_locally").exists()
    again = _post(trader, f"/api/unconfirmed-orders/{gone.pk}/cancel/", {"reason": "again"})
    assert again.status_code == 409

    # Resend: a new ClOrdID for what is left; the fills before it stay on the block.
    response = _post(trader, f"/api/unconfirmed-orders/{partly.pk}/resend/", {"note": "phoned"})
    assert response.status_code == 200, response.content
    resent = f"OMS-B{partly.pk}-2"
    assert response.json()["cl_ord_id"] == resent and response.json()["quantity"] == "200"
    wait_until(lambda: resent in world.sim("state")["received"], what="the resend on the wire")
    (order,) = world.sim("state")["orders"]
    assert (order["cl_ord_id"], order["quantity"]) == (resent, "200")
    wait_until(lambda: _block(partly.pk).fix_order.broker_order_id, what="acknowledged")
    world.sim("fill", cl_ord_id=resent, quantity="200")
    wait_until(lambda: _block(partly.pk).status == "FILLED", what="filled after the resend")
    assert _block(partly.pk).cum_qty == Decimal(300)
    assert world.sim("state")["received"] == {resent: 1}
    assert not OpsException.objects.filter(
        kind="unconfirmed_at_broker", resolved_at__isnull=True
    ).exists()


# -- counterparty sequence resets --------------------------------------------------------------


def test_a_counterparty_sequence_reset_stops_logons_until_an_operator_resets(
    world, desk, make_user
):
    from django.test import Client

    from audit.models import AuditEvent
    from oms.models import OpsException

    broker = world.make()
    world.sim.stop()
    world.sim_start(personalities=("reset_on_restart",), store="sim-store-2")
    wait_until(
        lambda: _status(broker)["status"] == "sequence_reset_required",
        what="the reset recognised",
    )
    assert "MsgSeqNum too low" in _status(broker)["reason"]
    tried = world.sim("state")["logons_received"]
    # No storm: the gateway stops logging on (it would reconnect every second otherwise).
    time.sleep(3)
    assert world.sim("state")["logons_received"] <= tried + 1
    assert _status(broker)["status"] == "sequence_reset_required"

    trader, operations = Client(), Client()
    trader.force_login(desk.trader)
    operations.force_login(make_user("session-reader", "Operations"))
    url = f"/api/fix-sessions/{broker.pk}/reset-sequence/"
    listed = operations.get("/api/fix-sessions/").json()["sessions"]
    assert [s["status"] for s in listed] == ["sequence_reset_required"]
    assert _post(operations, url, {"reason": "agreed"}).status_code == 403
    assert _post(trader, url).status_code == 400
    assert _post(trader, url, {"reason": "x", "next_sender_seq_num": 0}).status_code == 400
    assert (
        _post(trader, "/api/fix-sessions/999999/reset-sequence/", {"reason": "x"}).status_code
        == 404
    )
    response = _post(trader, url, {"reason": "agreed with the broker's desk"})
    assert response.status_code == 202, response.content

    wait_until(lambda: _status(broker)["status"] == "up", what="logged on after the reset")
    assert AuditEvent.objects.filter(action="fix.session_sequence_reset").exists()
    assert OpsException.objects.get(kind="session_sequence").resolved_at is not None
    assert world.sim("state")["logons_received"] <= tried + 2  # the one after the reset
    block = routed_block(desk, broker, "10")
    wait_until(lambda: _block(block.pk).status == "FILLED", what="trading again")
