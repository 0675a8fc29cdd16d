"""Inbound messages go through the application's queue and its applier thread: a burst of
reports shares transactions, the session is wound back to the committed mark at start-up, and
a message that cannot be read ends quarantined (not lost, not raised into QuickFIX)."""

from __future__ import annotations

import gc
from decimal import Decimal

import pytest
import quickfix as fix
from django.db import connection

from tests.fix.conftest import routed_block, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def _block(pk):
    from orders.models import Block

    return Block.objects.get(pk=pk)


def test_a_burst_of_reports_is_committed_in_a_few_transactions(desk, broker, sim, gateway):
    from fixgateway.models import Execution

    sim("config", fill_mode="none")
    block = routed_block(desk, broker, "10000")
    wait_until(lambda: _block(block.pk).status == "WORKING", what="ack")
    count = 200
    sim("fills", cl_ord_id=f"OMS-B{block.pk}-1", fills=[["10", "190.00"]] * count)
    wait_until(lambda: _block(block.pk).cum_qty == 10 * count, timeout=60, what="every fill")
    fills = Execution.objects.filter(fix_order__block_id=block.pk, exec_type="F")
    assert fills.count() == count
    # Each row carries the id of the transaction that wrote it.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(DISTINCT xmin::text) FROM fixgateway_execution WHERE id = ANY(%s)",
            [list(fills.values_list("pk", flat=True))],
        )
        (transactions,) = cursor.fetchone()
    print(f"{count} fills in a burst: {transactions} transactions")
    assert transactions <= count // 4


@pytest.mark.parametrize(
    ("mark", "created", "expected", "target"),
    [
        (("20261126-01:00:00", 40), "20261126-01:00:00", 50, 41),  # same store: wound back
        (("20261126-01:00:00", 40), "20261126-01:00:00", 41, None),  # nothing past the mark
        (("20261126-01:00:00", 40), "20261126-01:00:00", 12, None),  # mark ahead of the store
        (("20261125-01:00:00", 40), "20261126-01:00:00", 50, None),  # another store (a reset)
        (None, "20261126-01:00:00", 50, None),  # nothing committed yet
        (("20261126-01:00:00", 40), "", 50, None),  # no store
    ],
)
def test_the_rewind_decision(mark, created, expected, target):
    from fixgateway.runner import inbound_rewind_target
    from fixgateway.selectors import InboundMark

    mark = InboundMark(*mark) if mark else None
    assert inbound_rewind_target(mark=mark, store_created=created, expected=expected) == target


def _engine(broker):
    from fixgateway.application import GatewayApplication
    from fixgateway.runner import initiator_settings

    app = GatewayApplication(broker)
    cfg = initiator_settings(broker)
    return app, fix.SocketInitiator(app, fix.FileStoreFactory(cfg), cfg)


def _seqnums(store, broker) -> tuple[int, int]:
    text = (store / f"FIX.4.4-OMS-{broker.target_comp_id}.seqnums").read_text()
    sender, target = (int(part) for part in text.split(":"))
    return sender, target


def test_a_created_session_is_wound_back_to_the_mark_of_its_own_store(broker, settings, tmp_path):
    """The real engine and FileStore (created, never connected): the store's creation time is
    what the FileStore wrote, and the rewind is persisted in the store."""
    from fixgateway.models import SessionState
    from fixgateway.runner import _registered_session, inbound_rewind, store_created

    settings.OMS_FIX_STORE_DIR = tmp_path / "store"
    settings.OMS_FIX_LOG_DIR = tmp_path / "log"
    app, engine = _engine(broker)
    try:
        created = store_created(broker)
        assert created and len(created) <= 32
        _registered_session(broker).setNextTargetMsgSeqNum(58)  # 57 received
        SessionState.objects.create(
            broker=broker, inbound_store_created=created, inbound_applied_seq_num=40
        )
        assert inbound_rewind(broker) == 41
        assert _registered_session(broker).getExpectedTargetNum() == 41
        assert _seqnums(tmp_path / "store", broker)[1] == 41
        assert inbound_rewind(broker) is None  # nothing past the mark any more

        _registered_session(broker).setNextTargetMsgSeqNum(58)
        SessionState.objects.filter(broker=broker).update(inbound_store_created="19990101-00:00:00")
        assert inbound_rewind(broker) is None
        assert _registered_session(broker).getExpectedTargetNum() == 58
    finally:
        engine.stop()
        del engine, app
        gc.collect()


def _message(seq: int, msg_type: str, fields: dict[int, str]) -> fix.Message:
    from fixgateway import fixmsg

    message = fixmsg.new_message(msg_type)
    message.getHeader().setField(34, str(seq))
    for tag, value in fields.items():
        message.setField(tag, value)
    return message


def test_a_report_that_cannot_be_read_ends_quarantined_and_covered_by_the_mark(desk, broker):
    """Straight into the application's callback (QuickFIX's validation passed it: a TradeDate
    is not checked by the data dictionary): it is quarantined with its raw text, nothing is
    applied, the callback returns, and the mark moves past it."""
    from fixgateway.application import GatewayApplication
    from fixgateway.models import Quarantine
    from fixgateway.selectors import inbound_mark

    block = routed_block(desk, broker, "100")
    app = GatewayApplication(broker, store_created=lambda: "20261126-02:00:00")
    app.refresh_store_created()
    app.applier_start()
    try:
        fill = {
            11: f"OMS-B{block.pk}-1",
            37: "SIM-1",
            17: "BAD-DATE-1",
            150: "F",
            39: "2",
            55: "AAPL",
            54: "1",
            38: "100",
            32: "100",
            31: "190",
            14: "100",
            6: "190",
            151: "0",
            75: "20261399",
        }
        app.fromApp(_message(7, "8", fill), None)
        app.fromApp(_message(8, "B", {148: "news is not for us"}), None)
        wait_until(
            lambda: (
                inbound_mark(broker_id=broker.pk) and inbound_mark(broker_id=broker.pk).seq_num == 8
            ),
            what="the mark past both",
        )
    finally:
        assert app.applier_stop(timeout=10)
    assert not app.inbound_failed.is_set()
    bad = Quarantine.objects.get(exec_id="BAD-DATE-1")
    assert bad.msg_type == "8" and "75=20261399" in bad.raw
    assert bad.reason == "malformed" and "month must be in 1..12" in bad.detail
    assert Quarantine.objects.filter(reason="unexpected_message", msg_type="B").count() == 1
    b = _block(block.pk)
    assert b.cum_qty == Decimal(0) and b.status != "FILLED"
