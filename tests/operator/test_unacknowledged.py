"""Orders the broker never acknowledged, over real sockets (the gateway subprocess and the
broker simulator): a NewOrderSingle left unanswered past the broker's ack_timeout_seconds
opens an `unacknowledged_order` exception, once; the broker's answer resolves it. A broker
that never sends ExecType New but fills at once (the no_ack personality) has answered."""

from __future__ import annotations

from datetime import timedelta

import pytest

from fixgateway import sessions, tasks
from fixgateway.models import Broker, Execution, FixMessage, OutboxMessage
from oms.models import OpsException
from tests.fix.conftest import broker, desk, gateway, gateway_env, routed_block, sim, wait_until

__all__ = ["broker", "desk", "gateway", "gateway_env", "sim"]  # the FIX world's fixtures

pytestmark = [pytest.mark.fix, pytest.mark.django_db(transaction=True)]


def _sent(block) -> OutboxMessage:
    return wait_until(
        lambda: OutboxMessage.objects.filter(
            fix_order__block=block, kind="NEW", status="SENT"
        ).first(),
        what="the NewOrderSingle sent",
    )


def test_an_unanswered_order_opens_an_exception_the_answer_resolves(desk, broker, sim, gateway):
    Broker.objects.filter(pk=broker.pk).update(ack_timeout_seconds=3)
    sim("config", send_new=False, fill_mode="none")  # the broker takes the order, says nothing
    block = routed_block(desk, broker, "100")
    sent = _sent(block)
    check = sessions.unacknowledged_orders_check

    assert check(as_of=sent.sent_at + timedelta(seconds=2)) == {"opened": 0, "resolved": 0}
    assert check(as_of=sent.sent_at + timedelta(seconds=3)) == {"opened": 1, "resolved": 0}
    exception = OpsException.objects.get(kind="unacknowledged_order")
    assert (exception.block_id, exception.broker_id, exception.is_open) == (
        block.pk,
        broker.pk,
        True,
    )
    assert sent.cl_ord_id in exception.summary and "limit 3 s" in exception.summary
    # Seen again later: the open exception stands, no second one, no extra occurrence.
    assert check(as_of=sent.sent_at + timedelta(seconds=9)) == {"opened": 0, "resolved": 0}
    exception.refresh_from_db()
    assert exception.occurrences == 1

    sim("fill", cl_ord_id=sent.cl_ord_id, quantity="100")
    wait_until(lambda: Execution.objects.filter(fix_order__block=block).exists(), what="fill")
    assert tasks.unacknowledged_orders_check() == {"opened": 0, "resolved": 1}
    exception.refresh_from_db()
    assert not exception.is_open and exception.resolved_by is None
    assert "answered" in exception.resolution_note

    # What crossed the wire is kept for the monitor: the order out, the fill in.
    kept = FixMessage.objects.filter(cl_ord_id=sent.cl_ord_id).order_by("at", "id")
    assert [(m.direction, m.msg_type) for m in kept] == [("OUT", "D"), ("IN", "8")]
    assert kept[0].seq_num == sent.sent_seq_num
    assert "|35=D|" in kept[0].raw and "|11=" + sent.cl_ord_id + "|" in kept[0].raw


def test_a_broker_that_fills_without_a_new_ack_has_answered(desk, broker, sim, gateway):
    Broker.objects.filter(pk=broker.pk).update(ack_timeout_seconds=1)
    sim("personality", name="no_ack")
    block = routed_block(desk, broker, "100")
    sent = _sent(block)
    wait_until(
        lambda: Execution.objects.filter(fix_order__block=block, exec_type="F").exists(),
        what="the fill",
    )
    assert not Execution.objects.filter(fix_order__block=block, exec_type="0").exists()
    result = sessions.unacknowledged_orders_check(as_of=sent.sent_at + timedelta(seconds=30))
    assert result == {"opened": 0, "resolved": 0}
    assert not OpsException.objects.filter(kind="unacknowledged_order").exists()
