"""Allocation instructions to brokers: AllocationInstruction (35=J) out after a block's day is
finalised, AllocationInstructionAck (35=P) in.

- `allocation_instruction_enqueue` is called by the booking ledger when it finalises a day
  (allocation.days.day_finalise), in that transaction: one row per block, trade date and
  day version, for brokers whose row asks (extra_config {"allocation_instructions": true}).
  A rebooked day (a late fill, bust or correction) writes the next version: a replace
  (AllocTransType 71=1) naming the previous AllocID (72).
- The session's runner sends queued rows while logged on (`AllocationSession.send_pending`);
  a row is marked SENT once QuickFIX took it (a crash in between sends it again: the broker
  sees the same AllocID twice, and its second ack changes nothing here).
- An ack is applied in QuickFIX's callback in its own transaction (few, and not part of the
  execution flow): accepted (87=0) or received (87=3) move the row; rejected (87=1/2) opens an
  `allocation_rejected` exception for Operations.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime
from decimal import Decimal

import quickfix as fix
from django.db import close_old_connections, transaction

from audit.services import audit_record
from oms.db import within_transaction

from . import fixmsg
from .fixmsg import get
from .models import AllocationInstruction, Broker, FixOrder

log = logging.getLogger("fixgateway.allocations")

ALLOC_STATUS = {"0": "ACCEPTED", "1": "REJECTED", "2": "REJECTED", "3": "RECEIVED"}
ALLOC_REJ_CODES = {
    "0": "Unknown account(s)",
    "1": "Incorrect quantity",
    "2": "Incorrect average price",
    "3": "Unknown executing broker mnemonic",
    "4": "Commission difference",
    "5": "Unknown OrderID",
    "6": "Unknown ListID",
    "7": "Other",
}


def wants_allocation_instructions(broker: Broker) -> bool:
    return bool((broker.extra_config or {}).get("allocation_instructions"))


@within_transaction
def allocation_instruction_enqueue(
    *,
    block,
    trade_date: date,
    version: int,
    avg_price: Decimal | None,
    by_account_id: dict[int, Decimal],
    as_of: datetime,
) -> AllocationInstruction | None:
    """Queue the 35=J for a finalised day (in the caller's transaction). Nothing for a broker
    that does not take them, or a day without trades."""
    broker = block.broker
    if broker is None or not wants_allocation_instructions(broker):
        return None
    if avg_price is None or not by_account_id:
        return None
    from oms.models import Account

    codes = dict(Account.objects.filter(pk__in=by_account_id).values_list("pk", "code"))
    by_account = {codes[pk]: qty for pk, qty in by_account_id.items()}
    previous = (
        AllocationInstruction.objects.filter(block=block, trade_date=trade_date)
        .order_by("-version")
        .first()
    )
    if previous is not None and previous.version >= version:
        return previous  # this version is queued already
    fix_order = FixOrder.objects.filter(block=block).only("cl_ord_id").first()
    cl_ord_id = fix_order.cl_ord_id if fix_order else ""
    row = AllocationInstruction.objects.create(
        broker=broker,
        block=block,
        trade_date=trade_date,
        version=version,
        alloc_id=f"AI-{block.pk}-{trade_date:%Y%m%d}-v{version}",
        ref_alloc_id=previous.alloc_id if previous else "",
        trans_type="1" if previous else "0",
        side=block.side,
        symbol=block.security.symbol,
        quantity=sum(by_account.values(), Decimal(0)),
        avg_price=avg_price,
        allocations=[{"account": a, "quantity": str(q)} for a, q in sorted(by_account.items())],
        cl_ord_ids=[cl_ord_id] if cl_ord_id else [],
        created_at=as_of,
    )
    audit_record(
        action="fix.allocation_instruction_queue",
        obj=row,
        after={"alloc_id": row.alloc_id, "ref": row.ref_alloc_id, "allocations": row.allocations},
        occurred_at=as_of,
    )
    return row


def build(row: AllocationInstruction) -> fix.Message:
    message = fixmsg.new_message("J")
    message.setField(70, row.alloc_id)
    message.setField(71, row.trans_type)
    if row.ref_alloc_id:
        message.setField(72, row.ref_alloc_id)
    message.setField(626, "1")  # AllocType: calculated
    message.setField(857, "1" if row.cl_ord_ids else "0")  # explicit list of orders, or none
    for cl in row.cl_ord_ids:
        group = fix.Group(73, 11)
        group.setField(11, cl)
        message.addGroup(group)
    message.setField(54, fixmsg.SIDE_TO_FIX.get(row.side, "1"))
    message.setField(55, row.symbol)
    message.setField(53, str(row.quantity))
    message.setField(6, str(row.avg_price))
    message.setField(75, row.trade_date.strftime("%Y%m%d"))
    message.setField(60, fixmsg.fix_time(datetime.now(UTC)))
    for alloc in row.allocations:
        group = fix.Group(78, 79)
        group.setField(79, alloc["account"])
        group.setField(80, alloc["quantity"])
        message.addGroup(group)
    return message


def allocation_instruction_ack_apply(
    *, broker_id: int, alloc_id: str, status: str, reject_code: str, text: str, as_of: datetime
) -> AllocationInstruction | None:
    """Apply a 35=P: the row moves (a late ack of an older state never moves it back from a
    final one), a rejection opens an exception. None when the AllocID names nothing."""
    from oms.services import exception_open

    with transaction.atomic():
        row = (
            AllocationInstruction.objects.select_for_update()
            .filter(broker_id=broker_id, alloc_id=alloc_id)
            .first()
        )
        if row is None:
            exception_open(
                kind="unmatched_allocation_ack",
                ref=f"alloc:{alloc_id}",
                source="fixgateway",
                summary=f"AllocationInstructionAck for unknown AllocID {alloc_id}",
                detail={"status": status, "text": text},
                broker_id=broker_id,
                as_of=as_of,
            )
            return None
        new = ALLOC_STATUS.get(status, row.status)
        final = (AllocationInstruction.Status.ACCEPTED, AllocationInstruction.Status.REJECTED)
        if row.status in final or new == row.status:
            return row
        before = row.status
        row.status = new
        row.acked_at = as_of
        row.ack_text = text[:500]
        row.reject_code = reject_code
        row.save(update_fields=["status", "acked_at", "ack_text", "reject_code"])
        if new == AllocationInstruction.Status.REJECTED:
            reason = ALLOC_REJ_CODES.get(reject_code, f"code {reject_code}" if reject_code else "")
            exception_open(
                kind="allocation_rejected",
                ref=f"alloc:{row.alloc_id}",
                source="fixgateway",
                summary=(
                    f"{row.broker.code} rejected allocation {row.alloc_id} (block {row.block_id},"
                    f" {row.trade_date}): {reason} {text}".strip()
                ),
                detail={"alloc_id": row.alloc_id, "reject_code": reject_code, "text": text},
                block_id=row.block_id,
                broker_id=broker_id,
                as_of=as_of,
            )
        audit_record(
            action="fix.allocation_instruction_ack",
            obj=row,
            before={"status": before},
            after={"status": new, "reject_code": reject_code, "text": text},
            occurred_at=as_of,
        )
        return row


class AllocationSession:
    """The broker session's side: send what is queued, apply acks."""

    def __init__(self, broker: Broker, app):
        self.broker = broker
        self.app = app

    def send_pending(self) -> int:
        if not wants_allocation_instructions(self.broker) or self.app.session_id is None:
            return 0
        rows = list(
            AllocationInstruction.objects.filter(
                broker=self.broker, status=AllocationInstruction.Status.QUEUED
            ).order_by("pk")[:100]
        )
        sent = 0
        for row in rows:
            if not fix.Session.sendToTarget(build(row), self.app.session_id):
                break
            AllocationInstruction.objects.filter(
                pk=row.pk, status=AllocationInstruction.Status.QUEUED
            ).update(status=AllocationInstruction.Status.SENT, sent_at=datetime.now(UTC))
            sent += 1
        return sent

    def on_ack(self, message) -> None:
        close_old_connections()
        allocation_instruction_ack_apply(
            broker_id=self.broker.pk,
            alloc_id=get(message, 70),
            status=get(message, 87),
            reject_code=get(message, 88),
            text=get(message, 58),
            as_of=datetime.now(UTC),
        )
