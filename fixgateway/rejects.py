"""Applying the broker's refusals: order cancel rejects (35=9) and session or business message
rejects (35=3, 35=j), matched to the one outbox message they name.
"""

from __future__ import annotations

from datetime import datetime

from audit.services import audit_record
from oms.db import in_transaction
from oms.models import ExceptionKind
from oms.services import exception_open

from .executions import (
    block_status_by_fill,
    execution_report_apply_nested,
    find_fix_order_id,
    orders_settle_pending,
    reject_info,
    set_block_status,
)
from .fixmsg import MSG_TYPE_NAMES
from .models import Broker, FixOrder, OutboxMessage
from .outbound import BS, KIND_MSG_TYPE, OS, block_lock
from .reports import ApplyResult, InboundReport, quarantine_record
from .sessions import broker_status_requests_learned, unconfirmed_flag


def cancel_reject_apply(*, broker: Broker, report: InboundReport, as_of: datetime) -> ApplyResult:
    """OrderCancelReject, or a Reject / BusinessMessageReject of a cancel or replace: the
    order goes back to where it was."""
    return in_transaction(
        lambda: cancel_reject_apply_nested(broker=broker, report=report, as_of=as_of), durable=True
    )


def cancel_reject_apply_nested(
    *, broker: Broker, report: InboundReport, as_of: datetime
) -> ApplyResult:
    fix_order_id = find_fix_order_id(broker=broker, report=report)
    if fix_order_id is None:
        quarantine_record(
            broker=broker,
            reason="unknown_cl_ord_id",
            report=report,
            detail="cancel reject for an unknown order",
            as_of=as_of,
        )
        return ApplyResult("unknown")
    block_id = FixOrder.objects.filter(pk=fix_order_id).values_list("block_id", flat=True)[0]
    block = block_lock(block_id)
    fix_order = FixOrder.objects.select_for_update().get(pk=fix_order_id)
    if not fix_order.pending_kind:
        return ApplyResult("duplicate", detail="nothing pending")
    prior = fix_order.prior_status
    what = (
        "OrderCancelReplaceRequest"
        if fix_order.pending_kind == OutboxMessage.Kind.REPLACE
        else "OrderCancelRequest"
    )
    reject = report.extra.get("reject") or reject_info(report, what=what)
    fix_order.pending_kind = fix_order.pending_cl_ord_id = ""
    fix_order.pending_values = {}
    fix_order.last_reject = reject
    fix_order.save()
    if block.status in (BS.PENDING_CANCEL, BS.PENDING_REPLACE):
        restored = block_status_by_fill(block)
        if restored == BS.WORKING and prior in (BS.ROUTED, BS.DONE_FOR_DAY):
            restored = prior
        set_block_status(block, restored)
    orders_settle_pending(
        block, as_of, "cancel_rejected", details={"text": reject["text"], "reject": reject}
    )
    audit_record(
        action="fix.cancel_rejected",
        obj=block,
        occurred_at=as_of,
        after={"cl_ord_id": report.cl_ord_id, "text": report.text, "reject": reject},
    )
    return ApplyResult("applied")


def message_reject_apply(*, broker: Broker, report: InboundReport, as_of: datetime) -> ApplyResult:
    """A session Reject (35=3) or BusinessMessageReject (35=j) of one of our messages."""
    return in_transaction(
        lambda: message_reject_apply_nested(broker=broker, report=report, as_of=as_of), durable=True
    )


ORDER_MESSAGE_TYPES = frozenset(KIND_MSG_TYPE.values())


def _rejected_message(*, broker: Broker, report: InboundReport) -> tuple[OutboxMessage | None, str]:
    """The outbox message a 35=3 / 35=j refers to, and "" — or None and why not. By RefSeqNum
    within its sequence epoch (recorded before the message left, so no reject outruns it),
    checked against RefMsgType and the ClOrdID the reject names (BusinessRejectRefID):
    a reject is applied only to the message it names, never to a neighbour."""
    ref_type = report.ref_msg_type or report.extra.get("sent_msg_type", "")
    by_seq = None
    if report.ref_seq_num:
        rows = OutboxMessage.objects.filter(broker=broker, sent_seq_num=report.ref_seq_num)
        if report.seq_epoch:
            rows = rows.filter(sent_seq_epoch=report.seq_epoch)
        by_seq = rows.order_by("-id").first()
    named = report.business_ref_id or report.extra.get("sent_cl_ord_id", "")
    by_id = OutboxMessage.objects.filter(broker=broker, cl_ord_id=named).first() if named else None
    if by_seq is not None and named and by_seq.cl_ord_id != named:
        return None, (
            f"RefSeqNum {report.ref_seq_num} is {by_seq.cl_ord_id}, but the reject names {named}"
        )
    message = by_seq or by_id
    if message is None:
        return None, "no message of ours has that RefSeqNum or ClOrdID"
    if ref_type and KIND_MSG_TYPE[message.kind] != ref_type:
        return None, (
            f"RefMsgType {ref_type}, but {message.cl_ord_id} was a {KIND_MSG_TYPE[message.kind]}"
        )
    if message.status != OS.SENT:
        return None, f"{message.cl_ord_id} was never sent ({message.status})"
    return message, ""


def message_reject_apply_nested(
    *, broker: Broker, report: InboundReport, as_of: datetime
) -> ApplyResult:
    ref_type = report.ref_msg_type or report.extra.get("sent_msg_type", "")
    if ref_type and ref_type not in ORDER_MESSAGE_TYPES:
        return _other_message_rejected(broker=broker, report=report, ref_type=ref_type, as_of=as_of)
    message, why = _rejected_message(broker=broker, report=report)
    quarantine_record(
        broker=broker,
        reason="message_rejected",
        report=report,
        detail=f"{report.msg_type} refseq={report.ref_seq_num} reftype={ref_type or '?'} "
        f"text={report.text!r}",
        as_of=as_of,
    )
    if message is None:
        # Applied to nothing: a reject we cannot tie to exactly one message of ours must not
        # move any order. A person looks at it.
        exception_open(
            kind="unmatched_reject",
            ref=f"{broker.code}:{report.seq_epoch or '-'}:{report.ref_seq_num or '-'}:"
            f"{report.msg_type}:{report.business_ref_id or '-'}",
            source="fixgateway",
            summary=f"{broker.code}: a {'session' if report.msg_type == '3' else 'business'} "
            f"reject (RefSeqNum {report.ref_seq_num or '?'}, RefMsgType {ref_type or '?'}) "
            f"matches no order message: {why}",
            detail={
                "why": why,
                "ref_seq_num": report.ref_seq_num,
                "ref_msg_type": ref_type,
                "business_ref_id": report.business_ref_id,
                "tag": report.ref_tag_label,
                "reason": report.reject_reason_text,
                "text": report.text,
                "raw": report.raw[:2000],
            },
            broker_id=broker.pk,
            as_of=as_of,
        )
        return ApplyResult("quarantined", detail=f"unmatched_reject: {why}")
    report.cl_ord_id = message.cl_ord_id
    what = MSG_TYPE_NAMES.get(KIND_MSG_TYPE[message.kind], message.kind)
    report.extra["reject"] = reject_info(report, what=what)
    if message.kind == OutboxMessage.Kind.NEW:
        report.exec_type = "8"
        report.exec_id = f"REJ-{message.cl_ord_id}"
        report.text = report.extra["reject"]["text"][:500]
        return execution_report_apply_nested(broker=broker, report=report, as_of=as_of)
    return cancel_reject_apply_nested(broker=broker, report=report, as_of=as_of)


def _other_message_rejected(
    *, broker: Broker, report: InboundReport, ref_type: str, as_of: datetime
) -> ApplyResult:
    """A reject of a message that is about no order's terms (an OrderStatusRequest, a
    DontKnowTrade): recorded for Operations, and no order moves."""
    name = MSG_TYPE_NAMES.get(ref_type, f"35={ref_type}")
    if ref_type != "H":
        quarantine_record(
            broker=broker,
            reason="message_rejected",
            report=report,
            detail=f"{report.msg_type} of a {name}: {report.reject_reason_text} "
            f"{report.text}".strip(),
            as_of=as_of,
        )
    else:
        # Learned once: the broker is not asked again at every logon. The order asked about
        # stays unconfirmed for the trader.
        broker_status_requests_learned(
            broker=broker, status_requests=Broker.StatusRequests.REFUSED, as_of=as_of
        )
        # A status request names the order by its current ClOrdID.
        named = report.business_ref_id or report.extra.get("sent_cl_ord_id", "")
        asked = list(
            FixOrder.objects.filter(broker=broker, cl_ord_id=named).values_list("pk", flat=True)
        )
        if named and asked:
            unconfirmed_flag(
                broker=broker,
                fix_order_ids=asked,
                reason="the broker refused an OrderStatusRequest for it",
                as_of=as_of,
            )
        # One exception per broker (each refusal counts an occurrence), not a row per order.
        exception_open(
            kind=ExceptionKind.STATUS_REQUEST_REFUSED,
            ref=f"broker:{broker.code}",
            source="fixgateway",
            summary=f"{broker.code} refuses OrderStatusRequest: working orders are not "
            "reconciled with it at logon",
            detail={
                "reason": report.reject_reason_text,
                "text": report.text,
                "cl_ord_id": report.business_ref_id,
            },
            broker_id=broker.pk,
            as_of=as_of,
        )
    return ApplyResult(
        "applied" if ref_type == "H" else "quarantined", detail=f"reject of a {name}"
    )
