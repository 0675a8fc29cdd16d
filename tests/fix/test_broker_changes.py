"""A broker's row changed in the admin takes effect without restarting the FIX worker: the
session starts again from the new address, and a broker added later gets its session."""

from __future__ import annotations

import pytest

from fixgateway.models import Broker, SessionState
from tests.fix.conftest import Sim, _free_port, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def logged_on(broker) -> bool:
    return SessionState.objects.filter(broker=broker, logged_on=True).exists()


def test_a_new_port_reconnects_the_running_session(world):
    broker = world.make()
    world.sim.stop()  # the broker moves: its old address answers no more
    wait_until(lambda: not logged_on(broker), timeout=30, what="the session sees the broker gone")
    Broker.objects.filter(pk=broker.pk).update(port=_free_port())
    broker.refresh_from_db()
    world.sim_start()  # the same broker (its store: the numbering goes on), at the new port
    wait_until(lambda: logged_on(broker), timeout=30, what="logon at the new port")


def test_a_broker_added_while_the_gateway_runs_gets_its_session(world, tmp_path):
    world.make()
    added = Broker.objects.create(
        code="SIMN",
        name="Added later",
        host="127.0.0.1",
        port=_free_port(),
        sender_comp_id="OMS",
        target_comp_id="SIMN",
        heartbeat_seconds=5,
    )
    sim = Sim(
        tmp_path,
        [{"port": added.port, "sender": "SIMN", "target": "OMS", "fix_version": added.fix_version}],
        store="sim-store-added",
    )
    try:
        wait_until(lambda: logged_on(added), timeout=30, what="the added broker's logon")
        # Deactivated, it is let go.
        Broker.objects.filter(pk=added.pk).update(active=False)
        wait_until(lambda: not logged_on(added), timeout=30, what="the session let go")
    finally:
        sim.stop()
