"""FIX sessions: state, sequence numbers and their epochs (refusals, resets), what a broker
answers to status requests, orders left unconfirmed after a reconnect, and the periodic check
for orders the broker never acknowledged.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import DurationField, Exists, ExpressionWrapper, F, OuterRef

from audit.services import audit_record
from oms.bulk_rows import rows_update
from oms.db import retry_on_conflict
from oms.errors import DomainError, NotFound
from oms.models import ExceptionKind, OpsException
from oms.services import exception_open, exceptions_resolve_for
from orders.models import Block

from .models import Broker, Execution, FixOrder, OutboxMessage, SessionState
from .outbound import OS, push_block_orders, require_desk, wake_sender_on_commit
from .selectors import WORKING_AT_BROKER, fix_orders_working
from .selectors import decimal_text as _dec

alerts = logging.getLogger("fixgateway.alerts")


SESSION_SEQUENCE = ExceptionKind.SESSION_SEQUENCE
UNCONFIRMED_AT_BROKER = ExceptionKind.UNCONFIRMED_AT_BROKER


def session_sequence_refused(*, broker: Broker, text: str, as_of: datetime) -> None:
    """The counterparty's numbering does not fit ours ("MsgSeqNum too low": it restarted with
    a fresh store, or we did): QuickFIX would refuse every logon until both sides agree. The
    owner stops logging on; the session shows "sequence_reset_required" until an operator
    resets the sequence numbers (session_sequence_reset_request). For Operations too
    (idempotent: one open exception per broker, an occurrence per refusal)."""
    text = text[:300]
    with transaction.atomic():
        SessionState.objects.update_or_create(
            broker=broker, defaults={"sequence_problem": text, "sequence_problem_at": as_of}
        )
        exception_open(
            kind=SESSION_SEQUENCE,
            ref=f"broker:{broker.code}",
            source="fixgateway",
            summary=f"{broker.code} restarted its sequence numbers ({text}): logons stopped "
            "until an operator resets the session's sequence numbers (or ResetOnLogon=Y in its "
            "extra_config session)",
            detail={"text": text},
            broker_id=broker.pk,
            as_of=as_of,
        )


def session_sequence_resolved(*, broker: Broker, as_of: datetime) -> None:
    with transaction.atomic():
        SessionState.objects.filter(broker=broker).exclude(sequence_problem="").update(
            sequence_problem="", sequence_problem_at=None
        )
        exceptions_resolve_for(
            kind=SESSION_SEQUENCE,
            ref=f"broker:{broker.code}",
            note="The session logged on again.",
            as_of=as_of,
        )


@retry_on_conflict(durable=True)
def session_sequence_reset_request(
    *,
    broker_id: int,
    reason: str,
    actor: Any,
    as_of: datetime,
    next_sender_seq_num: int | None = None,
    next_target_seq_num: int | None = None,
) -> dict:
    """An operator resets a session's sequence numbers (after agreeing it with the broker):
    the owning gateway starts a new store (both numbers at 1, or at the ones given), a new
    sequence epoch, and logs on again. Audited; carried out by the owner after commit."""
    require_desk(actor)
    reason = " ".join((reason or "").split())[:500]
    if not reason:
        raise DomainError("Say why the sequence numbers are reset.", code="reason_required")
    for name, value in (
        ("next_sender_seq_num", next_sender_seq_num),
        ("next_target_seq_num", next_target_seq_num),
    ):
        if value is not None and value < 1:
            raise DomainError(f"{name} must be 1 or more.", code="invalid")
    broker = Broker.objects.filter(pk=broker_id).first()
    if broker is None:
        raise NotFound(f"Broker {broker_id} does not exist.")
    state, _ = SessionState.objects.select_for_update().get_or_create(broker=broker)
    before = {
        "next_sender_seq_num": state.next_sender_seq_num,
        "next_target_seq_num": state.next_target_seq_num,
        "sequence_problem": state.sequence_problem,
    }
    state.sequence_reset_requested_at = as_of
    state.sequence_reset_next_sender = next_sender_seq_num
    state.sequence_reset_next_target = next_target_seq_num
    state.save(
        update_fields=[
            "sequence_reset_requested_at",
            "sequence_reset_next_sender",
            "sequence_reset_next_target",
        ]
    )
    after = {
        "next_sender_seq_num": next_sender_seq_num or 1,
        "next_target_seq_num": next_target_seq_num or 1,
        "reason": reason,
    }
    audit_record(
        actor=actor,
        action="fix.session_sequence_reset",
        obj=broker,
        occurred_at=as_of,
        before=before,
        after=after,
    )
    wake_sender_on_commit(broker.pk, what=SESSION_RESET_NOTICE)
    return {"broker": broker.code, "requested_at": as_of, **after}


SESSION_RESET_NOTICE = "session"


@dataclass(frozen=True)
class SequenceReset:
    next_sender_seq_num: int | None
    next_target_seq_num: int | None


@retry_on_conflict(durable=True)
def session_sequence_reset_take(*, broker_id: int, as_of: datetime) -> SequenceReset | None:
    """The owner takes the operator's pending reset (once), to carry it out: the session's
    logons may start again. None when nothing is pending."""
    state = (
        SessionState.objects.select_for_update(of=("self",))
        .select_related("broker")
        .filter(broker_id=broker_id, sequence_reset_requested_at__isnull=False)
        .first()
    )
    if state is None:
        return None
    reset = SequenceReset(state.sequence_reset_next_sender, state.sequence_reset_next_target)
    state.sequence_reset_requested_at = None
    state.sequence_reset_next_sender = state.sequence_reset_next_target = None
    state.sequence_problem = ""
    state.sequence_problem_at = None
    state.updated_at = as_of
    state.save()
    # The operator acted on it; a reset that does not cure it opens a new one.
    exceptions_resolve_for(
        kind=SESSION_SEQUENCE,
        ref=f"broker:{state.broker.code}",
        note="The sequence numbers were reset by an operator.",
        as_of=as_of,
    )
    return reset


def outbox_requeue_unpersisted(*, broker: Broker, seq_epoch: str, next_sender_seq_num: int) -> int:
    """Messages recorded as sent (toApp) in this store's epoch at a MsgSeqNum the store has
    not reached: QuickFIX never stored them, so they never left. Queued again (start-up only,
    by the session's owner, before the engine runs)."""
    with transaction.atomic():
        rows = OutboxMessage.objects.select_for_update().filter(
            broker=broker,
            status=OS.SENT,
            sent_seq_epoch=seq_epoch,
            sent_seq_num__gte=next_sender_seq_num,
        )
        ids = list(rows.values_list("pk", flat=True))
        if not ids:
            return 0
        OutboxMessage.objects.filter(pk__in=ids).update(
            status=OS.QUEUED, sent_at=None, sent_seq_num=None, sent_seq_epoch=""
        )
        FixOrder.objects.filter(
            messages__pk__in=ids, messages__kind=OutboxMessage.Kind.NEW, outbox_state=""
        ).update(outbox_state="queued")
    return len(ids)


def session_state_update(
    *,
    broker_id: int,
    as_of: datetime,
    logged_on: bool | None = None,
    next_sender_seq_num: int | None = None,
    next_target_seq_num: int | None = None,
    last_message_at: datetime | None = None,
    owner: str | None = None,
    heartbeat: bool = False,
) -> None:
    """What the session's owner sees, written about every second (`heartbeat` also renews
    the owner's heartbeat: readers take a stale one for a dead owner). One UPDATE; the row
    is created the first time."""
    values: dict[str, Any] = {"updated_at": as_of}
    if heartbeat:
        values["owner_heartbeat_at"] = as_of
    for name, value in (
        ("logged_on", logged_on),
        ("next_sender_seq_num", next_sender_seq_num),
        ("next_target_seq_num", next_target_seq_num),
        ("last_message_at", last_message_at),
        ("owner", owner),
    ):
        if value is not None:
            values[name] = value
    if not SessionState.objects.filter(broker_id=broker_id).update(**values):
        SessionState.objects.update_or_create(broker_id=broker_id, defaults=values)


def broker_status_requests_learned(
    *, broker: Broker, status_requests: str, as_of: datetime
) -> bool:
    """Remember whether the broker answers OrderStatusRequest (one answer or one refusal is
    enough). Compare-and-swap: True, and audited, only when it changed."""
    if broker.status_requests == status_requests:
        return False
    changed = (
        Broker.objects.filter(pk=broker.pk)
        .exclude(status_requests=status_requests)
        .update(status_requests=status_requests, status_requests_learned_at=as_of)
    )
    before = broker.status_requests
    broker.status_requests = status_requests
    if changed:
        audit_record(
            action="fix.broker_status_requests",
            obj=broker,
            occurred_at=as_of,
            before={"status_requests": before},
            after={"status_requests": status_requests},
        )
    return bool(changed)


def unconfirmed_flag(
    *, broker: Broker, fix_order_ids: list[int], reason: str, as_of: datetime
) -> int:
    """Flag working orders the broker cannot confirm ("unconfirmed at broker" on the blotter)
    and open one exception per block for the trader: cancel locally or resend. Blocks no
    longer working, and orders flagged already, are left alone. Returns how many it flagged."""
    with transaction.atomic():
        block_ids = FixOrder.objects.filter(pk__in=fix_order_ids).values("block_id")
        blocks = list(
            Block.objects.select_for_update(of=("self",))
            .filter(pk__in=block_ids, status__in=WORKING_AT_BROKER)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        fix_orders = list(
            FixOrder.objects.select_for_update()
            .filter(block_id__in=blocks, unconfirmed_since__isnull=True)
            .order_by("pk")
        )
        for fix_order in fix_orders:
            fix_order.unconfirmed_since = as_of
            fix_order.unconfirmed_reason = reason[:200]
            exception_open(
                kind=UNCONFIRMED_AT_BROKER,
                ref=f"block:{fix_order.block_id}",
                source="fixgateway",
                summary=f"{broker.code} cannot confirm block {fix_order.block_id} "
                f"({fix_order.cl_ord_id}): {reason}. Cancel it locally or resend it.",
                detail={"cl_ord_id": fix_order.cl_ord_id, "reason": reason},
                block_id=fix_order.block_id,
                broker_id=broker.pk,
                as_of=as_of,
            )
            push_block_orders(fix_order.block_id)
        rows_update(fix_orders, ["unconfirmed_since", "unconfirmed_reason"])
    if fix_orders:
        alerts.warning("%s: %d working orders unconfirmed: %s", broker, len(fix_orders), reason)
    return len(fix_orders)


def unconfirmed_clear(
    *, fix_order: FixOrder, as_of: datetime, note: str, actor: Any = None
) -> None:
    fix_order.unconfirmed_since = None
    fix_order.unconfirmed_reason = ""
    fix_order.save(update_fields=["unconfirmed_since", "unconfirmed_reason"])
    exceptions_resolve_for(
        kind=UNCONFIRMED_AT_BROKER,
        ref=f"block:{fix_order.block_id}",
        note=note,
        as_of=as_of,
        actor=actor,
    )
    push_block_orders(fix_order.block_id)


def session_logon_reconcile(*, broker_id: int, counterparty_reset: bool, as_of: datetime) -> bool:
    """After a logon: whether to ask the broker the status of its working orders. A broker
    known to refuse OrderStatusRequest is not asked (nor quarantined for) at every logon;
    after a reset of the numbering (nothing lost in between is resent) its working orders are
    flagged unconfirmed instead, for the trader."""
    broker = Broker.objects.get(pk=broker_id)
    if broker.status_requests != Broker.StatusRequests.REFUSED:
        return True
    if counterparty_reset:
        unconfirmed_flag(
            broker=broker,
            fix_order_ids=list(
                fix_orders_working(broker_id=broker_id).values_list("pk", flat=True)
            ),
            reason="the session's sequence numbers were reset and the broker does not answer "
            "status requests",
            as_of=as_of,
        )
    return False


# A block in one of these no longer waits for the broker's word on its NewOrderSingle.
_ACK_NOT_AWAITED = (
    Block.Status.FILLED,
    Block.Status.CANCELLED,
    Block.Status.REJECTED,
    Block.Status.EXPIRED,
    Block.Status.DONE_FOR_DAY,
)
UNACKNOWLEDGED = ExceptionKind.UNACKNOWLEDGED_ORDER


def _unacknowledged_ref(block_id: int) -> str:
    return f"block:{block_id}"


def unacknowledged_orders_check(*, as_of: datetime) -> dict[str, int]:
    """The periodic check (Celery beat): a NewOrderSingle sent longer ago than its broker's
    ack_timeout_seconds with no ExecutionReport at all opens an `unacknowledged_order`
    exception for its block; one that has been answered since (or whose block no longer
    waits: rejected by a session reject, cancelled...) is resolved automatically. Two
    queries when nothing changes."""
    answered = Execution.objects.filter(fix_order_id=OuterRef("fix_order_id"))
    already_open = OpsException.objects.filter(
        kind=UNACKNOWLEDGED, block_id=OuterRef("fix_order__block_id"), resolved_at__isnull=True
    )
    late = (
        OutboxMessage.objects.filter(kind=OutboxMessage.Kind.NEW, status=OS.SENT)
        .exclude(fix_order__block__status__in=_ACK_NOT_AWAITED)
        .alias(
            deadline=F("sent_at")
            + ExpressionWrapper(
                F("broker__ack_timeout_seconds") * timedelta(seconds=1),
                output_field=DurationField(),
            )
        )
        .filter(deadline__lte=as_of)
        .filter(~Exists(answered), ~Exists(already_open))
        .order_by("sent_at", "id")
        .values(
            "cl_ord_id",
            "sent_at",
            "broker_id",
            "broker__code",
            "broker__ack_timeout_seconds",
            "fix_order__block_id",
            "fix_order__block__side",
            "fix_order__block__quantity",
            "fix_order__block__security__symbol",
        )
    )
    stale = list(
        OpsException.objects.filter(kind=UNACKNOWLEDGED, resolved_at__isnull=True)
        .filter(
            Exists(Execution.objects.filter(fix_order__block_id=OuterRef("block_id")))
            | Exists(Block.objects.filter(pk=OuterRef("block_id"), status__in=_ACK_NOT_AWAITED))
        )
        .order_by("pk")
        .values_list("ref", flat=True)
    )
    opened = 0
    with transaction.atomic():
        for row in late:
            block_id = row["fix_order__block_id"]
            waited = int((as_of - row["sent_at"]).total_seconds())
            exception_open(
                kind=UNACKNOWLEDGED,
                ref=_unacknowledged_ref(block_id),
                summary=(
                    f"Block {block_id} ({row['fix_order__block__side']} "
                    f"{_dec(row['fix_order__block__quantity'])} "
                    f"{row['fix_order__block__security__symbol']}): {row['broker__code']} has "
                    f"not acknowledged ClOrdID {row['cl_ord_id']} sent {waited} s ago "
                    f"(limit {row['broker__ack_timeout_seconds']} s)."
                ),
                detail={
                    "cl_ord_id": row["cl_ord_id"],
                    "broker": row["broker__code"],
                    "sent_at": row["sent_at"],
                    "ack_timeout_seconds": row["broker__ack_timeout_seconds"],
                },
                source="fixgateway",
                block_id=block_id,
                broker_id=row["broker_id"],
                as_of=as_of,
            )
            opened += 1
        for ref in stale:
            exceptions_resolve_for(
                kind=UNACKNOWLEDGED,
                ref=ref,
                note="The broker answered the order (or it no longer waits for an answer).",
                as_of=as_of,
            )
    return {"opened": opened, "resolved": len(stale)}
