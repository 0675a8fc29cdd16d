"""The outbox obeys the trader, against the real database (no session): an order not sent yet
is withdrawn by a cancel, routing to a session that is down says so, an old queued order is
held until a trader releases or cancels it; algo tags follow the broker's version and tag map;
a reject is applied only to the message it names."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from fixgateway import outbound, rejects, sending, sessions
from fixgateway.models import Broker, FixOrder, OutboxMessage
from fixgateway.reports import InboundReport
from oms.errors import Conflict, DomainError, NotPermitted
from oms.models import OpsException
from orders import block_services as bs
from orders.blotter_selectors import block_detail, blotter_rows
from orders.entry import order_cancel
from orders.models import Block, Order, OrderEvent
from tests.blotter.helpers import staged_order

pytestmark = pytest.mark.django_db


@pytest.fixture
def broker(refdata):
    return Broker.objects.create(
        code="BRKA", name="Broker A", port=1, sender_comp_id="OMS", target_comp_id="BRKA"
    )


def _route(refdata, broker, *quantities, as_of=None, **kw):
    as_of = as_of or timezone.now()
    orders = [
        staged_order(refdata.acct1 if i % 2 == 0 else refdata.acct2, refdata.aapl, quantity=q)
        for i, q in enumerate(quantities or ("100",))
    ]
    block = bs.block_create(order_ids=[o.pk for o in orders], actor=refdata.trader, as_of=as_of)
    args = {"order_type": "MARKET", "strategy": "DMA"} | kw
    return bs.block_route(
        block_id=block.pk, broker_id=broker.pk, actor=refdata.trader, as_of=as_of, **args
    )


def _new(block) -> OutboxMessage:
    return OutboxMessage.objects.get(fix_order__block=block, kind="NEW")


def _claim(broker, as_of=None):
    return sending.outbox_send_claim(
        broker=Broker.objects.get(pk=broker.pk), as_of=as_of or timezone.now()
    )


def _send(broker, message, seq, epoch="E1"):
    """What the session owner does: claim, then toApp records it before the bytes leave."""
    sending.outbox_record_sent(
        broker_id=broker.pk,
        msg_type=outbound.KIND_MSG_TYPE[message.kind],
        cl_ord_id=message.cl_ord_id,
        seq_num=seq,
        seq_epoch=epoch,
        as_of=timezone.now(),
    )


def test_routing_to_a_session_that_is_down_is_only_queued_and_says_so(client, refdata, broker):
    orders = [staged_order(refdata.acct1, refdata.aapl)]
    block = bs.block_create(
        order_ids=[o.pk for o in orders], actor=refdata.trader, as_of=timezone.now()
    )
    client.force_login(refdata.trader)
    response = client.post(
        f"/api/blocks/{block.pk}/route/",
        {"broker_id": broker.pk, "order_type": "MARKET"},
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["status"], body["send_state"], body["queued"], body["session_down"]) == (
        "ROUTED",
        "queued",
        True,
        True,
    )
    (row,) = blotter_rows(user=refdata.trader, scope="blotter", as_of=timezone.now())
    assert row["send_state"] == "queued"
    # Once toApp records it as sent, the block shows nothing queued.
    _send(broker, _new(block), seq=7)
    detail = block_detail(block_id=block.pk)
    assert (detail["send_state"], detail["queued"], detail["session_down"]) == ("", False, False)


def test_cancelling_a_block_not_sent_yet_withdraws_it(refdata, broker):
    block = _route(refdata, broker, "100", "50")
    bs.block_cancel(block_id=block.pk, actor=refdata.trader, as_of=timezone.now())
    block.refresh_from_db()
    assert block.status == "CANCELLED"
    assert [(o.status, o.leaves_qty) for o in Order.objects.filter(block=block)] == [
        ("CANCELLED", 0),
        ("CANCELLED", 0),
    ]
    assert list(OutboxMessage.objects.values_list("kind", "status")) == [("NEW", "WITHDRAWN")]
    assert FixOrder.objects.get(block=block).outbox_state == "withdrawn"
    event = AuditEvent.objects.get(action="fix.order_withdraw")
    assert event.actor_id == refdata.trader.pk and event.after["outbox"] == "WITHDRAWN"
    assert set(OrderEvent.objects.filter(kind="withdrawn").values_list("to_status", flat=True)) == {
        "CANCELLED"
    }
    # Nothing is left for the session owner to send.
    assert _claim(broker).send == []


def test_a_cancel_after_the_sender_claimed_the_order_asks_the_broker(refdata, broker):
    block = _route(refdata, broker, "100")
    claim = _claim(broker)
    assert [m.cl_ord_id for m in claim.send] == [f"OMS-B{block.pk}-1"]
    bs.block_cancel(block_id=block.pk, actor=refdata.trader, as_of=timezone.now())
    block.refresh_from_db()
    assert block.status == "PENDING_CANCEL"
    assert list(OutboxMessage.objects.order_by("id").values_list("kind", "status")) == [
        ("NEW", "SENDING"),
        ("CANCEL", "QUEUED"),
    ]


def test_a_pms_cancel_of_one_order_of_an_unsent_block_shrinks_the_queued_order(refdata, broker):
    block = _route(refdata, broker, "300", "100")
    first, second = Order.objects.filter(block=block).order_by("pk")
    order_cancel(order_id=second.pk, actor=refdata.pm2, as_of=timezone.now())
    second.refresh_from_db()
    block.refresh_from_db()
    assert (second.status, second.leaves_qty) == ("CANCELLED", 0)
    assert Order.objects.get(pk=first.pk).status == "PENDING_NEW"
    assert (block.status, block.quantity) == ("ROUTED", Decimal(300))
    assert list(OutboxMessage.objects.values_list("kind", flat=True)) == ["NEW"]
    assert Decimal(_new(block).payload["quantity"]) == Decimal(300)
    assert AuditEvent.objects.filter(action="fix.order_reduce_unsent").exists()


def test_an_old_queued_order_is_held_until_a_trader_releases_it(refdata, broker):
    now = timezone.now()
    old = _route(refdata, broker, "100", as_of=now - timedelta(seconds=60))
    fresh = _route(refdata, broker, "100", as_of=now - timedelta(seconds=5))
    claim = _claim(broker, as_of=now)
    assert [m.cl_ord_id for m in claim.send] == [f"OMS-B{fresh.pk}-1"]
    assert claim.held == [_new(old).pk]
    assert (_new(old).status, FixOrder.objects.get(block=old).outbox_state) == ("HELD", "held")
    exception = OpsException.objects.get(kind="held_order", resolved_at__isnull=True)
    assert exception.block_id == old.pk and "release it" in exception.summary
    assert AuditEvent.objects.filter(action="fix.order_hold", object_id=str(old.pk)).exists()
    assert block_detail(block_id=old.pk)["send_state"] == "held"
    # Only the desk releases; then it is sent whatever its age.
    with pytest.raises(NotPermitted):
        sending.held_order_release(block_id=old.pk, actor=refdata.ops, as_of=now)
    sending.held_order_release(block_id=old.pk, actor=refdata.trader, as_of=now, note="go")
    assert _new(old).status == "QUEUED" and _new(old).released_at == now
    assert [m.cl_ord_id for m in _claim(broker, as_of=now + timedelta(minutes=5)).send] == [
        f"OMS-B{old.pk}-1"
    ]
    release = AuditEvent.objects.get(action="fix.order_release")
    assert release.actor_id == refdata.trader.pk and release.after["note"] == "go"
    exception.refresh_from_db()
    assert exception.resolved_at is not None
    with pytest.raises(Conflict):
        sending.held_order_release(block_id=old.pk, actor=refdata.trader, as_of=now)


def test_a_held_order_cancelled_is_withdrawn_and_never_sent(client, refdata, broker):
    now = timezone.now()
    block = _route(refdata, broker, "100", as_of=now - timedelta(seconds=90))
    _claim(broker, as_of=now)
    client.force_login(refdata.trader)
    listed = client.get("/api/held-orders/").json()["held"]
    assert [(h["block_id"], h["broker"], h["quantity"]) for h in listed] == [
        (block.pk, "BRKA", "100")
    ]
    response = client.post(f"/api/held-orders/{block.pk}/cancel/")
    assert response.status_code == 200, response.content
    assert _new(block).status == "WITHDRAWN"
    assert Block.objects.get(pk=block.pk).status == "CANCELLED"
    assert OpsException.objects.get(kind="held_order").resolved_at is not None
    assert client.post(f"/api/held-orders/{block.pk}/release/").status_code == 409
    assert _claim(broker, as_of=now).send == []


def test_a_vwap_to_a_fix42_broker_without_a_tag_map_is_refused_before_anything_is_written(
    client, refdata, broker
):
    broker.fix_version = "FIX.4.2"
    broker.save()
    order = staged_order(refdata.acct1, refdata.aapl)
    block = bs.block_create(order_ids=[order.pk], actor=refdata.trader, as_of=timezone.now())
    client.force_login(refdata.trader)
    response = client.post(
        f"/api/blocks/{block.pk}/route/",
        {"broker_id": broker.pk, "order_type": "MARKET", "strategy": "VWAP"},
        content_type="application/json",
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "strategy_not_supported"
    assert "FIX.4.2" in error["message"] and "847" in error["message"]
    assert Block.objects.get(pk=block.pk).status == "OPEN"
    assert Order.objects.get(pk=order.pk).status == "STAGED"
    assert not OutboxMessage.objects.exists()
    # DMA goes.
    assert _route(refdata, broker, "10").status == "ROUTED"


@pytest.mark.parametrize(
    ("version", "config", "strategy", "params", "fields"),
    [
        ("FIX.4.4", {}, "VWAP", {"start_time": "09:30"}, [[847, "1"], [848, "start_time=09:30"]]),
        (
            "FIX.4.2",
            {"strategy_tag": 6000, "strategy_tags": {"start_time": 6001, "participation": 6403}},
            "POV",
            {"participation": "10", "start_time": "09:30"},
            [[6000, "2"], [6403, "10"], [6001, "09:30"]],
        ),
        ("FIX.4.4", {"strategy_codes": {"TWAP": "T"}}, "TWAP", {}, [[847, "T"]]),
        ("FIX.4.2", {}, "DMA", {}, []),
    ],
)
def test_algo_tags_follow_the_brokers_version_and_tag_map(
    refdata, broker, version, config, strategy, params, fields
):
    broker.fix_version = version
    broker.extra_config = config
    broker.save()
    block = _route(refdata, broker, "100", strategy=strategy, strategy_params=params)
    assert _new(block).payload["algo_fields"] == fields


@pytest.mark.parametrize(
    ("config", "code"),
    [
        ({"strategy_tag": 6000}, "strategy_params_not_supported"),  # 4.2: no 848 for the rest
        ({"strategy_tag": 44}, "strategy_tag_map_invalid"),  # would overwrite the price
        ({"strategy_tag": 6000, "strategies": ["TWAP"]}, "strategy_not_supported"),
    ],
)
def test_a_tag_map_that_cannot_carry_the_instruction_refuses_the_route(
    refdata, broker, config, code
):
    broker.fix_version = "FIX.4.2"
    broker.extra_config = config
    broker.save()
    with pytest.raises(DomainError) as err:
        _route(refdata, broker, "100", strategy="VWAP", strategy_params={"start_time": "09:30"})
    assert err.value.code == code
    assert not OutboxMessage.objects.exists()


def _reject(broker, **values) -> InboundReport:
    values.setdefault("seq_epoch", "E1")
    return InboundReport(**values)


def test_a_session_reject_naming_a_tag_rejects_its_order_and_shows_the_tag(client, refdata, broker):
    block = _route(refdata, broker, "100", "50")
    other = _route(refdata, broker, "70")
    _send(broker, _new(block), seq=12)
    _send(broker, _new(other), seq=13)
    result = rejects.message_reject_apply(
        broker=broker,
        report=_reject(
            broker,
            msg_type="3",
            ref_seq_num=12,
            ref_msg_type="D",
            ref_tag=847,
            ref_tag_label="847 (TargetStrategy)",
            reject_reason="0",
            reject_reason_text="Invalid tag number",
            text="Invalid tag number",
        ),
        as_of=timezone.now(),
    )
    assert result.outcome == "applied"
    block.refresh_from_db()
    assert block.status == "REJECTED"
    assert Block.objects.get(pk=other.pk).status == "ROUTED"
    reject = FixOrder.objects.get(block=block).last_reject
    assert reject["tag"] == "847 (TargetStrategy)" and reject["tag_number"] == 847
    assert "847 (TargetStrategy)" in reject["text"] and "Invalid tag number" in reject["text"]
    events = OrderEvent.objects.filter(order__block=block, kind="rejected")
    assert events.count() == 2
    assert all("847 (TargetStrategy)" in e.details["text"] for e in events)
    client.force_login(refdata.trader)
    shown = client.get(f"/api/blocks/{block.pk}/").json()["last_reject"]
    assert shown["tag"] == "847 (TargetStrategy)"


@pytest.mark.parametrize(
    ("values", "why"),
    [
        ({"ref_seq_num": 99}, "no message of ours"),
        ({"ref_seq_num": 12, "ref_msg_type": "G"}, "RefMsgType G"),
        ({"ref_seq_num": 12, "seq_epoch": "E0"}, "no message of ours"),  # another epoch
        ({"ref_seq_num": 12, "business_ref_id": "OMS-B999999-1"}, "RefSeqNum 12 is"),
    ],
)
def test_a_reject_that_matches_nothing_exactly_touches_no_order(refdata, broker, values, why):
    block = _route(refdata, broker, "100")
    _send(broker, _new(block), seq=12)
    result = rejects.message_reject_apply(
        broker=broker,
        report=_reject(broker, msg_type=values.pop("msg_type", "j"), **values),
        as_of=timezone.now(),
    )
    assert result.outcome == "quarantined"
    assert Block.objects.get(pk=block.pk).status == "ROUTED"
    assert set(Order.objects.values_list("status", flat=True)) == {"PENDING_NEW"}
    exception = OpsException.objects.get(kind="unmatched_reject")
    assert why in exception.summary and exception.broker_id == broker.pk


def test_a_refused_status_request_names_the_broker_and_moves_no_order(refdata, broker):
    block = _route(refdata, broker, "100")
    _send(broker, _new(block), seq=12)
    for seq in (20, 21):
        rejects.message_reject_apply(
            broker=broker,
            report=_reject(
                broker,
                msg_type="j",
                ref_seq_num=seq,
                ref_msg_type="H",
                # The status request carries the order's ClOrdID: it is not the order.
                business_ref_id=_new(block).cl_ord_id,
                reject_reason="3",
                reject_reason_text="Unsupported message type",
            ),
            as_of=timezone.now(),
        )
    assert Block.objects.get(pk=block.pk).status == "ROUTED"
    exception = OpsException.objects.get(kind="status_request_refused")
    assert exception.occurrences == 2 and "BRKA" in exception.summary


def test_a_message_recorded_as_sent_that_never_reached_the_store_is_queued_again(refdata, broker):
    """toApp records a message just before QuickFIX stores it: a crash in between leaves a row
    SENT at a MsgSeqNum the store never reached. Start-up queues it again."""
    block = _route(refdata, broker, "100")
    _send(broker, _new(block), seq=5, epoch="E1")
    assert (
        sessions.outbox_requeue_unpersisted(broker=broker, seq_epoch="E1", next_sender_seq_num=6)
        == 0
    )  # stored: seq 5 is behind the store's next number
    assert (
        sessions.outbox_requeue_unpersisted(broker=broker, seq_epoch="E0", next_sender_seq_num=5)
        == 0
    )  # another store's numbering says nothing about this one
    assert (
        sessions.outbox_requeue_unpersisted(broker=broker, seq_epoch="E1", next_sender_seq_num=5)
        == 1
    )
    new = _new(block)
    assert (new.status, new.sent_at, new.sent_seq_num) == ("QUEUED", None, None)
    assert FixOrder.objects.get(block=block).outbox_state == "queued"
    assert [m.pk for m in _claim(broker).send] == [new.pk]
