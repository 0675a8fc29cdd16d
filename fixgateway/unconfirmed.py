"""A trader's answers to an order left unconfirmed at the broker after a reconnect: cancel it
locally, confirm it, or send it again.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from audit.services import audit_record
from oms.db import retry_on_conflict
from oms.errors import Conflict, DomainError, NotFound
from orders.models import Block

from .executions import (
    block_status_by_fill,
    orders_settle_pending,
    set_block_status,
    status_report_apply,
)
from .models import FixOrder, OutboxMessage
from .outbound import (
    BS,
    NOT_SENT,
    OS,
    fix_order_lock,
    kill_switch_refuse,
    new_order_payload,
    next_cl_ord_id,
    require_desk,
    wake_sender_on_commit,
)
from .reports import InboundReport
from .selectors import decimal_text as _dec
from .sessions import unconfirmed_clear


def _unconfirmed_lock(*, block_id: int, actor: Any) -> tuple[Block, FixOrder]:
    require_desk(actor)
    block = Block.objects.select_for_update(of=("self",)).filter(pk=block_id).first()
    if block is None:
        raise NotFound(f"Block {block_id} does not exist.")
    fix_order = fix_order_lock(block)
    if fix_order.unconfirmed_since is None:
        raise Conflict(
            f"Block {block.pk} is not unconfirmed at its broker.", code="not_unconfirmed"
        )
    fix_order.block = block
    return block, fix_order


def _withdraw_unsent(fix_order: FixOrder) -> int:
    """Messages about the order not sent yet (a cancel or replace for the ClOrdID the broker
    may not know) never leave. By status: one the sender claimed is on its way."""
    return OutboxMessage.objects.filter(fix_order=fix_order, status__in=NOT_SENT).update(
        status=OS.WITHDRAWN
    )


def _reason(text: str, what: str) -> str:
    text = " ".join((text or "").split())[:500]
    if not text:
        raise DomainError(f"Say why the order is {what}.", code="reason_required")
    return text


@retry_on_conflict(durable=True)
def unconfirmed_cancel_locally(*, block_id: int, reason: str, actor: Any, as_of: datetime) -> dict:
    """The trader gives up an order the broker cannot confirm: the block and its orders end
    CANCELLED here, nothing goes on the wire. Audited with the reason."""
    reason = _reason(reason, "cancelled locally")
    block, fix_order = _unconfirmed_lock(block_id=block_id, actor=actor)
    before = block.status
    withdrawn = _withdraw_unsent(fix_order)
    status_report_apply(
        fix_order=fix_order,
        block=block,
        report=InboundReport(msg_type="8", exec_type="4", text=f"cancelled locally: {reason}"),
        as_of=as_of,
    )
    audit_record(
        actor=actor,
        action="fix.unconfirmed_cancel_locally",
        obj=block,
        occurred_at=as_of,
        before={"status": before, "cl_ord_id": fix_order.cl_ord_id},
        after={"status": block.status, "reason": reason, "withdrawn": withdrawn},
    )
    unconfirmed_clear(
        fix_order=fix_order,
        as_of=as_of,
        actor=actor,
        note=f"Cancelled locally by {actor.get_username()}: {reason}",
    )
    return {"block": block.pk, "status": block.status}


@retry_on_conflict(durable=True)
def unconfirmed_confirm(*, block_id: int, note: str, actor: Any, as_of: datetime) -> dict:
    """The trader confirmed the order with the broker another way (by phone, on its
    screen): it stays as it is and the flag goes. Audited with the note."""
    note = _reason(note, "confirmed")
    block, fix_order = _unconfirmed_lock(block_id=block_id, actor=actor)
    audit_record(
        actor=actor,
        action="fix.unconfirmed_confirm",
        obj=block,
        occurred_at=as_of,
        before={"unconfirmed_since": fix_order.unconfirmed_since},
        after={"note": note},
    )
    unconfirmed_clear(
        fix_order=fix_order,
        as_of=as_of,
        actor=actor,
        note=f"Confirmed by {actor.get_username()}: {note}",
    )
    return {"block": block.pk, "status": block.status}


@retry_on_conflict(durable=True)
def unconfirmed_resend(*, block_id: int, actor: Any, as_of: datetime, note: str = "") -> dict:
    """The trader sends an order the broker cannot confirm again, as a new order: a new
    ClOrdID, a NewOrderSingle for what is left (quantity less filled). Fills under the old
    ClOrdIDs stay on the block. Audited."""
    block, fix_order = _unconfirmed_lock(block_id=block_id, actor=actor)
    kill_switch_refuse(block)
    leaves = block.quantity - block.cum_qty
    if leaves <= 0:
        raise Conflict(f"Block {block.pk} has nothing left to send.", code="nothing_left")
    broker = fix_order.broker
    payload = new_order_payload(block=block, broker=broker, quantity=leaves)
    withdrawn = _withdraw_unsent(fix_order)
    before = {"cl_ord_id": fix_order.cl_ord_id, "broker_order_id": fix_order.broker_order_id}
    cl_ord_id = next_cl_ord_id(fix_order)
    message = OutboxMessage.objects.create(
        broker=broker,
        fix_order=fix_order,
        kind=OutboxMessage.Kind.NEW,
        cl_ord_id=cl_ord_id,
        payload=payload,
        created_at=as_of,
    )
    fix_order.cl_ord_id = cl_ord_id
    fix_order.broker_order_id = ""
    fix_order.carried_cum_qty = block.cum_qty
    fix_order.outbox_state = "queued"
    fix_order.pending_cl_ord_id = fix_order.pending_kind = ""
    fix_order.pending_values = {}
    fix_order.save()
    if block.status in (BS.PENDING_CANCEL, BS.PENDING_REPLACE):
        set_block_status(block, block_status_by_fill(block))
        orders_settle_pending(block, as_of, kind="resent")
    note = " ".join((note or "").split())[:500]
    audit_record(
        actor=actor,
        action="fix.unconfirmed_resend",
        obj=block,
        occurred_at=as_of,
        before=before,
        after={
            "cl_ord_id": cl_ord_id,
            "quantity": _dec(leaves),
            "outbox": message.pk,
            "withdrawn": withdrawn,
            "note": note,
        },
    )
    unconfirmed_clear(
        fix_order=fix_order,
        as_of=as_of,
        actor=actor,
        note=f"Resent as {cl_ord_id} by {actor.get_username()}" + (f": {note}" if note else "."),
    )
    wake_sender_on_commit(broker.pk)
    return {"block": block.pk, "cl_ord_id": cl_ord_id, "quantity": _dec(leaves), "outbox": "queued"}
