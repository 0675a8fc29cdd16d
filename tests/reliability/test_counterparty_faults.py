"""Counterparties that are not our simulator's manners (issue 14), in the fault suite: a
counterparty that rejects within microseconds, a cancel of an order the session never sent,
and a reject numbered before a sequence reset. Each records its figure line: nothing lost,
nothing applied twice, no order stuck pending."""

from __future__ import annotations

import time

import pytest

from tests.fix.conftest import routed_block, wait_until
from tests.reliability.conftest import scale

pytestmark = pytest.mark.django_db(transaction=True)

PENDING = ("PENDING_NEW", "PENDING_REPLACE", "PENDING_CANCEL")


def _block(pk):
    from orders.models import Block

    return Block.objects.get(pk=pk)


def _statuses(block_pk) -> list[str]:
    from orders.models import Order

    return [o.status for o in Order.objects.filter(block_id=block_pk).order_by("pk")]


def _stuck(block_ids) -> int:
    from orders.models import Order

    return Order.objects.filter(block_id__in=block_ids, status__in=PENDING).count()


def test_orders_rejected_within_microseconds_all_end_rejected(world, desk, figure):
    from oms.models import OpsException
    from orders.models import Block

    n = scale(100, 500)
    started = time.monotonic()
    broker = world.make(personalities=("fast_reject",))
    ids = [routed_block(desk, broker, "10").pk for _ in range(n)]
    wait_until(
        lambda: Block.objects.filter(pk__in=ids, status="REJECTED").count() == n,
        timeout=120,
        what=f"{n} rejects applied",
    )
    assert world.sim("state")["fast_rejects"] == n
    stuck = _stuck(ids)
    figure(
        faults=n,
        checked=f"{n} market orders rejected as fast as the broker reads them, every one REJECTED",
        stuck=stuck,
        seconds=time.monotonic() - started,
    )
    assert stuck == 0
    assert {s for pk in ids for s in _statuses(pk)} == {"REJECTED"}
    assert not OpsException.objects.filter(kind="unmatched_reject").exists()


def test_an_order_routed_while_the_broker_is_down_and_cancelled_never_reaches_it(
    world, desk, client, figure
):
    from django.utils import timezone

    from orders.block_services import block_cancel, block_create
    from tests.blotter.helpers import staged_order

    broker = world.make(sim=False)
    order = staged_order(desk.acct1, desk.aapl)
    block = block_create(order_ids=[order.pk], actor=desk.trader, as_of=timezone.now())
    client.force_login(desk.trader)
    routed = client.post(
        f"/api/blocks/{block.pk}/route/",
        {"broker_id": broker.pk, "order_type": "MARKET"},
        content_type="application/json",
    ).json()
    assert (routed["status"], routed["queued"], routed["session_down"]) == (
        "ROUTED",
        True,
        True,
    )
    block_cancel(block_id=block.pk, actor=desk.trader, as_of=timezone.now())
    assert _block(block.pk).status == "CANCELLED"
    assert _statuses(block.pk) == ["CANCELLED"]
    # A second order, left alone, goes as soon as the broker is back: the line works.
    other = routed_block(desk, broker, "10")
    world.sim_start()
    world.wait_logon()
    wait_until(lambda: _block(other.pk).status == "FILLED", what="the other order filled")
    received = world.sim("state")["received"]
    figure(
        faults=1,
        checked="an order cancelled before its session came up: nothing on the wire, CANCELLED",
        twice=sum(max(0, count - 1) for count in received.values()),
        stuck=_stuck([block.pk, other.pk]),
    )
    assert received == {f"OMS-B{other.pk}-1": 1}


def test_a_filled_block_is_untouched_by_a_reject_numbered_before_a_sequence_reset(
    world, desk, figure
):
    """With ResetOnLogon, a 35=j naming a sequence number from before the reset once matched
    the order sent under that number in the old epoch: a FILLED block became CANCELLED."""
    from fixgateway.models import OutboxMessage
    from oms.models import OpsException

    broker = world.make(extra_config={"session": {"ResetOnLogon": "Y"}})
    filled = routed_block(desk, broker, "10")
    wait_until(lambda: _block(filled.pk).status == "FILLED", what="filled")
    sent_as = OutboxMessage.objects.get(fix_order__block_id=filled.pk, kind="NEW").sent_seq_num
    assert sent_as
    world.sim.stop()
    world.sim_start(personalities=("reset_on_restart",), store="sim-store-2")
    world.wait_logon()
    # The OMS's logon state may still be the old session's: wait for the new one's.
    wait_until(lambda: world.sim("state")["sessions"], timeout=30, what="the new session up")
    sent = world.sim("business_reject", ref_seq_num=sent_as, ref_msg_type="D", text="Unknown order")
    assert sent == {"sent": 1}
    wait_until(
        lambda: OpsException.objects.filter(kind="unmatched_reject").exists(),
        what="the reject kept for a person, matched to nothing",
    )
    block = _block(filled.pk)
    figure(
        faults=2,
        checked="a sequence reset, then a reject naming a number of the old epoch: block FILLED",
        lost=0 if block.status == "FILLED" else 1,
    )
    assert block.status == "FILLED"
    assert set(_statuses(filled.pk)) == {"FILLED"}
