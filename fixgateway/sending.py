"""The sender's side of the outbox: the session owner claims what to send (holding a
NewOrderSingle queued too long for a trader), records what went out with its MsgSeqNum and
epoch, and a trader releases or cancels a held order.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import transaction

from audit.services import audit_record
from oms.db import retry_on_conflict
from oms.errors import Conflict, NotFound
from oms.services import exception_open, exceptions_resolve_for
from orders.models import Block

from .models import Broker, FixOrder, OutboxMessage
from .monitor import SentMessage, update_with_message
from .outbound import (
    HELD_ORDER,
    OS,
    fix_order_lock,
    held_ref,
    kill_switch_refuse,
    push_block_orders,
    require_desk,
    wake_sender_on_commit,
    withdraw_if_unsent,
)


def outbox_mark_sent(
    *, message_id: int, seq_num: int | None, as_of: datetime, seq_epoch: str = ""
) -> bool:
    """A message is on the wire (or in QuickFIX's store, which resends it): SENT. A message
    recorded as sent already (by `outbox_record_sent`) is left as it is."""
    updated = OutboxMessage.objects.filter(
        pk=message_id, sent_at__isnull=True, status__in=(OS.QUEUED, OS.SENDING)
    ).update(status=OS.SENT, sent_at=as_of, sent_seq_num=seq_num, sent_seq_epoch=seq_epoch)
    if updated:
        FixOrder.objects.filter(
            messages__pk=message_id, messages__kind=OutboxMessage.Kind.NEW, outbox_state="queued"
        ).update(outbox_state="")
    return bool(updated)


def outbox_record_sent(
    *,
    broker_id: int,
    msg_type: str,
    cl_ord_id: str,
    seq_num: int,
    seq_epoch: str,
    as_of: datetime,
    raw: str = "",
    orig_cl_ord_id: str = "",
) -> bool:
    """What QuickFIX is about to write, recorded from its toApp callback before the bytes
    leave: the message's MsgSeqNum and the session's sequence epoch (its store). A reject of
    it, however fast, finds it by RefSeqNum. With its text (`raw`) the message is also kept
    for the message monitor, in the same statement. False when the ClOrdID is not an unsent
    outbox row (a resend, or not ours)."""
    mark = OutboxMessage.objects.filter(
        broker_id=broker_id, cl_ord_id=cl_ord_id, status__in=(OS.SENDING, OS.QUEUED)
    )
    values = {
        "status": OS.SENT,
        "sent_at": as_of,
        "sent_seq_num": seq_num,
        "sent_seq_epoch": seq_epoch,
    }
    if raw:
        row = SentMessage(
            msg_type=msg_type,
            seq_num=seq_num,
            seq_epoch=seq_epoch,
            cl_ord_id=cl_ord_id,
            orig_cl_ord_id=orig_cl_ord_id,
            raw=raw,
        )
        updated = update_with_message(mark, values, row.values(broker_id=broker_id, at=as_of))
    else:
        updated = mark.update(**values)
    if updated and msg_type == "D":
        FixOrder.objects.filter(
            messages__broker_id=broker_id, messages__cl_ord_id=cl_ord_id, outbox_state="queued"
        ).update(outbox_state="")
    return bool(updated)


@dataclass(frozen=True)
class OutboxClaim:
    """What the session owner may send now (claimed: SENDING), and what it held back."""

    send: list[OutboxMessage]
    held: list[int]


def outbox_send_claim(*, broker: Broker, as_of: datetime, limit: int = 500) -> OutboxClaim:
    """Claim the broker's queued messages for sending, oldest first, in one transaction: each
    moves QUEUED -> SENDING under a row lock, so a cancel that withdraws it cannot cross the
    send. Stops at the first row someone else holds (a cancel in progress), so the order of
    the outbox is kept. A NewOrderSingle queued longer than the broker's max_queued_seconds
    (the session was down) is not sent without a trader: it moves to HELD (audited, an
    exception `held_order` on the queue) until `held_order_release` or a cancel."""
    queued = list(
        OutboxMessage.objects.filter(broker=broker, sent_at__isnull=True, status=OS.QUEUED)
        .order_by("id")
        .values_list("pk", flat=True)[:limit]
    )
    if not queued:
        return OutboxClaim(send=[], held=[])
    max_age = broker.max_queued_seconds
    with transaction.atomic(durable=True):
        locked = {
            m.pk: m
            for m in OutboxMessage.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("fix_order")
            .filter(pk__in=queued, status=OS.QUEUED)
        }
        send: list[OutboxMessage] = []
        held: list[int] = []
        for pk in queued:
            message = locked.get(pk)
            if message is None:
                break  # being withdrawn or changed right now: the rest waits for the next round
            too_old = (as_of - message.created_at).total_seconds() > max_age
            if message.kind == OutboxMessage.Kind.NEW and message.released_at is None and too_old:
                _hold(broker=broker, message=message, as_of=as_of)
                held.append(pk)
            else:
                send.append(message)
        if send:
            OutboxMessage.objects.filter(pk__in=[m.pk for m in send]).update(status=OS.SENDING)
    return OutboxClaim(send=send, held=held)


def _hold(*, broker: Broker, message: OutboxMessage, as_of: datetime) -> None:
    message.status = OS.HELD
    message.held_at = as_of
    message.save(update_fields=["status", "held_at"])
    fix_order = message.fix_order
    FixOrder.objects.filter(pk=fix_order.pk).update(outbox_state="held")
    push_block_orders(fix_order.block_id)
    age = int((as_of - message.created_at).total_seconds())
    audit_record(
        action="fix.order_hold",
        obj=fix_order.block,
        occurred_at=as_of,
        after={
            "cl_ord_id": message.cl_ord_id,
            "queued_seconds": age,
            "limit": broker.max_queued_seconds,
        },
    )
    exception_open(
        kind=HELD_ORDER,
        ref=held_ref(fix_order.block_id),
        source="fixgateway",
        summary=f"Block {fix_order.block_id}: the order for {broker.code} waited {age} s unsent "
        f"(limit {broker.max_queued_seconds} s); release it to send it, or cancel it",
        detail={
            "cl_ord_id": message.cl_ord_id,
            "queued_at": message.created_at,
            "broker": broker.code,
        },
        block_id=fix_order.block_id,
        broker_id=broker.pk,
        as_of=as_of,
    )


def outbox_send_unclaim(*, message_ids: list[int]) -> int:
    """Messages claimed but not handed to QuickFIX (the session dropped): queued again."""
    return OutboxMessage.objects.filter(pk__in=message_ids, status=OS.SENDING).update(
        status=OS.QUEUED
    )


@retry_on_conflict(durable=True)
def held_order_release(*, block_id: int, actor: Any, as_of: datetime, note: str = "") -> dict:
    """A trader confirms a held NewOrderSingle: it is queued again and sent at once (it will
    not be held again). Audited; the `held_order` exception is resolved."""
    require_desk(actor)
    block = Block.objects.select_for_update(of=("self",)).filter(pk=block_id).first()
    if block is None:
        raise NotFound(f"Block {block_id} does not exist.")
    fix_order = fix_order_lock(block)
    kill_switch_refuse(block)
    message = (
        OutboxMessage.objects.select_for_update()
        .filter(fix_order=fix_order, kind=OutboxMessage.Kind.NEW, status=OS.HELD)
        .first()
    )
    if message is None:
        raise Conflict(f"Block {block.pk} has no held order.", code="not_held")
    message.status = OS.QUEUED
    message.released_at = as_of
    message.save(update_fields=["status", "released_at"])
    fix_order.outbox_state = "queued"
    fix_order.save(update_fields=["outbox_state"])
    push_block_orders(block.pk)
    note = " ".join((note or "").split())[:500]
    audit_record(
        actor=actor,
        action="fix.order_release",
        obj=block,
        occurred_at=as_of,
        before={"outbox": OS.HELD},
        after={"outbox": OS.QUEUED, "cl_ord_id": message.cl_ord_id, "note": note},
    )
    exceptions_resolve_for(
        kind=HELD_ORDER,
        ref=held_ref(block.pk),
        note=f"Released by {actor.get_username()}" + (f": {note}" if note else "."),
        as_of=as_of,
        actor=actor,
    )
    wake_sender_on_commit(fix_order.broker_id)
    return {"block": block.pk, "cl_ord_id": message.cl_ord_id, "outbox": OS.QUEUED}


@retry_on_conflict(durable=True)
def held_order_cancel(*, block_id: int, actor: Any, as_of: datetime) -> dict:
    """A trader refuses a held NewOrderSingle: withdrawn, never sent; the block and its
    orders end CANCELLED (audited as fix.order_withdraw)."""
    require_desk(actor)
    block = Block.objects.select_for_update(of=("self",)).filter(pk=block_id).first()
    if block is None:
        raise NotFound(f"Block {block_id} does not exist.")
    fix_order = fix_order_lock(block)
    held = OutboxMessage.objects.filter(
        fix_order=fix_order, kind=OutboxMessage.Kind.NEW, status=OS.HELD
    ).exists()
    if not held or not withdraw_if_unsent(
        block=block, fix_order=fix_order, actor=actor, as_of=as_of, reason="held, cancelled"
    ):
        raise Conflict(f"Block {block.pk} has no held order.", code="not_held")
    return {"block": block.pk, "status": block.status, "outbox": OS.WITHDRAWN}
