"""The FIX gateway's writes: the outbox (routing, cancel, replace), execution reports applied
exactly once, quarantine, session state and the kill switch.

Nothing here knows QuickFIX: the application (fixgateway.application) turns messages into
`InboundReport`s and outbox rows into messages. Each inbound report is applied in one
transaction; the block is locked first, then its FixOrder, then (inside the allocation and
order services) its orders in pk order.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, transaction
from django.db.models import (
    Case,
    DurationField,
    Exists,
    ExpressionWrapper,
    F,
    IntegerField,
    OuterRef,
    Q,
    Subquery,
    Sum,
    Value,
    When,
)
from django.db.models.sql import UpdateQuery
from django.utils import timezone

from audit.services import audit_record, bulk_insert
from oms.bulk_rows import rows_insert, rows_update
from oms.db import in_transaction, retry_on_conflict
from oms.errors import Conflict, DomainError, NotFound, NotPermitted
from oms.models import ExceptionKind, OpsException
from oms.roles import ADMIN, TRADER, has_role
from oms.services import exception_open, exceptions_resolve_for
from orders.broadcast import order_changed_on_commit
from orders.lifecycle import AT_BROKER, OrderStatus, can_transition
from orders.models import Block, Order
from orders.services import order_transition, orders_lock

from .algo import algo_fields
from .models import (
    Broker,
    Execution,
    FixMessage,
    FixOrder,
    KillSwitch,
    OutboxMessage,
    Quarantine,
    SessionState,
)
from .selectors import WORKING_AT_BROKER, InboundMark, fix_orders_working
from .selectors import decimal_text as _dec

log = logging.getLogger("fixgateway")
alerts = logging.getLogger("fixgateway.alerts")

NOTIFY_CHANNEL = "fix_outbox"
ZERO = Decimal(0)
BS = Block.Status
# Blocks the broker is still working: what a cancel can reach and a kill switch must stop.
BLOCK_LIVE = frozenset(
    {BS.ROUTED, BS.WORKING, BS.PARTIALLY_FILLED, BS.DONE_FOR_DAY, BS.PENDING_REPLACE}
)
BLOCK_FINAL = frozenset({BS.FILLED, BS.CANCELLED, BS.REJECTED, BS.EXPIRED})
OS = OutboxMessage.Status
# A NewOrderSingle in one of these has not left: cancelling the block withdraws it.
NOT_SENT = (OS.QUEUED, OS.HELD)
KIND_MSG_TYPE = {"NEW": "D", "CANCEL": "F", "REPLACE": "G"}
MSG_TYPE_NAMES = {
    "D": "NewOrderSingle",
    "F": "OrderCancelRequest",
    "G": "OrderCancelReplaceRequest",
    "H": "OrderStatusRequest",
    "Q": "DontKnowTrade",
}
HELD_ORDER = "held_order"


# ---------------------------------------------------------------------------------------------
# Outbound: the outbox
# ---------------------------------------------------------------------------------------------


def _clordid_prefix() -> str:
    return getattr(settings, "OMS_FIX_CLORDID_PREFIX", "OMS")


def _wake_sender_on_commit(broker_id: int, what: str = "") -> None:
    """After commit, wake the session owner: the outbox has work (or, with `what`, something
    else: the payload is "<what>:<broker id>")."""
    payload = f"{what}:{broker_id}" if what else str(broker_id)

    def notify() -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, %s)", [NOTIFY_CHANNEL, payload])

    transaction.on_commit(notify)


def _block_lock(block_id: int) -> Block:
    return Block.objects.select_for_update(of=("self",)).get(pk=block_id)


def _fix_order_lock(block: Block) -> FixOrder:
    try:
        return FixOrder.objects.select_for_update().select_related("broker").get(block=block)
    except FixOrder.DoesNotExist:
        raise Conflict(f"Block {block.pk} has not been routed.", code="not_routed") from None


def _next_cl_ord_id(fix_order: FixOrder) -> str:
    fix_order.next_suffix += 1
    return f"{_clordid_prefix()}-B{fix_order.block_id}-{fix_order.next_suffix}"


def _block_accounts(block: Block) -> set[str]:
    return set(block.orders.values_list("account__code", flat=True))


def kill_switch_blocking(*, block: Block) -> KillSwitch | None:
    """The engaged kill switch that covers this block, if any."""
    scope_q = Q(scope=KillSwitch.Scope.ALL)
    if block.broker_id:
        scope_q |= Q(scope=KillSwitch.Scope.BROKER, value=block.broker.code)
    scope_q |= Q(scope=KillSwitch.Scope.ACCOUNT, value__in=_block_accounts(block))
    scope_q |= Q(scope=KillSwitch.Scope.TRADER, value=block.created_by.get_username())
    return KillSwitch.objects.filter(scope_q, released_at__isnull=True).first()


def _new_order_payload(*, block: Block, broker: Broker, quantity: Decimal) -> dict[str, Any]:
    """A NewOrderSingle's fields for the outbox. Raises AlgoNotSupported when the algo does
    not fit the broker's FIX version and tag map."""
    algo = algo_fields(
        broker_code=broker.code,
        fix_version=broker.fix_version,
        extra_config=broker.extra_config,
        strategy=block.strategy or "",
        params=block.strategy_params or {},
    )
    return {
        "symbol": block.security.symbol,
        "currency": block.security.currency,
        "side": block.side,
        "quantity": _dec(quantity),
        "order_type": block.order_type,
        "limit_price": _dec(block.limit_price),
        "stop_price": _dec(block.stop_price),
        "time_in_force": block.time_in_force,
        "expire_date": block.expire_date.isoformat() if block.expire_date else None,
        "strategy": block.strategy or "",
        "strategy_params": block.strategy_params or {},
        # Exactly the tags the broker takes for the algo, decided here (see fixgateway.algo).
        "algo_fields": [[tag, value] for tag, value in algo],
    }


def _kill_switch_refuse(block: Block) -> None:
    """Conflict (409) when an engaged kill switch covers the block: nothing may be sent."""
    switch = kill_switch_blocking(block=block)
    if switch is not None:
        raise Conflict(
            f"Routing is stopped by the kill switch ({switch.scope} {switch.value}).".strip(),
            code="kill_switch_engaged",
        )


def block_route_enqueue(*, block: Block, actor: Any, as_of: datetime) -> None:
    """Write the NewOrderSingle for a block into the outbox, in the caller's transaction.
    The algo instruction must fit the broker's FIX version and tag map, or nothing is written
    (AlgoNotSupported, a 400). It is sent after commit if the session is up; otherwise it
    waits, queued (`FixOrder.outbox_state`), and once older than the broker's
    max_queued_seconds it is held for a trader (`outbox_send_claim`)."""
    if block.broker_id is None:
        raise Conflict(f"Block {block.pk} has no broker.", code="no_broker")
    broker = block.broker
    if not broker.active:
        raise Conflict(f"Broker {broker.code} is not active.", code="broker_inactive")
    _kill_switch_refuse(block)
    if FixOrder.objects.filter(block=block).exists():
        raise Conflict(f"Block {block.pk} was routed already.", code="already_routed")
    payload = _new_order_payload(block=block, broker=broker, quantity=block.quantity)
    cl_ord_id = f"{_clordid_prefix()}-B{block.pk}-1"
    fix_order = FixOrder.objects.create(
        block=block, broker=broker, cl_ord_id=cl_ord_id, created_at=as_of, outbox_state="queued"
    )
    message = OutboxMessage.objects.create(
        broker=broker,
        fix_order=fix_order,
        kind=OutboxMessage.Kind.NEW,
        cl_ord_id=cl_ord_id,
        payload=payload,
        created_at=as_of,
    )
    audit_record(
        actor=actor,
        action="fix.order_enqueue",
        obj=block,
        occurred_at=as_of,
        after={"cl_ord_id": cl_ord_id, "broker": broker.code, "outbox": message.pk},
    )
    _wake_sender_on_commit(block.broker_id)


def _unsent_new(fix_order: FixOrder) -> OutboxMessage | None:
    """The block's NewOrderSingle, locked, if it has not left yet (nor been claimed by the
    sender); None otherwise. Never waits: a row the sender holds is on its way out."""
    return (
        OutboxMessage.objects.select_for_update(skip_locked=True)
        .filter(fix_order=fix_order, kind=OutboxMessage.Kind.NEW, status__in=NOT_SENT)
        .first()
    )


def _held_ref(block_id: int) -> str:
    return f"block:{block_id}"


def _withdraw_if_unsent(
    *, block: Block, fix_order: FixOrder, actor: Any, as_of: datetime, reason: str
) -> bool:
    """Cancel a routed block whose NewOrderSingle has not been sent: it is withdrawn from the
    outbox (nothing goes on the wire) and the block and its orders end CANCELLED at once.
    False when the order has left (or the sender is sending it): the caller asks the broker."""
    if block.status != BS.ROUTED:
        return False
    message = _unsent_new(fix_order)
    if message is None:
        return False
    was = message.status
    message.status = OS.WITHDRAWN
    message.save(update_fields=["status"])
    fix_order.outbox_state = "withdrawn"
    fix_order.save(update_fields=["outbox_state"])
    block.status = BS.CANCELLED
    block.save(update_fields=["status", "updated_at"])
    for order in _live_orders(block):
        if can_transition(order.status, OrderStatus.CANCELLED):
            order_transition(
                order=order,
                to_status=OrderStatus.CANCELLED,
                as_of=as_of,
                kind="withdrawn",
                actor=actor,
                details={"cl_ord_id": message.cl_ord_id, "reason": reason},
                extra_fields={"leaves_qty": ZERO},
            )
    audit_record(
        actor=actor,
        action="fix.order_withdraw",
        obj=block,
        occurred_at=as_of,
        before={"outbox": was},
        after={"outbox": OS.WITHDRAWN, "cl_ord_id": message.cl_ord_id, "reason": reason},
    )
    if was == OS.HELD:
        exceptions_resolve_for(
            kind=HELD_ORDER,
            ref=_held_ref(block.pk),
            note=f"Cancelled before it was sent ({reason}).",
            as_of=as_of,
            actor=actor if getattr(actor, "pk", None) else None,
        )
    return True


def _reduce_if_unsent(
    *,
    block: Block,
    fix_order: FixOrder,
    orders: list[Order],
    new_quantity: Decimal,
    actor: Any,
    as_of: datetime,
) -> bool:
    """Cancel some orders of a routed block whose NewOrderSingle has not been sent: the queued
    message and the block shrink by their quantity and the orders end CANCELLED at once."""
    if block.status != BS.ROUTED:
        return False
    message = _unsent_new(fix_order)
    if message is None:
        return False
    before = message.payload.get("quantity")
    message.payload = {**message.payload, "quantity": _dec(new_quantity)}
    message.save(update_fields=["payload"])
    block.quantity = new_quantity
    block.save(update_fields=["quantity", "updated_at"])
    for order in orders:
        order_transition(
            order=order,
            to_status=OrderStatus.CANCELLED,
            as_of=as_of,
            kind="withdrawn",
            actor=actor,
            details={"cl_ord_id": message.cl_ord_id, "reason": "cancelled before it was sent"},
            extra_fields={"leaves_qty": ZERO},
        )
    audit_record(
        actor=actor,
        action="fix.order_reduce_unsent",
        obj=block,
        occurred_at=as_of,
        before={"quantity": before},
        after={"quantity": _dec(new_quantity), "cancelled_orders": [o.pk for o in orders]},
    )
    _allocation().allocation_plan_fix(block=block, actor=actor, as_of=as_of)
    return True


def _orders_move(
    *, orders: list[Order], to_status: str, as_of: datetime, kind: str, actor: Any = None, **extra
) -> None:
    for order in orders:
        if order.status != to_status and can_transition(order.status, to_status):
            order_transition(
                order=order, to_status=to_status, as_of=as_of, kind=kind, actor=actor, **extra
            )


def _live_orders(block: Block) -> list[Order]:
    ids = list(block.orders.filter(status__in=AT_BROKER).values_list("pk", flat=True))
    return orders_lock(order_ids=ids)


def _enqueue_change(
    *,
    block: Block,
    fix_order: FixOrder,
    kind: str,
    actor: Any,
    as_of: datetime,
    values: dict[str, Any],
) -> OutboxMessage:
    if fix_order.pending_kind:
        raise Conflict(
            f"Block {block.pk} already has a {fix_order.pending_kind.lower()} waiting for the "
            "broker.",
            code="change_pending",
        )
    # The blotter may have moved the block to PENDING_* already, in this same transaction.
    if block.status not in BLOCK_LIVE | {BS.PENDING_CANCEL, BS.PENDING_REPLACE}:
        raise Conflict(f"Block {block.pk} is {block.status}: nothing to change.", code="not_live")
    cl_ord_id = _next_cl_ord_id(fix_order)
    payload = {
        "symbol": block.security.symbol,
        "side": block.side,
        "order_type": block.order_type,
        "quantity": _dec(block.quantity),
        "limit_price": _dec(block.limit_price),
        "stop_price": _dec(block.stop_price),
        "time_in_force": block.time_in_force,
        "expire_date": block.expire_date.isoformat() if block.expire_date else None,
        "broker_order_id": fix_order.broker_order_id,
    }
    for name in ("quantity", "limit_price", "time_in_force"):
        if values.get(name) is not None:
            payload[name] = values[name]
    message = OutboxMessage.objects.create(
        broker=fix_order.broker,
        fix_order=fix_order,
        kind=kind,
        cl_ord_id=cl_ord_id,
        orig_cl_ord_id=fix_order.cl_ord_id,
        payload=payload,
        created_at=as_of,
    )
    fix_order.pending_cl_ord_id = cl_ord_id
    fix_order.pending_kind = kind
    fix_order.pending_values = values
    fix_order.prior_status = block.status
    fix_order.save()
    target = BS.PENDING_CANCEL if kind == OutboxMessage.Kind.CANCEL else BS.PENDING_REPLACE
    block.status = target
    block.save(update_fields=["status", "updated_at"])
    audit_record(
        actor=actor,
        action=f"fix.{kind.lower()}_enqueue",
        obj=block,
        occurred_at=as_of,
        after={"cl_ord_id": cl_ord_id, "orig_cl_ord_id": fix_order.cl_ord_id, **values},
    )
    _wake_sender_on_commit(fix_order.broker_id)
    return message


def block_cancel_enqueue(*, block: Block, actor: Any, as_of: datetime) -> None:
    """Ask the broker to cancel the whole block; its orders wait in PENDING_CANCEL. A block
    whose NewOrderSingle has not been sent is withdrawn instead, and ends CANCELLED now."""
    block = _block_lock(block.pk)
    fix_order = _fix_order_lock(block)
    if _withdraw_if_unsent(
        block=block, fix_order=fix_order, actor=actor, as_of=as_of, reason="cancelled"
    ):
        return
    _enqueue_change(
        block=block,
        fix_order=fix_order,
        kind=OutboxMessage.Kind.CANCEL,
        actor=actor,
        as_of=as_of,
        values={},
    )
    _orders_move(
        orders=_live_orders(block),
        to_status=OrderStatus.PENDING_CANCEL,
        as_of=as_of,
        kind="cancel_requested",
        actor=actor,
    )


def _replace_values(
    *, quantity: Decimal | None, limit_price: Decimal | None, time_in_force: str | None
) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if quantity is not None:
        if quantity <= 0:
            raise DomainError("The new quantity must be positive.", code="invalid_quantity")
        values["quantity"] = _dec(quantity)
    if limit_price is not None:
        if limit_price <= 0:
            raise DomainError("The new limit price must be positive.", code="invalid_price")
        values["limit_price"] = _dec(limit_price)
    if time_in_force is not None:
        values["time_in_force"] = time_in_force
    if not values:
        raise DomainError("A replace must change something.", code="empty_replace")
    return values


def block_replace_enqueue(
    *,
    block: Block,
    actor: Any,
    as_of: datetime,
    quantity: Decimal | None = None,
    limit_price: Decimal | None = None,
    time_in_force: str | None = None,
    _order_updates: dict[str, Any] | None = None,
    _cancel_order_ids: list[int] | None = None,
) -> None:
    """Ask the broker to amend the block; it keeps working on the old terms until it agrees."""
    block = _block_lock(block.pk)
    fix_order = _fix_order_lock(block)
    values = _replace_values(
        quantity=quantity, limit_price=limit_price, time_in_force=time_in_force
    )
    if quantity is not None and quantity < block.cum_qty:
        raise Conflict(
            f"Block {block.pk} has {block.cum_qty} filled already: it cannot go to {quantity}.",
            code="below_filled",
        )
    if _order_updates:
        values["order_updates"] = _order_updates
    if _cancel_order_ids:
        values["cancel_order_ids"] = _cancel_order_ids
    _enqueue_change(
        block=block,
        fix_order=fix_order,
        kind=OutboxMessage.Kind.REPLACE,
        actor=actor,
        as_of=as_of,
        values=values,
    )
    cancelled = set(_cancel_order_ids or [])
    live = _live_orders(block)
    _orders_move(
        orders=[o for o in live if o.pk in cancelled],
        to_status=OrderStatus.PENDING_CANCEL,
        as_of=as_of,
        kind="cancel_requested",
        actor=actor,
    )
    _orders_move(
        orders=[o for o in live if o.pk not in cancelled],
        to_status=OrderStatus.PENDING_REPLACE,
        as_of=as_of,
        kind="replace_requested",
        actor=actor,
    )


def _routed_block_of(order: Order) -> Block:
    if order.block_id is None or not FixOrder.objects.filter(block_id=order.block_id).exists():
        raise Conflict(f"Order {order.pk} is not in a routed block.", code="not_routed")
    return _block_lock(order.block_id)


def _block_reduce_enqueue(
    *, block: Block, orders: list[Order], actor: Any, as_of: datetime
) -> None:
    """Cancel some of a block's orders: the block is replaced with their leaves taken off
    (a cancel when nothing would be left)."""
    leaves = sum((o.quantity - o.cum_qty for o in orders), ZERO)
    others_live = block.orders.filter(status__in=AT_BROKER).exclude(pk__in=[o.pk for o in orders])
    new_quantity = block.quantity - leaves
    if new_quantity > 0 and others_live.exists():
        fix_order = _fix_order_lock(block)
        if _reduce_if_unsent(
            block=block,
            fix_order=fix_order,
            orders=orders,
            new_quantity=new_quantity,
            actor=actor,
            as_of=as_of,
        ):
            return
    if not others_live.exists() or new_quantity <= block.cum_qty:
        if new_quantity <= block.cum_qty and others_live.exists():
            raise Conflict(
                "Cancelling these orders would leave the block below what it has filled.",
                code="below_filled",
            )
        block_cancel_enqueue(block=block, actor=actor, as_of=as_of)
        return
    block_replace_enqueue(
        block=block,
        actor=actor,
        as_of=as_of,
        quantity=new_quantity,
        _cancel_order_ids=sorted(o.pk for o in orders),
    )


def order_cancel_enqueue(*, order: Order, actor: Any, as_of: datetime) -> None:
    """Cancel one order of a routed block (the block is reduced by that order's leaves)."""
    block = _routed_block_of(order)
    # The order's leaves decide the block's reduction: what the block executed must be its
    # orders' first (a wide block's executions may wait for the booker).
    _allocation().block_book_due(block=block, as_of=as_of)
    (order,) = orders_lock(order_ids=[order.pk])
    if order.status not in AT_BROKER:
        raise Conflict(f"Order {order.pk} is {order.status}: nothing to cancel.", code="not_live")
    _block_reduce_enqueue(block=block, orders=[order], actor=actor, as_of=as_of)


def order_replace_enqueue(
    *,
    order: Order,
    actor: Any,
    as_of: datetime,
    quantity: Decimal | None = None,
    limit_price: Decimal | None = None,
    time_in_force: str | None = None,
) -> None:
    """Amend one order of a routed block. The quantity changes the block by the difference;
    price and time in force apply to the whole block, so only a block of one may change them."""
    block = _routed_block_of(order)
    # The order's leaves decide the block's reduction: what the block executed must be its
    # orders' first (a wide block's executions may wait for the booker).
    _allocation().block_book_due(block=block, as_of=as_of)
    (order,) = orders_lock(order_ids=[order.pk])
    if order.status not in AT_BROKER:
        raise Conflict(f"Order {order.pk} is {order.status}: nothing to amend.", code="not_live")
    alone = not block.orders.exclude(pk=order.pk).filter(status__in=AT_BROKER).exists()
    if (limit_price is not None or time_in_force is not None) and not alone:
        raise Conflict(
            "Price and time in force belong to the whole block; split the order out first.",
            code="shared_block_terms",
        )
    block_quantity = None
    updates: dict[str, Any] = {}
    if quantity is not None:
        if quantity < order.cum_qty:
            raise Conflict(
                f"Order {order.pk} has {order.cum_qty} filled already.", code="below_filled"
            )
        block_quantity = block.quantity + (quantity - order.quantity)
        updates[str(order.pk)] = {"quantity": _dec(quantity)}
    if limit_price is not None:
        updates.setdefault(str(order.pk), {})["limit_price"] = _dec(limit_price)
    block_replace_enqueue(
        block=block,
        actor=actor,
        as_of=as_of,
        quantity=block_quantity,
        limit_price=limit_price,
        time_in_force=time_in_force,
        _order_updates=updates or None,
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
        updated = _update_with_message(mark, values, row.values(broker_id=broker_id, at=as_of))
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
    _push_block_orders(fix_order.block_id)
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
        ref=_held_ref(fix_order.block_id),
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


def _push_block_orders(block_id: int) -> None:
    """The blotter rows show the block's send state: push its orders after commit (their
    version does not move; the grid takes a row of the same version)."""
    for order_id in Order.objects.filter(block_id=block_id).values_list("pk", flat=True):
        order_changed_on_commit(order_id)


def _require_desk(actor: Any) -> None:
    if not has_role(actor, TRADER, ADMIN):
        raise NotPermitted("Only traders and admins may do this.")


@retry_on_conflict(durable=True)
def held_order_release(*, block_id: int, actor: Any, as_of: datetime, note: str = "") -> dict:
    """A trader confirms a held NewOrderSingle: it is queued again and sent at once (it will
    not be held again). Audited; the `held_order` exception is resolved."""
    _require_desk(actor)
    block = Block.objects.select_for_update(of=("self",)).filter(pk=block_id).first()
    if block is None:
        raise NotFound(f"Block {block_id} does not exist.")
    fix_order = _fix_order_lock(block)
    _kill_switch_refuse(block)
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
    _push_block_orders(block.pk)
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
        ref=_held_ref(block.pk),
        note=f"Released by {actor.get_username()}" + (f": {note}" if note else "."),
        as_of=as_of,
        actor=actor,
    )
    _wake_sender_on_commit(fix_order.broker_id)
    return {"block": block.pk, "cl_ord_id": message.cl_ord_id, "outbox": OS.QUEUED}


@retry_on_conflict(durable=True)
def held_order_cancel(*, block_id: int, actor: Any, as_of: datetime) -> dict:
    """A trader refuses a held NewOrderSingle: withdrawn, never sent; the block and its
    orders end CANCELLED (audited as fix.order_withdraw)."""
    _require_desk(actor)
    block = Block.objects.select_for_update(of=("self",)).filter(pk=block_id).first()
    if block is None:
        raise NotFound(f"Block {block_id} does not exist.")
    fix_order = _fix_order_lock(block)
    held = OutboxMessage.objects.filter(
        fix_order=fix_order, kind=OutboxMessage.Kind.NEW, status=OS.HELD
    ).exists()
    if not held or not _withdraw_if_unsent(
        block=block, fix_order=fix_order, actor=actor, as_of=as_of, reason="held, cancelled"
    ):
        raise Conflict(f"Block {block.pk} has no held order.", code="not_held")
    return {"block": block.pk, "status": block.status, "outbox": OS.WITHDRAWN}


# ---------------------------------------------------------------------------------------------
# Inbound: execution reports
# ---------------------------------------------------------------------------------------------


@dataclass
class InboundReport:
    """One inbound message, in plain Python values (parsed by the QuickFIX application)."""

    msg_type: str
    cl_ord_id: str = ""
    orig_cl_ord_id: str = ""
    order_id: str = ""
    exec_id: str = ""
    exec_type: str = ""
    ord_status: str = ""
    exec_ref_id: str = ""
    last_qty: Decimal = ZERO
    last_px: Decimal = ZERO
    cum_qty: Decimal = ZERO
    avg_px: Decimal = ZERO
    leaves_qty: Decimal = ZERO
    trade_date: date | None = None
    poss_dup: bool = False
    text: str = ""
    ref_seq_num: int | None = None
    business_ref_id: str = ""
    # Rejects (35=3, 35=j, 35=9): what they refer to and why, as read by the application.
    ref_msg_type: str = ""
    ref_tag: int | None = None
    ref_tag_label: str = ""  # "847 (TargetStrategy)", from the QuickFIX data dictionary
    reject_reason: str = ""  # 373, 380 or 102
    reject_reason_text: str = ""
    # The session's sequence epoch (its QuickFIX store) the message was numbered in.
    seq_epoch: str = ""
    seq_num: int | None = None  # its MsgSeqNum (34), for the message monitor
    raw: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def content_hash(self) -> str:
        parts = [
            self.exec_type,
            self.ord_status,
            self.exec_ref_id,
            _dec(self.last_qty) or "0",
            _dec(self.last_px) or "0",
            _dec(self.cum_qty) or "0",
        ]
        return hashlib.sha256("|".join(parts).encode()).hexdigest()


@dataclass
class ApplyResult:
    outcome: str  # applied | duplicate | quarantined | unknown
    dont_know: bool = False
    detail: str = ""


TRADE_TYPES = frozenset({"F", "1", "2"})  # 4.4 Trade; 4.2 Partial fill / Fill


def quarantine_record(
    *,
    broker: Broker | None,
    reason: str,
    report: InboundReport | None = None,
    detail: str = "",
    raw: str = "",
    as_of: datetime,
) -> Quarantine:
    alerts.error(
        "FIX quarantine %s broker=%s clordid=%s execid=%s: %s",
        reason,
        broker.code if broker else "?",
        report.cl_ord_id if report else "",
        report.exec_id if report else "",
        detail,
    )
    return Quarantine.objects.create(
        broker=broker,
        reason=reason,
        detail=detail[:4000],
        msg_type=report.msg_type if report else "",
        cl_ord_id=report.cl_ord_id if report else "",
        exec_id=report.exec_id if report else "",
        raw=(report.raw if report else raw) or raw,
        received_at=as_of,
    )


def quarantine_failure(
    *, broker: Broker, report: InboundReport, exc: Exception, as_of: datetime
) -> Quarantine:
    """A message that failed unexpectedly: kept raw, with the error, for a human."""
    return quarantine_record(
        broker=broker,
        reason="exception",
        report=report,
        detail=f"{type(exc).__name__}: {exc}",
        as_of=as_of,
    )


def _find_fix_order_id(*, broker: Broker, report: InboundReport) -> int | None:
    for cl in (report.cl_ord_id, report.orig_cl_ord_id, report.business_ref_id):
        if cl:
            found = (
                OutboxMessage.objects.filter(broker=broker, cl_ord_id=cl)
                .values_list("fix_order_id", flat=True)
                .first()
            )
            if found:
                return found
    if report.order_id:
        return (
            FixOrder.objects.filter(broker=broker, broker_order_id=report.order_id)
            .values_list("pk", flat=True)
            .first()
        )
    return None


def _report_fix_order_lock(*, broker: Broker, report: InboundReport) -> FixOrder | None:
    """The FixOrder a report is about (found as _find_fix_order_id finds it), locked after
    its block as everywhere else, in two statements: the block is found and locked in one
    (with its security at hand), then its FixOrder."""
    candidates = [c for c in (report.cl_ord_id, report.orig_cl_ord_id, report.business_ref_id) if c]
    blocks = Block.objects.select_for_update(of=("self",)).select_related("security")
    block = None
    if candidates:
        first_named = Case(
            *(When(cl_ord_id=c, then=Value(i)) for i, c in enumerate(candidates)),
            output_field=IntegerField(),
        )
        found = (
            OutboxMessage.objects.filter(broker=broker, cl_ord_id__in=candidates)
            .order_by(first_named)
            .values("fix_order__block_id")[:1]
        )
        block = blocks.filter(pk=Subquery(found)).first()
    if block is None and report.order_id:
        found = (
            FixOrder.objects.filter(broker=broker, broker_order_id=report.order_id)
            .order_by("pk")
            .values("block_id")[:1]
        )
        block = blocks.filter(pk=Subquery(found)).first()
    if block is None:
        return None
    # Whether the ExecID was seen comes with the FixOrder: that statement starts after the
    # block is locked (so it sees every report applied before ours), and never waits itself.
    fix_order = (
        FixOrder.objects.select_for_update()
        .annotate(
            exec_id_seen=Exists(
                Execution.objects.filter(
                    broker=broker, fix_order=OuterRef("pk"), exec_id=report.exec_id
                )
            )
        )
        .get(block=block)
    )
    fix_order.block = block
    return fix_order


def _execution_ref(broker: Broker, fix_order: FixOrder, exec_id: str) -> str:
    return f"{broker.code}:{fix_order.block_id}:{exec_id}"


def _block_status_by_fill(block: Block) -> str:
    if block.cum_qty >= block.quantity:
        return BS.FILLED
    return BS.PARTIALLY_FILLED if block.cum_qty > 0 else BS.WORKING


def _order_status_by_fill(order: Order) -> str:
    if order.cum_qty >= order.quantity:
        return OrderStatus.FILLED
    return OrderStatus.PARTIALLY_FILLED if order.cum_qty > 0 else OrderStatus.WORKING


def _ledger_totals(fix_orders: list[FixOrder]) -> dict[int, tuple[Decimal, Decimal]]:
    """Each FixOrder's cum quantity and value (quantity x price) from the ledger of applied
    trades and corrections: what the block's figures follow, exact after busts and
    corrections (FIX Appendix D), in one statement."""
    rows = (
        Execution.objects.filter(
            fix_order__in=fix_orders,
            state=Execution.State.APPLIED,
            exec_type__in=[*TRADE_TYPES, "G"],
        )
        .values("fix_order_id")
        .annotate(cum=Sum("last_qty"), value=Sum(F("last_qty") * F("last_px")))
    )
    return {r["fix_order_id"]: (r["cum"] or ZERO, r["value"] or ZERO) for r in rows}


def _block_figures_set(block: Block, cum: Decimal, value: Decimal) -> None:
    # From the ledger's totals, never from the last average: it cannot drift through rounding.
    block.cum_qty = cum
    block.avg_price = (value / cum).quantize(Decimal("0.00000001")) if cum else None


def _block_recompute(block: Block, fix_order: FixOrder) -> None:
    _block_figures_set(block, *_ledger_totals([fix_order]).get(fix_order.pk, (ZERO, ZERO)))


def _allocation():
    # Imported late: the allocation app calls back into orders and positions.
    from allocation import services

    return services


def _set_block_status(block: Block, status: str) -> None:
    block.status = status
    block.save(update_fields=["status", "cum_qty", "avg_price", "quantity", "updated_at"])


def _fill_apply(
    *, broker: Broker, fix_order: FixOrder, block: Block, report: InboundReport, as_of: datetime
) -> ApplyResult | None:
    qty, px = report.last_qty, report.last_px
    if qty <= 0 or px <= 0:
        return ApplyResult("quarantined", detail="trade without a positive LastQty/LastPx")
    if block.cum_qty + qty > block.quantity:
        return ApplyResult(
            "quarantined",
            detail=f"overfill: block {block.pk} has {block.cum_qty} of {block.quantity}, "
            f"report adds {qty}",
        )
    allocation = _allocation()
    allocation.street_fills_record(
        fills=[
            allocation.BlockFill(
                block=block,
                execution_ref=_execution_ref(broker, fix_order, report.exec_id),
                quantity=qty,
                price=px,
                trade_date=report.trade_date or as_of.date(),
            )
        ],
        as_of=as_of,
    )
    allocation.block_book(block=block, as_of=as_of)
    return None


def _original_execution(fix_order: FixOrder, exec_ref_id: str) -> Execution | None:
    target = Execution.objects.filter(fix_order=fix_order, exec_id=exec_ref_id).first()
    # A correction of a correction may name the first trade: follow the chain to the live one.
    while target is not None and target.state == Execution.State.CORRECTED:
        target = Execution.objects.filter(
            fix_order=fix_order, exec_ref_id=target.exec_id, exec_type="G"
        ).first()
    if target is None or target.state != Execution.State.APPLIED:
        return None
    if target.exec_type not in TRADE_TYPES and target.exec_type != "G":
        return None
    return target


def _reverse(
    *, broker: Broker, fix_order: FixOrder, block: Block, original: Execution, as_of: datetime
) -> date | None:
    return _allocation().street_fill_bust(
        block=block,
        execution_ref=_execution_ref(broker, fix_order, original.exec_id),
        as_of=as_of,
        actor=None,
    )


def _orders_of(block: Block) -> list[Order]:
    ids = list(block.orders.values_list("pk", flat=True))
    return orders_lock(order_ids=ids)


def _orders_settle_pending(
    block: Block, as_of: datetime, kind: str, details: dict[str, Any] | None = None
) -> None:
    """Orders waiting on a cancel/replace the broker refused go back to where their fills
    put them."""
    for order in _orders_of(block):
        if order.status in (OrderStatus.PENDING_CANCEL, OrderStatus.PENDING_REPLACE):
            target = _order_status_by_fill(order)
            if can_transition(order.status, target):
                order_transition(
                    order=order, to_status=target, as_of=as_of, kind=kind, details=details
                )


def _status_report_apply(
    *, fix_order: FixOrder, block: Block, report: InboundReport, as_of: datetime
) -> None:
    et = report.exec_type
    if report.order_id and not fix_order.broker_order_id:
        fix_order.broker_order_id = report.order_id
    if et in ("4", "5", "8"):
        # The orders are about to change: what the block executed before is theirs as they
        # were (a wide block's executions may still wait for the booker).
        _allocation().block_book_due(block=block, as_of=as_of)
    if et == "0":  # New
        if block.status == BS.ROUTED:
            _set_block_status(block, BS.WORKING)
        _orders_move(
            orders=_orders_of(block),
            to_status=OrderStatus.WORKING,
            as_of=as_of,
            kind="acknowledged",
        )
    elif et == "4":  # Cancelled (solicited or not)
        _set_block_status(block, BS.CANCELLED if block.cum_qty < block.quantity else BS.FILLED)
        fix_order.pending_kind = fix_order.pending_cl_ord_id = ""
        fix_order.pending_values = {}
        for order in _orders_of(block):
            if order.status in AT_BROKER and can_transition(order.status, OrderStatus.CANCELLED):
                order_transition(
                    order=order,
                    to_status=OrderStatus.CANCELLED,
                    as_of=as_of,
                    kind="cancelled",
                    details={"exec_id": report.exec_id, "text": report.text},
                    extra_fields={"leaves_qty": ZERO},
                )
        _allocation().allocation_plan_fix(block=block, actor=None, as_of=as_of)
    elif et == "5":  # Replaced
        _replaced_apply(fix_order=fix_order, block=block, report=report, as_of=as_of)
    elif et == "8":  # Rejected
        _set_block_status(block, BS.REJECTED if block.cum_qty == 0 else BS.CANCELLED)
        reject = report.extra.get("reject") or _reject_info(report, what="NewOrderSingle")
        fix_order.last_reject = reject
        for order in _orders_of(block):
            target = (
                OrderStatus.REJECTED
                if can_transition(order.status, OrderStatus.REJECTED)
                else OrderStatus.CANCELLED
            )
            if order.status in AT_BROKER and can_transition(order.status, target):
                order_transition(
                    order=order,
                    to_status=target,
                    as_of=as_of,
                    kind="rejected",
                    details={"text": reject["text"], "reject": reject},
                    extra_fields={"leaves_qty": ZERO},
                )
    elif et in ("C", "3"):  # Expired, Done for day
        block_target, order_target = (
            (BS.EXPIRED, OrderStatus.EXPIRED)
            if et == "C"
            else (BS.DONE_FOR_DAY, OrderStatus.DONE_FOR_DAY)
        )
        if block.cum_qty < block.quantity:
            _set_block_status(block, block_target)
        _orders_move(
            orders=[o for o in _orders_of(block) if o.cum_qty < o.quantity],
            to_status=order_target,
            as_of=as_of,
            kind=order_target.lower(),
        )
    # A (pending new), 6 (pending cancel), E (pending replace) and D (restated) change
    # nothing we keep: the order already waits, and a restatement is recorded in the ledger.
    fix_order.save()


def _replaced_apply(
    *, fix_order: FixOrder, block: Block, report: InboundReport, as_of: datetime
) -> None:
    values = fix_order.pending_values or {}
    if fix_order.pending_kind == OutboxMessage.Kind.REPLACE:
        fix_order.cl_ord_id = fix_order.pending_cl_ord_id or report.cl_ord_id
    elif report.cl_ord_id:
        fix_order.cl_ord_id = report.cl_ord_id
    if values.get("quantity"):
        block.quantity = Decimal(values["quantity"])
    if values.get("limit_price"):
        block.limit_price = Decimal(values["limit_price"])
    if values.get("time_in_force"):
        block.time_in_force = values["time_in_force"]
    block.save(update_fields=["quantity", "limit_price", "time_in_force", "updated_at"])
    _set_block_status(block, _block_status_by_fill(block))
    cancelled = set(values.get("cancel_order_ids") or [])
    updates = values.get("order_updates") or {}
    for order in _orders_of(block):
        if order.pk in cancelled and can_transition(order.status, OrderStatus.CANCELLED):
            order_transition(
                order=order,
                to_status=OrderStatus.CANCELLED,
                as_of=as_of,
                kind="cancelled",
                details={"via_block_replace": report.exec_id},
                extra_fields={"leaves_qty": ZERO},
            )
        elif order.status == OrderStatus.PENDING_REPLACE:
            extra: dict[str, Any] = {}
            change = updates.get(str(order.pk)) or {}
            if change.get("quantity"):
                extra["quantity"] = Decimal(change["quantity"])
                extra["leaves_qty"] = extra["quantity"] - order.cum_qty
            if change.get("limit_price"):
                extra["limit_price"] = Decimal(change["limit_price"])
            if values.get("time_in_force"):
                extra["time_in_force"] = values["time_in_force"]
            quantity = extra.get("quantity", order.quantity)
            # The order's own terms may not have changed (the block was amended): either way
            # it shows its true quantity, cum and leaves.
            extra.setdefault("leaves_qty", quantity - order.cum_qty)
            target = (
                OrderStatus.FILLED
                if order.cum_qty >= quantity
                else OrderStatus.PARTIALLY_FILLED
                if order.cum_qty > 0
                else OrderStatus.REPLACED
                if change
                else OrderStatus.WORKING
            )
            order_transition(
                order=order,
                to_status=target,
                as_of=as_of,
                kind="replaced",
                details={"exec_id": report.exec_id},
                extra_fields=extra,
            )
    fix_order.pending_kind = fix_order.pending_cl_ord_id = ""
    fix_order.pending_values = {}
    # The broker agreed: the allocation follows the orders' new quantities from now on.
    _allocation().allocation_plan_fix(block=block, actor=None, as_of=as_of)


def _reconcile_status(
    *, fix_order: FixOrder, block: Block, report: InboundReport, as_of: datetime
) -> str:
    """An OrderStatusRequest's answer: the broker's cum must equal ours. Anything else is
    for a human: fills we never received cannot be invented from a cum and an average."""
    if report.cum_qty + fix_order.carried_cum_qty != block.cum_qty:
        carried = f" (+{fix_order.carried_cum_qty} before a resend)" * bool(
            fix_order.carried_cum_qty
        )
        return f"broker reports cum {report.cum_qty}{carried}, we have {block.cum_qty}"
    terminal = {"4": "4", "8": "8", "C": "C", "3": "3"}
    if report.ord_status in terminal and block.status not in BLOCK_FINAL:
        _status_report_apply(
            fix_order=fix_order,
            block=block,
            report=InboundReport(
                msg_type="8",
                exec_type=terminal[report.ord_status],
                exec_id=report.exec_id,
                text="reconciled on logon",
            ),
            as_of=as_of,
        )
    return ""


def _execution_of(
    broker: Broker, fix_order: FixOrder, report: InboundReport, as_of: datetime
) -> Execution:
    return Execution(
        broker=broker,
        fix_order=fix_order,
        exec_id=report.exec_id,
        exec_type=report.exec_type,
        ord_status=report.ord_status,
        cl_ord_id=report.cl_ord_id,
        exec_ref_id=report.exec_ref_id,
        last_qty=report.last_qty,
        last_px=report.last_px,
        cum_qty=report.cum_qty,
        avg_px=report.avg_px,
        leaves_qty=report.leaves_qty,
        trade_date=report.trade_date,
        content_hash=report.content_hash(),
        raw=report.raw,
        received_at=as_of,
    )


def _block_status_after_trade(block: Block) -> str:
    """Where a trade, bust or correction leaves the block: a fill does not undo a pending or
    final state unless it completes the block."""
    if block.status in (BS.PENDING_CANCEL, BS.PENDING_REPLACE, BS.CANCELLED, BS.EXPIRED):
        return BS.FILLED if block.cum_qty >= block.quantity else block.status
    return _block_status_by_fill(block)


def execution_report_apply(
    *, broker: Broker, report: InboundReport, as_of: datetime
) -> ApplyResult:
    """Apply one ExecutionReport exactly once, in one transaction of its own."""
    return in_transaction(
        lambda: _execution_report_apply(broker=broker, report=report, as_of=as_of), durable=True
    )


def _execution_report_apply(
    *, broker: Broker, report: InboundReport, as_of: datetime
) -> ApplyResult:
    """Inside the caller's transaction: an ExecID seen before changes nothing, the same
    ExecID with other content is quarantined."""
    fix_order = _report_fix_order_lock(broker=broker, report=report)
    if fix_order is None:
        quarantine_record(
            broker=broker,
            reason="unknown_cl_ord_id",
            report=report,
            detail=f"no order known by ClOrdID {report.cl_ord_id!r}",
            as_of=as_of,
        )
        return ApplyResult("unknown", dont_know=report.exec_type in TRADE_TYPES | {"G"})
    block = fix_order.block
    if report.exec_type == "I":
        broker_status_requests_learned(
            broker=broker, status_requests=Broker.StatusRequests.ANSWERED, as_of=as_of
        )
        mismatch = _reconcile_status(fix_order=fix_order, block=block, report=report, as_of=as_of)
        if not mismatch and fix_order.unconfirmed_since is not None:
            _unconfirmed_clear(
                fix_order=fix_order,
                as_of=as_of,
                note=f"The broker confirmed it (status report {report.exec_id}).",
            )
        if mismatch:
            quarantine_record(
                broker=broker,
                reason="reconcile_mismatch",
                report=report,
                detail=mismatch,
                as_of=as_of,
            )
            return ApplyResult("quarantined", detail=mismatch)
        return ApplyResult("applied")
    existing = (
        Execution.objects.filter(broker=broker, fix_order=fix_order, exec_id=report.exec_id).first()
        if fix_order.exec_id_seen
        else None
    )
    digest = report.content_hash()
    if existing is not None:
        if existing.content_hash == digest:
            return ApplyResult("duplicate")
        quarantine_record(
            broker=broker,
            reason="exec_id_conflict",
            report=report,
            detail=f"ExecID {report.exec_id} seen before with different content",
            as_of=as_of,
        )
        return ApplyResult("quarantined", detail="exec_id_conflict")
    execution = _execution_of(broker, fix_order, report, as_of)
    problem: ApplyResult | None = None
    try:
        with transaction.atomic():
            problem = _apply_kind(
                broker=broker,
                fix_order=fix_order,
                block=block,
                report=report,
                execution=execution,
                as_of=as_of,
            )
            if problem is not None:
                raise _Refused
    except _Refused:
        pass
    except DomainError as exc:
        problem = ApplyResult("quarantined", detail=f"{exc.code}: {exc.message}")
    if problem is not None:
        # The report is kept (so its replay is recognised) but changes nothing.
        block.refresh_from_db()
        execution.state = Execution.State.QUARANTINED
        execution.save()
        reason = problem.detail.split(":", 1)[0][:32] or "refused"
        quarantine_record(
            broker=broker, reason=reason, report=report, detail=problem.detail, as_of=as_of
        )
        return problem
    return ApplyResult("applied")


class _Refused(Exception):
    """Rolls back the savepoint of a report the gateway will not apply."""


def _apply_kind(
    *,
    broker: Broker,
    fix_order: FixOrder,
    block: Block,
    report: InboundReport,
    execution: Execution,
    as_of: datetime,
) -> ApplyResult | None:
    et = report.exec_type
    if et in TRADE_TYPES:
        problem = _fill_apply(
            broker=broker, fix_order=fix_order, block=block, report=report, as_of=as_of
        )
        if problem:
            return problem
        execution.save()
    elif et in ("H", "G"):
        original = _original_execution(fix_order, report.exec_ref_id)
        if original is None:
            return ApplyResult(
                "quarantined",
                detail=f"unknown_exec_ref: no applied trade {report.exec_ref_id!r} to "
                f"{'bust' if et == 'H' else 'correct'}",
            )
        busted_on = _reverse(
            broker=broker, fix_order=fix_order, block=block, original=original, as_of=as_of
        )
        original.state = Execution.State.BUSTED if et == "H" else Execution.State.CORRECTED
        original.save(update_fields=["state"])
        if et == "H":
            _allocation().block_book(block=block, as_of=as_of)
        else:  # the corrected trade is booked with the bust, in one pass
            # A correction without a TradeDate corrects the original trade's day.
            report.trade_date = report.trade_date or busted_on
            block.cum_qty -= original.last_qty
            problem = _fill_apply(
                broker=broker, fix_order=fix_order, block=block, report=report, as_of=as_of
            )
            if problem:
                return problem
        execution.save()
    else:
        execution.save()
        _status_report_apply(fix_order=fix_order, block=block, report=report, as_of=as_of)
        return None
    # Trades, busts and corrections: the block's figures follow the ledger.
    _block_recompute(block, fix_order)
    _set_block_status(block, _block_status_after_trade(block))
    if report.order_id and not fix_order.broker_order_id:
        fix_order.broker_order_id = report.order_id
        fix_order.save(update_fields=["broker_order_id"])
    return None


def _reject_info(report: InboundReport, *, what: str) -> dict[str, Any]:
    """A refusal as the trader reads it (kept on the FixOrder and the order events): which
    message, which tag by number and field name, why, and the broker's own words."""
    source = {
        "3": "Session reject",
        "j": "Business reject",
        "9": "Cancel reject",
        "8": "Order reject",
    }.get(report.msg_type, "Reject")
    parts = [f"{source} of the {what}"]
    if report.ref_tag_label:
        parts.append(f"tag {report.ref_tag_label}")
    if report.reject_reason_text:
        parts.append(report.reject_reason_text)
    if report.text and report.text != report.reject_reason_text:
        parts.append(report.text)
    info: dict[str, Any] = {"message": what, "source": source, "text": ": ".join(parts)}
    if report.ref_tag:
        info["tag"] = report.ref_tag_label or str(report.ref_tag)
        info["tag_number"] = report.ref_tag
    if report.reject_reason:
        info["reason"] = report.reject_reason
    if report.ref_seq_num:
        info["ref_seq_num"] = report.ref_seq_num
    if report.cl_ord_id:
        info["cl_ord_id"] = report.cl_ord_id
    return info


def cancel_reject_apply(*, broker: Broker, report: InboundReport, as_of: datetime) -> ApplyResult:
    """OrderCancelReject, or a Reject / BusinessMessageReject of a cancel or replace: the
    order goes back to where it was."""
    return in_transaction(
        lambda: _cancel_reject_apply(broker=broker, report=report, as_of=as_of), durable=True
    )


def _cancel_reject_apply(*, broker: Broker, report: InboundReport, as_of: datetime) -> ApplyResult:
    fix_order_id = _find_fix_order_id(broker=broker, report=report)
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
    block = _block_lock(block_id)
    fix_order = FixOrder.objects.select_for_update().get(pk=fix_order_id)
    if not fix_order.pending_kind:
        return ApplyResult("duplicate", detail="nothing pending")
    prior = fix_order.prior_status
    what = (
        "OrderCancelReplaceRequest"
        if fix_order.pending_kind == OutboxMessage.Kind.REPLACE
        else "OrderCancelRequest"
    )
    reject = report.extra.get("reject") or _reject_info(report, what=what)
    fix_order.pending_kind = fix_order.pending_cl_ord_id = ""
    fix_order.pending_values = {}
    fix_order.last_reject = reject
    fix_order.save()
    if block.status in (BS.PENDING_CANCEL, BS.PENDING_REPLACE):
        restored = _block_status_by_fill(block)
        if restored == BS.WORKING and prior in (BS.ROUTED, BS.DONE_FOR_DAY):
            restored = prior
        _set_block_status(block, restored)
    _orders_settle_pending(
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
        lambda: _message_reject_apply(broker=broker, report=report, as_of=as_of), durable=True
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


def _message_reject_apply(*, broker: Broker, report: InboundReport, as_of: datetime) -> ApplyResult:
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
    report.extra["reject"] = _reject_info(report, what=what)
    if message.kind == OutboxMessage.Kind.NEW:
        report.exec_type = "8"
        report.exec_id = f"REJ-{message.cl_ord_id}"
        report.text = report.extra["reject"]["text"][:500]
        return _execution_report_apply(broker=broker, report=report, as_of=as_of)
    return _cancel_reject_apply(broker=broker, report=report, as_of=as_of)


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


# ---------------------------------------------------------------------------------------------
# Inbound in batches
# ---------------------------------------------------------------------------------------------


_APPLIERS = {
    "8": _execution_report_apply,
    "9": _cancel_reject_apply,
    "j": _message_reject_apply,
    "3": _message_reject_apply,
}


def _inbound_one(*, broker: Broker, report: InboundReport, as_of: datetime) -> ApplyResult:
    if report.extra.get("parse_error"):
        # Past the data dictionary but not readable as a report (a bad date, say): kept, raw.
        quarantine_record(
            broker=broker,
            reason="malformed",
            report=report,
            detail=report.extra["parse_error"],
            as_of=as_of,
        )
        return ApplyResult("quarantined", detail="malformed")
    apply = _APPLIERS.get(report.msg_type)
    if apply is None:
        quarantine_record(broker=broker, reason="unexpected_message", report=report, as_of=as_of)
        return ApplyResult("quarantined", detail="unexpected_message")
    return apply(broker=broker, report=report, as_of=as_of)


def _is_plain_trade(report: InboundReport) -> bool:
    return report.msg_type == "8" and report.exec_type in TRADE_TYPES and bool(report.cl_ord_id)


def _trade_run_apply(*, broker: Broker, reports: list[InboundReport], as_of: datetime) -> int:
    """Apply set-wise the longest leading part of a run of trade reports that needs no
    judgement: a known ClOrdID, an ExecID not seen before, a positive quantity and price, no
    overfill. Same rows as _execution_report_apply one by one, a fixed number of statements
    for the whole run. Returns how many it applied; the caller applies the next one alone.
    Raises (a DomainError) when the allocation needs judgement; the caller's savepoint then
    undoes everything and the run goes one by one."""
    found = dict(
        OutboxMessage.objects.filter(
            broker=broker, cl_ord_id__in={r.cl_ord_id for r in reports}
        ).values_list("cl_ord_id", "fix_order__block_id")
    )
    run: list[InboundReport] = []
    for report in reports:
        if report.cl_ord_id not in found:
            break
        run.append(report)
    if not run:
        return 0
    block_ids = {found[r.cl_ord_id] for r in run}
    blocks = {
        b.pk: b
        for b in Block.objects.select_for_update(of=("self",))
        .select_related("security")
        .filter(pk__in=block_ids)
        .order_by("pk")
    }
    fix_orders = {
        fo.block_id: fo
        for fo in FixOrder.objects.select_for_update().filter(block_id__in=block_ids).order_by("pk")
    }
    seen = set(
        Execution.objects.filter(
            broker=broker,
            fix_order__in=list(fix_orders.values()),
            exec_id__in={r.exec_id for r in run},
        ).values_list("fix_order_id", "exec_id")
    )
    ledger = _ledger_totals(list(fix_orders.values()))
    executions: list[Execution] = []
    fills = []
    named: dict[int, FixOrder] = {}
    for report in run:
        block = blocks[found[report.cl_ord_id]]
        fix_order = fix_orders[block.pk]
        qty, px = report.last_qty, report.last_px
        key = (fix_order.pk, report.exec_id)
        if key in seen or qty <= 0 or px <= 0 or block.cum_qty + qty > block.quantity:
            break  # a duplicate, a conflict or a refusal: judged alone, by the caller
        seen.add(key)
        fills.append(
            _allocation().BlockFill(
                block=block,
                execution_ref=_execution_ref(broker, fix_order, report.exec_id),
                quantity=qty,
                price=px,
                trade_date=report.trade_date or as_of.date(),
            )
        )
        executions.append(_execution_of(broker, fix_order, report, as_of))
        cum, value = ledger.get(fix_order.pk, (ZERO, ZERO))
        cum, value = cum + qty, value + qty * px
        ledger[fix_order.pk] = (cum, value)
        _block_figures_set(block, cum, value)
        block.status = _block_status_after_trade(block)
        if report.order_id and not fix_order.broker_order_id:
            fix_order.broker_order_id = report.order_id
            named[fix_order.pk] = fix_order
    if not fills:
        return 0
    # Every fill of the run is recorded first; each block is then booked once, whatever the
    # number of its fills in the run (the account-level work does not grow with the fills),
    # and a wide block by the booker, off this path (its width does not weigh on reports).
    changed_blocks = _allocation().street_fills_record(fills=fills, as_of=as_of)
    _allocation().blocks_book_with_reports(block_ids=changed_blocks, as_of=as_of)
    bulk_insert(executions)
    now = timezone.now()
    changed = list({f.block.pk: f.block for f in fills}.values())
    for block in changed:
        block.updated_at = now
    rows_update(changed, ["status", "cum_qty", "avg_price", "updated_at"])
    rows_update(list(named.values()), ["broker_order_id"])
    return len(fills)


def _inbound_guarded(*, broker: Broker, report: InboundReport, as_of: datetime) -> ApplyResult:
    try:
        with transaction.atomic():
            return _inbound_one(broker=broker, report=report, as_of=as_of)
    except (InterfaceError, OperationalError):
        raise
    except Exception as exc:
        log.exception("FIX message could not be applied; quarantined")
        quarantine_failure(broker=broker, report=report, exc=exc, as_of=as_of)
        return ApplyResult("quarantined", detail="exception")


def inbound_batch_apply(
    *,
    broker: Broker,
    reports: list[InboundReport],
    as_of: datetime,
    mark: InboundMark | None = None,
) -> list[ApplyResult]:
    """Apply inbound messages in arrival order in one transaction, and record `mark` with
    them: what is committed and how far the inbound numbering is covered move together, so a
    crash before commit loses nothing (start-up winds the session back to the mark and the
    broker resends). Runs of plain trade reports are applied set-wise; anything else, one by
    one. A message that fails unexpectedly is quarantined with its raw text and the others
    still apply; an unreachable database fails the whole batch, to be retried. A deadlock
    with another writer runs the batch again (oms.db.in_transaction); only when that keeps
    failing does the error go up to the applier, which holds the batch and tries later."""
    return in_transaction(
        lambda: _inbound_batch(broker=broker, reports=reports, as_of=as_of, mark=mark),
        durable=True,
    )


def _inbound_batch(
    *,
    broker: Broker,
    reports: list[InboundReport],
    as_of: datetime,
    mark: InboundMark | None,
) -> list[ApplyResult]:
    results: list[ApplyResult] = []
    i = 0
    while i < len(reports):
        end = i
        while end < len(reports) and _is_plain_trade(reports[end]):
            end += 1
        if end > i:
            try:
                with transaction.atomic():
                    applied = _trade_run_apply(broker=broker, reports=reports[i:end], as_of=as_of)
            except (InterfaceError, OperationalError):
                raise
            except Exception as exc:
                # Needs judgement somewhere (or something unforeseen): this run goes one
                # by one, as it always could, each report judged and quarantined alone.
                if not isinstance(exc, DomainError):
                    log.exception("set-wise apply failed; applying the run one by one")
                for report in reports[i:end]:
                    results.append(_inbound_guarded(broker=broker, report=report, as_of=as_of))
                i = end
                continue
            results.extend(ApplyResult("applied") for _ in range(applied))
            i += applied
            if i == end:
                continue
        # Not a plain trade, or the one the run stopped at: judged alone.
        results.append(_inbound_guarded(broker=broker, report=reports[i], as_of=as_of))
        i += 1
    fix_messages_received(broker=broker, reports=reports, as_of=as_of)
    if mark is not None:
        SessionState.objects.update_or_create(
            broker=broker,
            defaults={
                "inbound_store_created": mark.store_created,
                "inbound_applied_seq_num": mark.seq_num,
            },
        )
    return results


# ---------------------------------------------------------------------------------------------
# Session state
# ---------------------------------------------------------------------------------------------


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
    _require_desk(actor)
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
    _wake_sender_on_commit(broker.pk, what=SESSION_RESET_NOTICE)
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


# ---------------------------------------------------------------------------------------------
# Reconciliation: orders the broker may have lost
# ---------------------------------------------------------------------------------------------


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
            _push_block_orders(fix_order.block_id)
        rows_update(fix_orders, ["unconfirmed_since", "unconfirmed_reason"])
    if fix_orders:
        alerts.warning("%s: %d working orders unconfirmed: %s", broker, len(fix_orders), reason)
    return len(fix_orders)


def _unconfirmed_clear(
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
    _push_block_orders(fix_order.block_id)


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


def _unconfirmed_lock(*, block_id: int, actor: Any) -> tuple[Block, FixOrder]:
    _require_desk(actor)
    block = Block.objects.select_for_update(of=("self",)).filter(pk=block_id).first()
    if block is None:
        raise NotFound(f"Block {block_id} does not exist.")
    fix_order = _fix_order_lock(block)
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
    _status_report_apply(
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
    _unconfirmed_clear(
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
    _unconfirmed_clear(
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
    _kill_switch_refuse(block)
    leaves = block.quantity - block.cum_qty
    if leaves <= 0:
        raise Conflict(f"Block {block.pk} has nothing left to send.", code="nothing_left")
    broker = fix_order.broker
    payload = _new_order_payload(block=block, broker=broker, quantity=leaves)
    withdrawn = _withdraw_unsent(fix_order)
    before = {"cl_ord_id": fix_order.cl_ord_id, "broker_order_id": fix_order.broker_order_id}
    cl_ord_id = _next_cl_ord_id(fix_order)
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
        _set_block_status(block, _block_status_by_fill(block))
        _orders_settle_pending(block, as_of, kind="resent")
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
    _unconfirmed_clear(
        fix_order=fix_order,
        as_of=as_of,
        actor=actor,
        note=f"Resent as {cl_ord_id} by {actor.get_username()}" + (f": {note}" if note else "."),
    )
    _wake_sender_on_commit(broker.pk)
    return {"block": block.pk, "cl_ord_id": cl_ord_id, "quantity": _dec(leaves), "outbox": "queued"}


# ---------------------------------------------------------------------------------------------
# Kill switch
# ---------------------------------------------------------------------------------------------


def _scope_check(scope: str, value: str | None) -> str:
    if scope not in KillSwitch.Scope.values:
        raise DomainError(f"Unknown kill switch scope {scope!r}.", code="invalid_scope")
    if scope == KillSwitch.Scope.ALL:
        return ""
    value = (value or "").strip()
    if not value:
        raise DomainError(f"A {scope} kill switch needs a value.", code="invalid_scope")
    return value


def _scope_exists(scope: str, value: str) -> None:
    """A kill switch names something that exists: an account code, a broker code or a
    trader's username. A typo would otherwise stop nothing while looking engaged."""
    from django.contrib.auth import get_user_model

    from oms.models import Account

    known = {
        KillSwitch.Scope.ALL: lambda: True,
        KillSwitch.Scope.BROKER: lambda: Broker.objects.filter(code=value).exists(),
        KillSwitch.Scope.ACCOUNT: lambda: Account.objects.filter(code=value).exists(),
        KillSwitch.Scope.TRADER: lambda: (
            get_user_model().objects.filter(username=value, is_active=True).exists()
        ),
    }[scope]()
    if not known:
        raise DomainError(
            f"There is no {scope} {value!r}: nothing to stop.",
            code="unknown_scope_value",
            details={"scope": scope, "value": value},
        )


@retry_on_conflict
def kill_switch_engage(
    *, scope: str, value: str | None, actor: Any, as_of: datetime
) -> dict[str, Any]:
    """Stop routing in scope and cancel every working order in it (one not sent yet is
    withdrawn). Returns what was done. An unknown account, broker or trader is a 400."""
    value = _scope_check(scope, value)
    _scope_exists(scope, value)
    switch, created = KillSwitch.objects.get_or_create(
        scope=scope,
        value=value,
        released_at__isnull=True,
        defaults={"engaged_at": as_of, "engaged_by": actor if getattr(actor, "pk", None) else None},
    )
    blocks = Block.objects.filter(fix_order__isnull=False, status__in=BLOCK_LIVE)
    if scope == KillSwitch.Scope.BROKER:
        blocks = blocks.filter(broker__code=value)
    elif scope == KillSwitch.Scope.TRADER:
        blocks = blocks.filter(created_by__username=value)
    elif scope == KillSwitch.Scope.ACCOUNT:
        blocks = blocks.filter(orders__account__code=value).distinct()
    cancelled, skipped = [], []
    for block in blocks.order_by("pk"):
        try:
            with transaction.atomic():
                if scope == KillSwitch.Scope.ACCOUNT:
                    locked = _block_lock(block.pk)
                    ids = list(
                        locked.orders.filter(account__code=value, status__in=AT_BROKER).values_list(
                            "pk", flat=True
                        )
                    )
                    _block_reduce_enqueue(
                        block=locked, orders=orders_lock(order_ids=ids), actor=actor, as_of=as_of
                    )
                else:
                    block_cancel_enqueue(block=block, actor=actor, as_of=as_of)
            cancelled.append(block.pk)
        except Conflict as exc:
            skipped.append({"block": block.pk, "reason": exc.message})
    audit_record(
        actor=actor,
        action="fix.kill_switch_engage",
        obj=switch,
        occurred_at=as_of,
        after={"scope": scope, "value": value, "cancelled_blocks": cancelled, "skipped": skipped},
    )
    return {"switch": switch.pk, "new": created, "cancelled": cancelled, "skipped": skipped}


@retry_on_conflict
def kill_switch_release(
    *,
    actor: Any,
    as_of: datetime,
    reason: str,
    switch_id: int | None = None,
    scope: str | None = None,
    value: str | None = None,
) -> dict[str, Any]:
    """Let routing in a scope go on again: the engaged switch, named by its id or by scope
    and value, is released with the reason (required), audited. Orders it cancelled stay
    cancelled. Traders and admins only."""
    _require_desk(actor)
    reason = " ".join((reason or "").split())[:500]
    if not reason:
        raise DomainError("Say why the kill switch is released.", code="reason_required")
    switches = KillSwitch.objects.select_for_update().filter(released_at__isnull=True)
    if switch_id is not None:
        switch = switches.filter(pk=switch_id).first()
        what = f"#{switch_id}"
    else:
        value = _scope_check(scope or "", value)
        switch = switches.filter(scope=scope, value=value).first()
        what = f"{scope} {value}".strip()
    if switch is None:
        raise NotFound(f"No engaged kill switch {what}.")
    switch.released_at = as_of
    switch.released_by = actor if getattr(actor, "pk", None) else None
    switch.release_reason = reason
    switch.save(update_fields=["released_at", "released_by", "release_reason"])
    audit_record(
        actor=actor,
        action="fix.kill_switch_release",
        obj=switch,
        occurred_at=as_of,
        before={"engaged_at": switch.engaged_at},
        after={"scope": switch.scope, "value": switch.value, "reason": reason},
    )
    return {
        "switch": switch.pk,
        "scope": switch.scope,
        "value": switch.value,
        "released_at": as_of,
        "reason": reason,
    }


# ---------------------------------------------------------------------------------------------
# The message monitor: application messages kept as they crossed the wire
# ---------------------------------------------------------------------------------------------

# FixMessage's columns in rows_insert's order (every field but the key).
FIX_MESSAGE_FIELDS = (
    "broker_id",
    "direction",
    "msg_type",
    "seq_num",
    "seq_epoch",
    "cl_ord_id",
    "orig_cl_ord_id",
    "order_id",
    "exec_id",
    "at",
    "raw",
)


@dataclass(frozen=True)
class SentMessage:
    """An application message QuickFIX is about to write (toApp), as the monitor keeps it."""

    msg_type: str
    seq_num: int | None
    seq_epoch: str
    raw: str
    cl_ord_id: str = ""
    orig_cl_ord_id: str = ""
    order_id: str = ""
    exec_id: str = ""

    def values(self, *, broker_id: int, at: datetime) -> tuple:
        return (
            broker_id,
            FixMessage.Direction.OUT.value,
            self.msg_type,
            self.seq_num,
            self.seq_epoch,
            self.cl_ord_id[:64],
            self.orig_cl_ord_id[:64],
            self.order_id[:64],
            self.exec_id[:64],
            at,
            self.raw,
        )


def _update_with_message(queryset, values: dict[str, Any], message: tuple) -> int:
    """queryset.update(**values) and the insert of one FixMessage row in one statement (a
    data-modifying WITH): toApp runs before every order leaves, so keeping the message must
    not cost it a round trip. Returns the number of rows updated."""
    update = queryset.query.chain(UpdateQuery)
    update.add_update_values(values)
    compiler = update.get_compiler(queryset.db)
    compiler.pre_sql_setup()
    update_sql, update_params = compiler.as_sql()
    quote = connection.ops.quote_name
    meta = FixMessage._meta
    columns = ", ".join(quote(meta.get_field(f).column) for f in FIX_MESSAGE_FIELDS)
    placeholders = ", ".join(["%s"] * len(FIX_MESSAGE_FIELDS))
    sql = (
        f"WITH kept AS (INSERT INTO {quote(meta.db_table)} ({columns}) "
        f"VALUES ({placeholders})) {update_sql}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*message, *update_params])
        return cursor.rowcount


def fix_message_sent(*, broker_id: int, message: SentMessage, as_of: datetime) -> None:
    """Keep an application message that is no outbox row (a status request, a
    DontKnowTrade): one INSERT."""
    rows_insert(FixMessage, FIX_MESSAGE_FIELDS, [message.values(broker_id=broker_id, at=as_of)])


def _referred_cl_ord_ids(broker: Broker, reports: list[InboundReport]) -> dict[tuple, str]:
    """For rejects naming no ClOrdID (35=3, and 35=j without BusinessRejectRefID) that the
    application could not place either (sent before a restart): the ClOrdID of the outbox
    message with that epoch and RefSeqNum. No query when there are none."""
    wanted = {
        (r.seq_epoch, r.ref_seq_num)
        for r in reports
        if r.msg_type in ("3", "j")
        and r.ref_seq_num
        and not (r.cl_ord_id or r.business_ref_id or r.extra.get("sent_cl_ord_id"))
    }
    if not wanted:
        return {}
    match = Q()
    for epoch, seq in wanted:
        match |= Q(sent_seq_epoch=epoch, sent_seq_num=seq)
    rows = OutboxMessage.objects.filter(match, broker=broker).values_list(
        "sent_seq_epoch", "sent_seq_num", "cl_ord_id"
    )
    return {(epoch, seq): cl_ord_id for epoch, seq, cl_ord_id in rows}


def fix_messages_received(*, broker: Broker, reports: list[InboundReport], as_of: datetime) -> None:
    """Keep the inbound batch's messages for the monitor, in the batch's transaction, at a
    cost that does not grow with the batch (rows_insert: COPY from two rows). A reject that carries no ClOrdID is kept
    under the ClOrdID of the message it refers to, so it shows in that order's history."""
    referred = _referred_cl_ord_ids(broker, reports)
    rows = [
        (
            broker.pk,
            FixMessage.Direction.IN.value,
            report.msg_type[:4],
            report.seq_num,
            report.seq_epoch,
            (
                report.cl_ord_id
                or report.extra.get("sent_cl_ord_id", "")
                or (report.business_ref_id if report.msg_type == "j" else "")
                or referred.get((report.seq_epoch, report.ref_seq_num), "")
            )[:64],
            report.orig_cl_ord_id[:64],
            report.order_id[:64],
            report.exec_id[:64],
            as_of,
            report.raw,
        )
        for report in reports
    ]
    rows_insert(FixMessage, FIX_MESSAGE_FIELDS, rows)


# ---------------------------------------------------------------------------------------------
# Orders the broker never acknowledged
# ---------------------------------------------------------------------------------------------

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
