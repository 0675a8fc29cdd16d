"""Working orders on the desk: blocks, routing, cancel and amend, internal crosses.

Each service is one transaction: it locks the block first, then its orders in pk order (the
same order the FIX gateway uses when a report arrives), moves statuses only through
orders.services.order_transition / order_fill_apply, audits, and writes the outbound FIX
request through the gateway's outbox in the same transaction.
"""

from __future__ import annotations

import json
import logging
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

from allocation import services as allocation
from audit.services import audit_record
from compliance.services import compliance_what_if
from fixgateway import outbound
from fixgateway.models import Broker
from marketdata.services import arrival_capture
from oms.calendars import settlement_date
from oms.db import retry_on_conflict
from oms.errors import Conflict, DomainError, NotFound, NotPermitted
from oms.models import Security, UserPreference

from . import broadcast
from .blotter_selectors import may_work_orders
from .lifecycle import OrderStatus
from .models import BUY_SIDES, SELL_SIDES, Block, Order, OrderType, TimeInForce
from .services import (
    order_event_record,
    orders_lock,
    orders_transition_bulk,
)

logger = logging.getLogger(__name__)

STRATEGIES = ("DMA", "VWAP", "TWAP", "POV")
# Blocks the desk can still cancel or amend at the broker.
CANCELLABLE = frozenset(
    {
        Block.Status.ROUTED,
        Block.Status.WORKING,
        Block.Status.PARTIALLY_FILLED,
        Block.Status.PENDING_REPLACE,
        Block.Status.DONE_FOR_DAY,
    }
)
# A replace needs the broker to have acknowledged the order first (PENDING_NEW cannot move to
# PENDING_REPLACE in the lifecycle table).
REPLACEABLE = frozenset({Block.Status.WORKING, Block.Status.PARTIALLY_FILLED})
# A block in one of these still holds its orders.
LIVE_BLOCK = frozenset(set(Block.Status) - {Block.Status.CANCELLED, Block.Status.REJECTED})


def _require_desk(actor) -> None:
    if not may_work_orders(actor):
        raise NotPermitted("Only traders work orders.")


def _block_lock(*, block_id: int) -> Block:
    block = Block.objects.select_for_update(of=("self",)).filter(pk=block_id).first()
    if block is None:
        raise NotFound(f"Block {block_id} does not exist.")
    return block


def _block_orders_lock(block: Block) -> list[Order]:
    return orders_lock(order_ids=list(block.orders.values_list("pk", flat=True)))


def _block_snapshot(block: Block) -> dict[str, Any]:
    return {
        "status": block.status,
        "quantity": block.quantity,
        "order_type": block.order_type,
        "limit_price": block.limit_price,
        "stop_price": block.stop_price,
        "time_in_force": block.time_in_force,
        "broker": block.broker_id,
        "strategy": block.strategy,
        "strategy_params": block.strategy_params,
    }


def _block_touch_orders(*, orders: list[Order], block: Block | None, kind: str, as_of, actor):
    """Attach orders to (or detach them from) a block: no status change, but the grid must
    see it, so the order's version moves and it is pushed like any other change."""
    for order in orders:
        order.block = block
        order.version += 1
        order.save(update_fields=["block", "version", "updated_at"])
        order_event_record(
            order=order,
            kind=kind,
            as_of=as_of,
            actor=actor,
            from_status=order.status,
            to_status=order.status,
            details={"block": block.pk if block else None},
        )
        broadcast.order_changed_on_commit(order.pk)


@retry_on_conflict(durable=True)
def block_create(*, order_ids: list[int], actor, as_of: datetime) -> Block:
    """Aggregate staged orders in one security and side (across accounts and PMs) into a block;
    one order makes a block of one."""
    _require_desk(actor)
    wanted = sorted(set(order_ids))
    if not wanted:
        raise DomainError("Choose at least one order.", code="empty_block")
    orders = orders_lock(order_ids=wanted)
    missing = set(wanted) - {o.pk for o in orders}
    if missing:
        raise NotFound(f"Orders {sorted(missing)} do not exist.")
    for order in orders:
        if order.status != OrderStatus.STAGED:
            raise Conflict(
                f"Order {order.pk} is {order.status}; only staged orders can be blocked.",
                code="not_staged",
                details={"order": order.pk, "status": order.status},
            )
    in_blocks = {o.block_id for o in orders if o.block_id}
    if in_blocks:
        live = set(
            Block.objects.filter(pk__in=in_blocks, status__in=LIVE_BLOCK).values_list(
                "pk", flat=True
            )
        )
        if live:
            taken = [o.pk for o in orders if o.block_id in live]
            raise Conflict(
                f"Orders {taken} are already in block(s) {sorted(live)}.",
                code="already_blocked",
                details={"orders": taken},
            )
    if len({(o.security_id, o.side) for o in orders}) > 1:
        raise Conflict(
            "A block holds orders in one security and one side only.",
            code="mixed_block",
            details={"orders": [o.pk for o in orders]},
        )
    first = orders[0]
    block = Block.objects.create(
        security_id=first.security_id,
        side=first.side,
        quantity=sum((o.quantity - o.cum_qty for o in orders), Decimal(0)),
        created_by=actor,
        created_at=as_of,
    )
    _block_touch_orders(orders=orders, block=block, kind="block_join", as_of=as_of, actor=actor)
    audit_record(
        actor=actor,
        action="block.create",
        obj=block,
        occurred_at=as_of,
        after={"orders": [o.pk for o in orders], "quantity": block.quantity},
    )
    return block


@retry_on_conflict(durable=True)
def block_dissolve(*, block_id: int, actor, as_of: datetime) -> None:
    """Take an unrouted block apart; its orders stay staged."""
    _require_desk(actor)
    block = _block_lock(block_id=block_id)
    if block.status != Block.Status.OPEN:
        raise Conflict(f"Block {block.pk} is {block.status}; only an open block can be undone.")
    orders = _block_orders_lock(block)
    _block_touch_orders(orders=orders, block=None, kind="block_leave", as_of=as_of, actor=actor)
    block.status = Block.Status.CANCELLED
    block.save(update_fields=["status", "updated_at"])
    audit_record(
        actor=actor,
        action="block.dissolve",
        obj=block,
        occurred_at=as_of,
        before={"orders": [o.pk for o in orders]},
    )


def _tick_check(price: Decimal, tick: Decimal, label: str) -> None:
    if price <= 0:
        raise DomainError(f"{label} must be greater than zero.", code="invalid_price")
    if tick and price % tick != 0:
        raise DomainError(f"{label} {price} is not a multiple of the tick {tick}.", code="tick")


def _limit_respects_orders(*, side: str, limit: Decimal | None, orders: list[Order]) -> None:
    """The block may not trade at a price any of its PMs' limits forbids."""
    limits = [o.limit_price for o in orders if o.order_type in (OrderType.LIMIT, "STOP_LIMIT")]
    if not limits:
        return
    if limit is None:
        raise Conflict(
            "The block holds limit orders: route it with a limit price.", code="limit_required"
        )
    if side in BUY_SIDES and limit > min(limits):
        raise Conflict(
            f"Limit {limit} is above an order's limit {min(limits)}.", code="limit_beyond_order"
        )
    if side in SELL_SIDES and limit < max(limits):
        raise Conflict(
            f"Limit {limit} is below an order's limit {max(limits)}.", code="limit_beyond_order"
        )


def _time_param(value: Any, label: str) -> str:
    text = str(value).strip()
    if len(text) != 5:
        raise DomainError(f"{label} must be HH:MM, not {value!r}.", code="invalid_params")
    try:
        time.fromisoformat(text)
    except ValueError as exc:
        raise DomainError(f"{label} must be HH:MM, not {value!r}.", code="invalid_params") from exc
    return text


def strategy_params_clean(*, strategy: str, params: dict[str, Any] | None) -> dict[str, Any]:
    """Algo instructions: VWAP/TWAP take an optional start/end time window, POV a
    participation rate (percent, required) and optional window; DMA takes nothing."""
    if strategy not in STRATEGIES:
        raise DomainError(
            f"Strategy must be one of {', '.join(STRATEGIES)}.", code="invalid_strategy"
        )
    params = dict(params or {})
    if strategy == "DMA":
        return {}
    known = {"start_time", "end_time"} | ({"participation"} if strategy == "POV" else set())
    # An instruction the broker would never get must not be dropped silently.
    unknown = sorted(k for k, v in params.items() if k not in known and v not in (None, ""))
    if unknown:
        raise DomainError(
            f"{strategy} takes {', '.join(sorted(known))}; not {', '.join(unknown)}.",
            code="invalid_params",
        )
    clean: dict[str, Any] = {}
    for key in ("start_time", "end_time"):
        if params.get(key):
            clean[key] = _time_param(params[key], key)
    if "start_time" in clean and "end_time" in clean and clean["start_time"] >= clean["end_time"]:
        raise DomainError("start_time must be before end_time.", code="invalid_params")
    if strategy == "POV":
        raw = params.get("participation")
        try:
            rate = Decimal(str(raw))
        except Exception as exc:
            raise DomainError(
                "POV needs a participation rate in percent.", code="invalid_params"
            ) from exc
        if not rate.is_finite() or not (0 < rate <= 100):
            raise DomainError(
                "Participation must be above 0 and at most 100.", code="invalid_params"
            )
        clean["participation"] = str(rate)
    return clean


@retry_on_conflict(durable=True)
def block_route(
    *,
    block_id: int,
    broker_id: int,
    order_type: str,
    limit_price: Decimal | None = None,
    stop_price: Decimal | None = None,
    time_in_force: str = TimeInForce.DAY,
    expire_date: date | None = None,
    strategy: str = "DMA",
    strategy_params: dict[str, Any] | None = None,
    actor,
    as_of: datetime,
) -> Block:
    """Send an open block to a broker: fix the allocation plan, move the orders to
    PENDING_NEW and write the FIX NewOrderSingle to the gateway's outbox, all in one commit."""
    _require_desk(actor)
    if order_type not in OrderType.values:
        raise DomainError(f"Unknown order type {order_type!r}.", code="invalid_order_type")
    if time_in_force not in TimeInForce.values:
        raise DomainError(f"Unknown time in force {time_in_force!r}.", code="invalid_tif")
    needs_limit = order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT)
    needs_stop = order_type in (OrderType.STOP, OrderType.STOP_LIMIT)
    if needs_limit and limit_price is None:
        raise DomainError(f"A {order_type} order needs a limit price.", code="limit_required")
    if needs_stop and stop_price is None:
        raise DomainError(f"A {order_type} order needs a stop price.", code="stop_required")
    if not needs_limit:
        limit_price = None
    if not needs_stop:
        stop_price = None
    if time_in_force == TimeInForce.GTD:
        if expire_date is None or expire_date < as_of.date():
            raise DomainError("GTD needs an expiry date today or later.", code="invalid_expiry")
    else:
        expire_date = None
    params = strategy_params_clean(strategy=strategy, params=strategy_params)
    broker = Broker.objects.filter(pk=broker_id).first()
    if broker is None:
        raise NotFound(f"Broker {broker_id} does not exist.")
    if not broker.active:
        raise Conflict(f"Broker {broker.code} is not active.", code="broker_inactive")

    block = _block_lock(block_id=block_id)
    if block.status != Block.Status.OPEN:
        raise Conflict(
            f"Block {block.pk} is {block.status}; only an open block can be routed.",
            code="not_open",
        )
    orders = _block_orders_lock(block)
    if not orders:
        raise Conflict(f"Block {block.pk} has no orders.", code="empty_block")
    for order in orders:
        if order.status != OrderStatus.STAGED:
            raise Conflict(f"Order {order.pk} is {order.status}, not staged.", code="not_staged")
    tick = Security.objects.values_list("tick_size", flat=True).get(pk=block.security_id)
    if limit_price is not None:
        _tick_check(limit_price, tick, "Limit price")
    if stop_price is not None:
        _tick_check(stop_price, tick, "Stop price")
    _limit_respects_orders(side=block.side, limit=limit_price, orders=orders)

    before = _block_snapshot(block)
    block.broker = broker
    block.order_type = order_type
    block.limit_price = limit_price
    block.stop_price = stop_price
    block.time_in_force = time_in_force
    block.expire_date = expire_date
    block.strategy = strategy
    block.strategy_params = params
    block.status = Block.Status.ROUTED
    block.routed_at = as_of
    block.save()
    # The market at routing: the block's arrival benchmark for TCA (one statement).
    arrival_capture(kind="route", block_id=block.pk, as_of=as_of)
    allocation.allocation_plan_fix(block=block, actor=actor, as_of=as_of)
    route_details = {"block": block.pk, "broker": broker.code}
    orders_transition_bulk(
        orders=orders,
        to_status=OrderStatus.PENDING_NEW,
        as_of=as_of,
        kind="route",
        actor=actor,
        details_by_order={order.pk: route_details for order in orders},
    )
    outbound.block_route_enqueue(block=block, actor=actor, as_of=as_of)
    audit_record(
        actor=actor,
        action="block.route",
        obj=block,
        occurred_at=as_of,
        before=before,
        after=_block_snapshot(block),
    )
    return block


@retry_on_conflict(durable=True)
def block_cancel(*, block_id: int, actor, as_of: datetime) -> Block:
    """Ask the broker to cancel what is left of a routed block; the block and its unfinished
    orders show PENDING_CANCEL until the broker answers (the gateway moves them)."""
    _require_desk(actor)
    block = _block_lock(block_id=block_id)
    if block.status not in CANCELLABLE:
        raise Conflict(
            f"Block {block.pk} is {block.status}; it cannot be cancelled now.",
            code="not_cancellable",
        )
    before = _block_snapshot(block)
    # The gateway moves the block and its live orders to PENDING_CANCEL with the outbox row
    # (it remembers the prior state, to restore it if the broker refuses).
    outbound.block_cancel_enqueue(block=block, actor=actor, as_of=as_of)
    block.refresh_from_db()
    audit_record(
        actor=actor,
        action="block.cancel_request",
        obj=block,
        occurred_at=as_of,
        before=before,
        after={"status": block.status},
    )
    return block


@retry_on_conflict(durable=True)
def block_replace(
    *,
    block_id: int,
    quantity: Decimal | None = None,
    limit_price: Decimal | None = None,
    actor,
    as_of: datetime,
) -> Block:
    """Amend a working block's quantity or limit price (FIX cancel/replace). The block and its
    orders show PENDING_REPLACE; the broker's answer (through the gateway) applies the new
    terms or restores the old state."""
    _require_desk(actor)
    if quantity is None and limit_price is None:
        raise DomainError("Change the quantity or the limit price.", code="nothing_to_amend")
    block = _block_lock(block_id=block_id)
    if block.status not in REPLACEABLE:
        raise Conflict(
            f"Block {block.pk} is {block.status}; it can be amended once the broker has "
            "acknowledged it and while it is working.",
            code="not_replaceable",
        )
    orders = _block_orders_lock(block)
    ordered = sum((o.quantity for o in orders), Decimal(0))
    if quantity is not None:
        if quantity <= block.cum_qty:
            raise DomainError(
                f"The new quantity must exceed the {block.cum_qty} already filled.",
                code="invalid_quantity",
            )
        if quantity > ordered:
            raise DomainError(
                f"The new quantity exceeds the {ordered} the block's orders ask for.",
                code="invalid_quantity",
            )
    if limit_price is not None:
        if block.order_type not in (OrderType.LIMIT, OrderType.STOP_LIMIT):
            raise DomainError("Only a limit order has a limit price to amend.", code="not_limit")
        tick = Security.objects.values_list("tick_size", flat=True).get(pk=block.security_id)
        _tick_check(limit_price, tick, "Limit price")
        _limit_respects_orders(side=block.side, limit=limit_price, orders=orders)
    before = _block_snapshot(block)
    requested = {
        "quantity": str(quantity) if quantity is not None else None,
        "limit_price": str(limit_price) if limit_price is not None else None,
    }
    # As for a cancel, the gateway moves the block and its orders to PENDING_REPLACE.
    outbound.block_replace_enqueue(
        block=block, quantity=quantity, limit_price=limit_price, actor=actor, as_of=as_of
    )
    block.refresh_from_db()
    audit_record(
        actor=actor,
        action="block.replace_request",
        obj=block,
        occurred_at=as_of,
        before=before,
        after={"status": block.status, **requested},
    )
    return block


def _compliance_recheck(*, orders: list[Order], actor, as_of: datetime) -> None:
    verdicts = compliance_what_if(order_ids=[o.pk for o in orders], actor=actor, as_of=as_of)
    blocked = [pk for pk, verdict in (verdicts or {}).items() if verdict == "BLOCK"]
    if blocked:
        raise Conflict(
            f"Compliance blocks the cross for orders {blocked}.",
            code="compliance_blocked",
            details={"orders": blocked},
        )


@retry_on_conflict(durable=True)
def orders_cross(
    *,
    buy_order_id: int,
    sell_order_id: int,
    actor,
    as_of: datetime,
) -> dict[str, Any]:
    """Cross a staged buy against a staged sell in the same security from another account, at
    the reference price, without a broker: both orders fill (the smaller one completely) and
    both accounts' positions move; compliance is re-checked and the cross audited."""

    _require_desk(actor)
    orders = {o.pk: o for o in orders_lock(order_ids=[buy_order_id, sell_order_id])}
    if buy_order_id not in orders or sell_order_id not in orders or buy_order_id == sell_order_id:
        raise NotFound("Both orders of a cross must exist and differ.")
    buy, sell = orders[buy_order_id], orders[sell_order_id]
    if buy.side not in BUY_SIDES or sell.side not in SELL_SIDES:
        raise Conflict("A cross needs one buy and one sell.", code="cross_sides")
    if buy.security_id != sell.security_id:
        raise Conflict("A cross needs both orders in one security.", code="cross_security")
    if buy.account_id == sell.account_id:
        raise Conflict("An account cannot cross with itself.", code="cross_same_account")
    for order in (buy, sell):
        if order.status != OrderStatus.STAGED:
            raise Conflict(f"Order {order.pk} is {order.status}, not staged.", code="not_staged")
        if order.block_id and Block.objects.filter(pk=order.block_id, status__in=LIVE_BLOCK):
            raise Conflict(f"Order {order.pk} is in a block.", code="already_blocked")
    security = Security.objects.get(pk=buy.security_id)
    price = security.reference_price
    if price is None:
        raise Conflict(f"{security.symbol} has no reference price.", code="no_reference_price")
    if buy.limit_price is not None and price > buy.limit_price:
        raise Conflict(f"Reference price {price} is above the buy limit.", code="cross_limit")
    if sell.limit_price is not None and price < sell.limit_price:
        raise Conflict(f"Reference price {price} is below the sell limit.", code="cross_limit")
    quantity = min(buy.quantity - buy.cum_qty, sell.quantity - sell.cum_qty)
    _compliance_recheck(orders=[buy, sell], actor=actor, as_of=as_of)
    trade_date = as_of.date()
    settle_date = settlement_date(security=security, trade_date=trade_date)
    ref = f"CROSS-{buy.pk}-{sell.pk}-{as_of.strftime('%Y%m%dT%H%M%S%f')}"
    # Each side is a block of its own, filled internally: the same booking ledger, day
    # average, allocation and custodian file as a broker's fill.
    for order in (buy, sell):
        block = Block.objects.create(
            security=security,
            side=order.side,
            quantity=quantity,
            status=Block.Status.FILLED,
            strategy="CROSS",
            cum_qty=quantity,
            avg_price=price,
            created_by=actor,
            created_at=as_of,
            routed_at=as_of,
        )
        allocation.allocation_plan_fix(block=block, actor=actor, as_of=as_of, orders=[order])
        allocation.street_fills_record(
            fills=[
                allocation.BlockFill(
                    block=block,
                    execution_ref=f"{ref}-{order.pk}",
                    quantity=quantity,
                    price=price,
                    trade_date=trade_date,
                )
            ],
            as_of=as_of,
        )
        allocation.block_book(block=block, as_of=as_of, actor=actor)
        order.refresh_from_db()
    result = {
        "ref": ref,
        "buy_order": buy.pk,
        "sell_order": sell.pk,
        "quantity": quantity,
        "price": price,
        "trade_date": trade_date,
        "settle_date": settle_date,
    }
    audit_record(
        actor=actor,
        action="order.cross",
        obj=buy,
        occurred_at=as_of,
        after=result,
    )
    return result


LAYOUT_KEY = "blotter.layout"
LAYOUT_FIELDS = frozenset({"columns", "group_by", "filters"})
LAYOUT_MAX_BYTES = 32_000


def blotter_layout_save(*, user, layout: dict[str, Any]) -> dict[str, Any]:
    """Remember a user's grid layout (column order, widths, hidden columns, sort, filters,
    grouping) for their next visit."""
    if not isinstance(layout, dict) or set(layout) - LAYOUT_FIELDS:
        raise DomainError(
            f"A layout is an object with keys among {sorted(LAYOUT_FIELDS)}.", code="invalid"
        )
    if len(json.dumps(layout)) > LAYOUT_MAX_BYTES:
        raise DomainError("The layout is too large.", code="invalid")
    UserPreference.objects.update_or_create(user=user, key=LAYOUT_KEY, defaults={"value": layout})
    return layout
