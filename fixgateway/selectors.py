"""Reading the FIX gateway's state (session table, outbox, quarantine, kill switches)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db.models import F, Q, QuerySet, Sum
from django.utils import timezone

from oms import money
from orders.models import Block

from . import fixmsg
from .models import (
    Broker,
    Execution,
    FixMessage,
    FixOrder,
    KillSwitch,
    OutboxMessage,
    SessionState,
)


def _silent(logged_on: bool, last_message_at, heartbeat_seconds: int, now) -> bool:
    return bool(
        logged_on
        and last_message_at is not None
        and now - last_message_at > timedelta(seconds=2 * heartbeat_seconds)
    )


def owner_stale_seconds() -> int:
    return int(getattr(settings, "OMS_FIX_OWNER_STALE_SECONDS", 3))


def _owner_alive(heartbeat_at, now) -> bool:
    return heartbeat_at is not None and now - heartbeat_at <= timedelta(
        seconds=owner_stale_seconds()
    )


_SESSION_FIELDS = (
    "id",
    "code",
    "fix_version",
    "heartbeat_seconds",
    "status_requests",
    "session_state__logged_on",
    "session_state__last_message_at",
    "session_state__owner",
    "session_state__owner_heartbeat_at",
    "session_state__updated_at",
    "session_state__next_sender_seq_num",
    "session_state__next_target_seq_num",
    "session_state__sequence_problem",
    "session_state__sequence_problem_at",
    "session_state__sequence_reset_requested_at",
)


def _session_status(row: dict, now) -> dict:
    """One broker's session as an operator reads it. "down" when no live process owns it (its
    heartbeat row is stale: a killed gateway writes nothing), when it is not logged on, or
    when the broker has been silent for two heartbeat intervals; "sequence_reset_required"
    when logons stopped on a counterparty's sequence reset until an operator acts."""
    heartbeat_at = row["session_state__owner_heartbeat_at"]
    alive = _owner_alive(heartbeat_at, now)
    reported_on = bool(row["session_state__logged_on"])
    silent = _silent(
        reported_on, row["session_state__last_message_at"], row["heartbeat_seconds"], now
    )
    logged_on = alive and reported_on and not silent
    problem = row["session_state__sequence_problem"] or ""
    if logged_on:
        status, reason = "up", ""
    elif problem:
        status, reason = "sequence_reset_required", problem
    elif heartbeat_at is None:
        status, reason = "down", "no gateway has owned this session"
    elif not alive:
        status, reason = "down", f"the gateway ({row['session_state__owner']}) stopped"
    elif silent:
        status, reason = "down", "nothing heard from the broker for two heartbeat intervals"
    else:
        status, reason = "down", "not logged on"
    return {
        "broker": row["code"],
        "broker_id": row["id"],
        "fix_version": row["fix_version"],
        "status": status,
        "reason": reason,
        "logged_on": logged_on,
        "heartbeat_overdue": silent,
        "owner": row["session_state__owner"] or "",
        "owner_alive": alive,
        "owner_heartbeat_at": heartbeat_at,
        "next_sender_seq_num": row["session_state__next_sender_seq_num"],
        "next_target_seq_num": row["session_state__next_target_seq_num"],
        "last_message_at": row["session_state__last_message_at"],
        "updated_at": row["session_state__updated_at"],
        "sequence_problem": problem,
        "sequence_problem_at": row["session_state__sequence_problem_at"],
        "sequence_reset_requested_at": row["session_state__sequence_reset_requested_at"],
        "status_requests": row["status_requests"],
    }


def session_statuses(*, broker_id: int | None = None) -> list[dict]:
    """Every active broker's FIX session (or one broker's), by code: "up", "down" or
    "sequence_reset_required", why, and the numbers behind it. One query; what /healthz, the
    blotter header and the session API show."""
    brokers = Broker.objects.filter(active=True)
    if broker_id is not None:
        brokers = Broker.objects.filter(pk=broker_id)
    now = timezone.now()
    return [_session_status(r, now) for r in brokers.order_by("code").values(*_SESSION_FIELDS)]


def broker_session_up(*, broker_id: int) -> bool:
    """Whether the broker's session is up (as session_statuses shows it): what routing tells
    the trader ("queued: session down" otherwise). One query."""
    rows = session_statuses(broker_id=broker_id)
    return bool(rows) and rows[0]["logged_on"]


def broker_sessions() -> list[dict]:
    """One row per active broker (session_statuses): the blotter's session list."""
    return session_statuses()


def unconfirmed_orders() -> list[dict]:
    """Blocks the broker may have lost (it reset its session, or a status request failed),
    oldest first, for the trader's decision: cancel locally or resend. One query."""
    rows = (
        FixOrder.objects.filter(unconfirmed_since__isnull=False)
        .order_by("unconfirmed_since", "pk")
        .values(
            "block_id",
            "cl_ord_id",
            "broker_order_id",
            "unconfirmed_since",
            "unconfirmed_reason",
            "broker__code",
            "block__status",
            "block__side",
            "block__quantity",
            "block__cum_qty",
            "block__security__symbol",
        )
    )
    return [
        {
            "block_id": r["block_id"],
            "cl_ord_id": r["cl_ord_id"],
            "broker_order_id": r["broker_order_id"],
            "broker": r["broker__code"],
            "symbol": r["block__security__symbol"],
            "side": r["block__side"],
            "status": r["block__status"],
            "quantity": decimal_text(r["block__quantity"]),
            "cum_qty": decimal_text(r["block__cum_qty"]),
            "leaves_qty": decimal_text(r["block__quantity"] - r["block__cum_qty"]),
            "unconfirmed_since": r["unconfirmed_since"],
            "reason": r["unconfirmed_reason"],
        }
        for r in rows
    ]


def decimal_text(value: Decimal | None) -> str | None:
    """A quantity or price as the API writes it: "100", "150.25" (None stays None)."""
    return None if value is None else money.decimal_text(value)


def outbox_unsent(*, broker_id: int) -> QuerySet[OutboxMessage]:
    return OutboxMessage.objects.filter(broker_id=broker_id, sent_at__isnull=True).order_by("id")


# Blocks a broker should still be working (once their NewOrderSingle has left).
WORKING_AT_BROKER = (
    Block.Status.ROUTED,
    Block.Status.WORKING,
    Block.Status.PARTIALLY_FILLED,
    Block.Status.PENDING_CANCEL,
    Block.Status.PENDING_REPLACE,
    Block.Status.DONE_FOR_DAY,
)


def fix_orders_working(*, broker_id: int) -> QuerySet[FixOrder]:
    """Orders the broker should still be working: asked about on every logon."""
    return (
        FixOrder.objects.filter(
            broker_id=broker_id,
            block__status__in=WORKING_AT_BROKER,
            messages__sent_at__isnull=False,
        )
        .distinct()
        .select_related("block", "block__security")
        .order_by("pk")
    )


def kill_switches_engaged() -> QuerySet[KillSwitch]:
    return KillSwitch.objects.filter(released_at__isnull=True).order_by("engaged_at")


_SCOPE_LABELS = dict(KillSwitch.Scope.choices)


def kill_switch_scopes() -> list[dict]:
    """Every engaged kill switch, oldest first, as the blotter header shows them: what it
    stops ("Broker SIMT", "Everything"), since when and by whom. One query."""
    rows = kill_switches_engaged().values(
        "id", "scope", "value", "engaged_at", "engaged_by__username"
    )
    return [
        {
            "id": r["id"],
            "scope": r["scope"],
            "value": r["value"],
            "label": f"{_SCOPE_LABELS[r['scope']]} {r['value']}".strip(),
            "engaged_at": r["engaged_at"],
            "engaged_by": r["engaged_by__username"] or "",
        }
        for r in rows
    ]


def kill_switch_history(*, limit: int = 100) -> list[dict]:
    """The latest kill switches, engaged or released, newest first (one query)."""
    rows = KillSwitch.objects.order_by("-engaged_at", "-id").values(
        "id",
        "scope",
        "value",
        "engaged_at",
        "engaged_by__username",
        "released_at",
        "released_by__username",
        "release_reason",
    )[:limit]
    return [
        {
            "id": r["id"],
            "scope": r["scope"],
            "value": r["value"],
            "label": f"{_SCOPE_LABELS[r['scope']]} {r['value']}".strip(),
            "engaged": r["released_at"] is None,
            "engaged_at": r["engaged_at"],
            "engaged_by": r["engaged_by__username"] or "",
            "released_at": r["released_at"],
            "released_by": r["released_by__username"] or "",
            "release_reason": r["release_reason"],
        }
        for r in rows
    ]


def held_orders() -> list[dict]:
    """NewOrderSingles held for a trader (queued longer than their broker allows), oldest
    first: the block, the broker, what it asks for and since when it waits. One query."""
    rows = (
        OutboxMessage.objects.filter(status=OutboxMessage.Status.HELD)
        .order_by("created_at", "id")
        .values(
            "cl_ord_id",
            "created_at",
            "held_at",
            "payload",
            "broker__code",
            "fix_order__block_id",
        )
    )
    return [
        {
            "block_id": r["fix_order__block_id"],
            "cl_ord_id": r["cl_ord_id"],
            "broker": r["broker__code"],
            "symbol": r["payload"].get("symbol"),
            "side": r["payload"].get("side"),
            "quantity": r["payload"].get("quantity"),
            "order_type": r["payload"].get("order_type"),
            "limit_price": r["payload"].get("limit_price"),
            "routed_at": r["created_at"],
            "held_at": r["held_at"],
        }
        for r in rows
    ]


@dataclass(frozen=True)
class InboundMark:
    """Where a batch ends in the broker's inbound numbering: QuickFIX's store (by its creation
    time) and the sequence number of the batch's last message."""

    store_created: str
    seq_num: int


def inbound_mark(*, broker_id: int) -> InboundMark | None:
    row = (
        SessionState.objects.filter(broker_id=broker_id)
        .values_list("inbound_store_created", "inbound_applied_seq_num")
        .first()
    )
    if row is None or not row[0]:
        return None
    return InboundMark(store_created=row[0], seq_num=row[1])


def executed_by_block() -> dict[int, tuple[Decimal, Decimal]]:
    """Each block's executed quantity and value (quantity x price) from the applied trades and
    corrections the brokers sent: what the booking ledger's street fills must add up to."""
    rows = (
        Execution.objects.filter(state=Execution.State.APPLIED, exec_type__in=["F", "1", "2", "G"])
        .values("fix_order__block_id")
        .annotate(quantity=Sum("last_qty"), value=Sum(F("last_qty") * F("last_px")))
    )
    return {r["fix_order__block_id"]: (r["quantity"], r["value"]) for r in rows}


# --- The FIX message monitor --------------------------------------------------------------------

# The application messages the monitor can be asked about (35=...), and what they are called.
MONITORED_MSG_TYPES = {
    **fixmsg.MSG_TYPE_NAMES,
    "8": "ExecutionReport",
    "9": "OrderCancelReject",
    "3": "Reject",
    "j": "BusinessMessageReject",
}


def fix_messages(
    *,
    broker_id: int | None = None,
    direction: str = "",
    cl_ord_id: str = "",
    order_id: str = "",
    exec_id: str = "",
    msg_type: str = "",
    since: datetime | None = None,
    until: datetime | None = None,
) -> QuerySet[FixMessage]:
    """Messages sent and received, newest first. cl_ord_id matches the ClOrdID or the
    OrigClOrdID (a cancel names the order it cancels by the latter); since is inclusive,
    until exclusive."""
    qs = FixMessage.objects.select_related("broker")
    if broker_id is not None:
        qs = qs.filter(broker_id=broker_id)
    if direction:
        qs = qs.filter(direction=direction)
    if cl_ord_id:
        qs = qs.filter(Q(cl_ord_id=cl_ord_id) | Q(orig_cl_ord_id=cl_ord_id))
    if order_id:
        qs = qs.filter(order_id=order_id)
    if exec_id:
        qs = qs.filter(exec_id=exec_id)
    if msg_type:
        qs = qs.filter(msg_type=msg_type)
    if since:
        qs = qs.filter(at__gte=since)
    if until:
        qs = qs.filter(at__lt=until)
    return qs.order_by("-at", "-id")


def fix_message_fields(raw: str, *, begin_string: str = "") -> list[dict]:
    """A message's fields in wire order, each with its name from the QuickFIX data dictionary
    of the message's own version (a broker's own tag has none) and, for an enumerated value,
    the value's name: [{"tag": 35, "name": "MsgType", "value": "D", "meaning": "ORDER_SINGLE"}]."""
    fields = []
    for part in raw.split("|"):
        tag, sep, value = part.partition("=")
        if not sep or not tag.isdigit():
            continue
        number = int(tag)
        if number == 8 and not begin_string:
            begin_string = value
        fields.append(
            {
                "tag": number,
                "name": fixmsg.field_name(number, begin_string or "FIX.4.4"),
                "value": value,
                "meaning": fixmsg.value_name(number, value, begin_string or "FIX.4.4"),
            }
        )
    return fields


def fix_message_row(message: FixMessage, *, with_fields: bool = True) -> dict:
    row = {
        "id": message.pk,
        "broker": message.broker.code,
        "direction": message.direction,
        "msg_type": message.msg_type,
        "msg_type_name": MONITORED_MSG_TYPES.get(message.msg_type, ""),
        "seq_num": message.seq_num,
        "cl_ord_id": message.cl_ord_id,
        "orig_cl_ord_id": message.orig_cl_ord_id,
        "order_id": message.order_id,
        "exec_id": message.exec_id,
        "at": message.at,
        "raw": message.raw,
    }
    if with_fields:
        row["fields"] = fix_message_fields(message.raw, begin_string=message.broker.fix_version)
    return row


# --- A block as the broker knows it ---------------------------------------------------------


def block_fix_history(*, block_id: int) -> dict:
    """What the FIX side knows of a block: its ClOrdIDs (the NewOrderSingle's and every
    cancel's and replace's, with where each is in the outbox), the broker's OrderID, the last
    reject with its tag and field name, the executions, and every message about it, oldest
    first. Empty lists for a block never routed. Four queries."""
    fix_order = (
        FixOrder.objects.filter(block_id=block_id)
        .values("id", "broker_id", "cl_ord_id", "broker_order_id", "last_reject")
        .first()
    )
    if fix_order is None:
        return {
            "cl_ord_id": "",
            "broker_order_id": "",
            "last_reject": None,
            "cl_ord_ids": [],
            "executions": [],
            "messages": [],
        }
    cl_ord_ids = list(
        OutboxMessage.objects.filter(fix_order_id=fix_order["id"])
        .order_by("id")
        .values("kind", "cl_ord_id", "orig_cl_ord_id", "status", "created_at", "sent_at")
    )
    executions = list(
        Execution.objects.filter(fix_order_id=fix_order["id"])
        .order_by("received_at", "id")
        .values(
            "exec_id",
            "exec_type",
            "ord_status",
            "cl_ord_id",
            "last_qty",
            "last_px",
            "cum_qty",
            "avg_px",
            "state",
            "received_at",
        )
    )
    ids = {fix_order["cl_ord_id"], *(r["cl_ord_id"] for r in cl_ord_ids)}
    messages = FixMessage.objects.filter(broker_id=fix_order["broker_id"]).filter(
        Q(cl_ord_id__in=ids) | Q(orig_cl_ord_id__in=ids)
    )
    return {
        "cl_ord_id": fix_order["cl_ord_id"],
        "broker_order_id": fix_order["broker_order_id"],
        "last_reject": fix_order["last_reject"] or None,
        "cl_ord_ids": cl_ord_ids,
        "executions": executions,
        "messages": [
            fix_message_row(m) for m in messages.select_related("broker").order_by("at", "id")[:500]
        ],
    }
