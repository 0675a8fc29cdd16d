"""The FIX outbox: routing, cancel and replace requests written as outbox rows in the caller's
transaction (withdrawn or shrunk at once while not sent), and the kill switch's guard on
routing; the sender's side is fixgateway.sending. Nothing here knows QuickFIX: fixgateway.application turns outbox rows into messages.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q

from audit.services import audit_record
from oms.db import within_transaction
from oms.errors import Conflict, DomainError, NotPermitted
from oms.roles import ADMIN, TRADER, has_role
from oms.services import exceptions_resolve_for
from orders.broadcast import order_changed_on_commit
from orders.lifecycle import AT_BROKER, OrderStatus, can_transition
from orders.models import Block, Order
from orders.services import order_transition, orders_lock

from .algo import algo_fields
from .models import Broker, FixOrder, KillSwitch, OutboxMessage
from .selectors import decimal_text as _dec

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
HELD_ORDER = "held_order"


def _clordid_prefix() -> str:
    return getattr(settings, "OMS_FIX_CLORDID_PREFIX", "OMS")


def wake_sender_on_commit(broker_id: int, what: str = "") -> None:
    """After commit, wake the session owner: the outbox has work (or, with `what`, something
    else: the payload is "<what>:<broker id>")."""
    payload = f"{what}:{broker_id}" if what else str(broker_id)

    def notify() -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, %s)", [NOTIFY_CHANNEL, payload])

    transaction.on_commit(notify)


def block_lock(block_id: int) -> Block:
    return Block.objects.select_for_update(of=("self",)).get(pk=block_id)


def fix_order_lock(block: Block) -> FixOrder:
    try:
        return FixOrder.objects.select_for_update().select_related("broker").get(block=block)
    except FixOrder.DoesNotExist:
        raise Conflict(f"Block {block.pk} has not been routed.", code="not_routed") from None


def next_cl_ord_id(fix_order: FixOrder) -> str:
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


def new_order_payload(*, block: Block, broker: Broker, quantity: Decimal) -> dict[str, Any]:
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


def kill_switch_refuse(block: Block) -> None:
    """Conflict (409) when an engaged kill switch covers the block: nothing may be sent."""
    switch = kill_switch_blocking(block=block)
    if switch is not None:
        raise Conflict(
            f"Routing is stopped by the kill switch ({switch.scope} {switch.value}).".strip(),
            code="kill_switch_engaged",
        )


@within_transaction
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
    kill_switch_refuse(block)
    if FixOrder.objects.filter(block=block).exists():
        raise Conflict(f"Block {block.pk} was routed already.", code="already_routed")
    payload = new_order_payload(block=block, broker=broker, quantity=block.quantity)
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
    wake_sender_on_commit(block.broker_id)


def _unsent_new(fix_order: FixOrder) -> OutboxMessage | None:
    """The block's NewOrderSingle, locked, if it has not left yet (nor been claimed by the
    sender); None otherwise. Never waits: a row the sender holds is on its way out."""
    return (
        OutboxMessage.objects.select_for_update(skip_locked=True)
        .filter(fix_order=fix_order, kind=OutboxMessage.Kind.NEW, status__in=NOT_SENT)
        .first()
    )


def held_ref(block_id: int) -> str:
    return f"block:{block_id}"


def withdraw_if_unsent(
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
            _order_withdrawn(
                order, cl_ord_id=message.cl_ord_id, reason=reason, actor=actor, as_of=as_of
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
            ref=held_ref(block.pk),
            note=f"Cancelled before it was sent ({reason}).",
            as_of=as_of,
            actor=actor if getattr(actor, "pk", None) else None,
        )
    return True


def _order_withdrawn(
    order: Order, *, cl_ord_id: str, reason: str, actor: Any, as_of: datetime
) -> None:
    """An order whose message never left: CANCELLED at once, nothing left to work."""
    order_transition(
        order=order,
        to_status=OrderStatus.CANCELLED,
        as_of=as_of,
        kind="withdrawn",
        actor=actor,
        details={"cl_ord_id": cl_ord_id, "reason": reason},
        extra_fields={"leaves_qty": ZERO},
    )


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
    message and the block shrink by their quantity and the orders end CANCELLED at once (the
    caller fixes the block's allocation plan)."""
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
        _order_withdrawn(
            order,
            cl_ord_id=message.cl_ord_id,
            reason="cancelled before it was sent",
            actor=actor,
            as_of=as_of,
        )
    audit_record(
        actor=actor,
        action="fix.order_reduce_unsent",
        obj=block,
        occurred_at=as_of,
        before={"quantity": before},
        after={"quantity": _dec(new_quantity), "cancelled_orders": [o.pk for o in orders]},
    )
    return True


def orders_move(
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
    cl_ord_id = next_cl_ord_id(fix_order)
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
    wake_sender_on_commit(fix_order.broker_id)
    return message


@within_transaction
def block_cancel_enqueue(*, block: Block, actor: Any, as_of: datetime) -> None:
    """Ask the broker to cancel the whole block; its orders wait in PENDING_CANCEL. A block
    whose NewOrderSingle has not been sent is withdrawn instead, and ends CANCELLED now."""
    block = block_lock(block.pk)
    fix_order = fix_order_lock(block)
    if withdraw_if_unsent(
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
    orders_move(
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


@within_transaction
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
    block = block_lock(block.pk)
    fix_order = fix_order_lock(block)
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
    orders_move(
        orders=[o for o in live if o.pk in cancelled],
        to_status=OrderStatus.PENDING_CANCEL,
        as_of=as_of,
        kind="cancel_requested",
        actor=actor,
    )
    orders_move(
        orders=[o for o in live if o.pk not in cancelled],
        to_status=OrderStatus.PENDING_REPLACE,
        as_of=as_of,
        kind="replace_requested",
        actor=actor,
    )


def routed_block_lock(*, order: Order) -> Block:
    """The routed block of an order, locked (a Conflict if the order is in none)."""
    if order.block_id is None or not FixOrder.objects.filter(block_id=order.block_id).exists():
        raise Conflict(f"Order {order.pk} is not in a routed block.", code="not_routed")
    return block_lock(order.block_id)


@within_transaction
def block_reduce_enqueue(*, block: Block, orders: list[Order], actor: Any, as_of: datetime) -> bool:
    """Cancel some of a block's orders: the block is replaced with their leaves taken off
    (a cancel when nothing would be left). True when they were taken off a NewOrderSingle not
    sent yet, at once: the block's allocation plan changed and the caller fixes it."""
    leaves = sum((o.quantity - o.cum_qty for o in orders), ZERO)
    others_live = block.orders.filter(status__in=AT_BROKER).exclude(pk__in=[o.pk for o in orders])
    new_quantity = block.quantity - leaves
    if new_quantity > 0 and others_live.exists():
        fix_order = fix_order_lock(block)
        if _reduce_if_unsent(
            block=block,
            fix_order=fix_order,
            orders=orders,
            new_quantity=new_quantity,
            actor=actor,
            as_of=as_of,
        ):
            return True
    if not others_live.exists() or new_quantity <= block.cum_qty:
        if new_quantity <= block.cum_qty and others_live.exists():
            raise Conflict(
                "Cancelling these orders would leave the block below what it has filled.",
                code="below_filled",
            )
        block_cancel_enqueue(block=block, actor=actor, as_of=as_of)
        return False
    block_replace_enqueue(
        block=block,
        actor=actor,
        as_of=as_of,
        quantity=new_quantity,
        _cancel_order_ids=sorted(o.pk for o in orders),
    )
    return False


@within_transaction
def order_cancel_enqueue(*, order: Order, block: Block, actor: Any, as_of: datetime) -> bool:
    """Cancel one order of its routed block, locked by `routed_block_lock` (the block is
    reduced by that order's leaves). True when the block's allocation plan changed (see
    `block_reduce_enqueue`)."""
    (order,) = orders_lock(order_ids=[order.pk])
    if order.status not in AT_BROKER:
        raise Conflict(f"Order {order.pk} is {order.status}: nothing to cancel.", code="not_live")
    return block_reduce_enqueue(block=block, orders=[order], actor=actor, as_of=as_of)


@within_transaction
def order_replace_enqueue(
    *,
    order: Order,
    block: Block,
    actor: Any,
    as_of: datetime,
    quantity: Decimal | None = None,
    limit_price: Decimal | None = None,
    time_in_force: str | None = None,
) -> None:
    """Amend one order of its routed block, locked by `routed_block_lock`. The quantity
    changes the block by the difference; price and time in force apply to the whole block, so
    only a block of one may change them."""
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


def push_block_orders(block_id: int) -> None:
    """The blotter rows show the block's send state: push its orders after commit (their
    version does not move; the grid takes a row of the same version)."""
    for order_id in Order.objects.filter(block_id=block_id).values_list("pk", flat=True):
        order_changed_on_commit(order_id)


def require_desk(actor: Any) -> None:
    if not has_role(actor, TRADER, ADMIN):
        raise NotPermitted("Only traders and admins may do this.")
