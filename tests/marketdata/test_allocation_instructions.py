"""AllocationInstruction (35=J) / AllocationInstructionAck (35=P) over real sockets: sent when
a block's day is finalised, accepted or rejected by the simulator (a rejection lands in the
exceptions queue), and sent again as a replace when the day is rebooked."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.utils import timezone

from tests.fix.conftest import routed_block, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def _filled_and_finalised(desk, broker):
    from allocation.services import allocation_finalise
    from orders.models import Block

    block = routed_block(desk, broker, "300", "100")
    wait_until(lambda: Block.objects.get(pk=block.pk).status == "FILLED", what="filled")
    allocation_finalise(block=Block.objects.get(pk=block.pk), as_of=timezone.now())
    return Block.objects.get(pk=block.pk)


def _instruction(block, **kw):
    from fixgateway.models import AllocationInstruction

    return AllocationInstruction.objects.filter(block=block, **kw).order_by("version").last()


def test_a_finalised_day_is_sent_and_accepted(desk, world):
    broker = world.make(extra_config={"allocation_instructions": True})
    block = _filled_and_finalised(desk, broker)
    wait_until(lambda: _instruction(block, status="ACCEPTED"), what="35=P accepted")
    (received,) = world.sim("allocations")["received"]
    assert received["trans_type"] == "0"
    assert Decimal(received["quantity"]) == Decimal(400)
    assert Decimal(received["avg_px"]) == block.avg_price
    assert {a: Decimal(q) for a, q in received["accounts"].items()} == {
        "ACCT1": Decimal(300),
        "ACCT2": Decimal(100),
    }


def test_a_rejection_lands_in_the_exceptions_and_a_rebooking_is_sent_again(desk, world):
    from oms.models import OpsException

    broker = world.make(extra_config={"allocation_instructions": True})
    world.sim("reject_allocations", count=1)
    block = _filled_and_finalised(desk, broker)
    first = wait_until(lambda: _instruction(block, status="REJECTED"), what="35=P rejected")
    assert first.reject_code == "0" and "unknown" in first.ack_text
    exc = OpsException.objects.get(kind="allocation_rejected", ref=f"alloc:{first.alloc_id}")
    assert exc.resolved_at is None
    assert "Unknown account" in exc.summary
    # A correction after the day was final rebooks it (version 2): a replace naming the first
    # AllocID, at the corrected price.
    world.sim("correct", cl_ord_id=f"OMS-B{block.pk}-1", quantity="400", price="191.00")
    second = wait_until(
        lambda: _instruction(block, version=2, status="ACCEPTED"), what="the replace accepted"
    )
    assert second.trans_type == "1" and second.ref_alloc_id == first.alloc_id
    replace = world.sim("allocations")["received"][-1]
    assert replace["ref_alloc_id"] == first.alloc_id and replace["trans_type"] == "1"
    assert Decimal(replace["avg_px"]) == Decimal("191.00")


def test_a_broker_not_configured_gets_no_instruction(desk, world):
    broker = world.make()
    block = _filled_and_finalised(desk, broker)
    assert _instruction(block) is None
    assert world.sim("allocations")["received"] == []
