"""Writing orders. Every change goes through order_transition (guarded by the lifecycle table,
row-locked, audited, pushed to the blotter after commit)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import F
from django.utils import timezone

from audit.services import audit_record, audit_record_many, bulk_insert
from marketdata.services import arrival_capture
from oms import roles
from oms.bulk_rows import any_of
from oms.db import retry_on_conflict
from oms.errors import Conflict, DomainError, NotPermitted
from oms.errors import NotFound as DomainNotFound
from oms.models import Account, Security
from oms.money import Terms, average_price, money_round, notional
from oms.roles import has_role
from oms.selectors import account_not_found, accounts_visible_to

from . import broadcast
from .lifecycle import OrderStatus, check_transition
from .models import Basket, Block, Order, OrderEvent, OrderType, Side, TimeInForce


def orders_lock(*, order_ids: list[int]) -> list[Order]:
    """Lock orders in pk order (one fixed order everywhere, so two writers never deadlock)."""
    return list(
        Order.objects.select_for_update(of=("self",))
        .filter(any_of(Order, "id", order_ids))  # one array parameter, however many orders
        .order_by("pk")
    )


def order_lock(*, order_id: int) -> Order:
    return Order.objects.select_for_update(of=("self",)).get(pk=order_id)


def order_event_record(
    *,
    order: Order,
    kind: str,
    as_of: datetime,
    actor=None,
    from_status: str = "",
    to_status: str = "",
    details: dict[str, Any] | None = None,
) -> OrderEvent:
    return OrderEvent.objects.create(
        order=order,
        kind=kind,
        at=as_of,
        actor=actor if getattr(actor, "pk", None) else None,
        from_status=from_status,
        to_status=to_status,
        details=details or {},
    )


def order_history_record(
    *,
    order: Order,
    kind: str,
    as_of: datetime,
    actor=None,
    from_status: str,
    to_status: str,
    details: dict[str, Any] | None = None,
    before: Any = None,
    after: Any = None,
) -> None:
    """What happened to the order, twice over: in its own history (OrderEvent) and in the
    firm's audit trail (action "order.<kind>"), in the caller's transaction."""
    order_event_record(
        order=order,
        kind=kind,
        as_of=as_of,
        actor=actor,
        from_status=from_status,
        to_status=to_status,
        details=details,
    )
    audit_record(
        actor=actor,
        action=f"order.{kind}",
        obj=order,
        occurred_at=as_of,
        before=before,
        after=after,
    )


def order_transition(
    *,
    order: Order,
    to_status: str,
    as_of: datetime,
    kind: str,
    actor=None,
    details: dict[str, Any] | None = None,
    extra_fields: dict[str, Any] | None = None,
) -> Order:
    """Move a locked order to `to_status` if the lifecycle table allows it.

    The caller holds the row lock (orders_lock/order_lock) inside its transaction. Also saves
    `extra_fields`, writes the order event and the audit event, and pushes the change on commit.
    """
    current = order.status
    check_transition(current, to_status)
    before = {"status": current, **{k: getattr(order, k) for k in (extra_fields or {})}}
    order.status = to_status
    for name, value in (extra_fields or {}).items():
        setattr(order, name, value)
    order.version += 1
    order.save(update_fields=["status", "version", "updated_at", *(extra_fields or {})])
    order_history_record(
        order=order,
        kind=kind,
        as_of=as_of,
        actor=actor,
        from_status=current,
        to_status=to_status,
        details=details,
        before=before,
        after={"status": to_status, **(extra_fields or {}), **(details or {})},
    )
    broadcast.order_changed_on_commit(order.pk)
    return order


def _order_change(
    *,
    order: Order,
    to_status: str,
    fields: Mapping[str, Any],
    before: dict[str, Any],
    after: dict[str, Any],
    details: dict[str, Any],
    kind: str,
    actor,
    as_of: datetime,
    now: datetime,
) -> tuple[OrderEvent, dict[str, Any]]:
    """Move a locked order in memory (status, fields, version) and return its order event and
    the keyword arguments of its audit event, for the caller to write set-wise."""
    current = order.status
    order.status = to_status
    for name, value in fields.items():
        setattr(order, name, value)
    order.version += 1
    order.updated_at = now
    event = OrderEvent(
        order=order,
        kind=kind,
        at=as_of,
        actor=actor if getattr(actor, "pk", None) else None,
        from_status=current,
        to_status=to_status,
        details=details,
    )
    audit = {
        "actor": actor,
        "action": f"order.{kind}",
        "obj": order,
        "occurred_at": as_of,
        "before": before,
        "after": after,
    }
    return event, audit


def orders_transition_bulk(
    *,
    orders: list[Order],
    to_status: str,
    as_of: datetime,
    kind: str,
    actor=None,
    details_by_order: Mapping[int, dict[str, Any]] | None = None,
    extra_fields_by_order: Mapping[int, dict[str, Any]] | None = None,
) -> list[Order]:
    """order_transition for many locked orders at once, with the same rows as a result: each
    order saved, one order event and one audit event each (in the orders' order), pushed on
    commit. Every order is checked against the lifecycle table first: one that may not move
    raises InvalidTransition and nothing is applied.

    The writes are set-wise (one UPDATE per distinct set of changes, one INSERT of events, one
    chain extension), so a 10,000-order program costs a handful of round trips, not 10,000.
    """
    if not orders:
        return []
    details_by_order = details_by_order or {}
    extra_fields_by_order = extra_fields_by_order or {}
    for order in orders:
        check_transition(order.status, to_status)
    if len({order.pk for order in orders}) != len(orders):
        raise DomainError("An order appears twice in one transition.", code="duplicate_order")
    now = timezone.now()
    events: list[OrderEvent] = []
    audits: list[dict[str, Any]] = []
    by_names: dict[tuple[str, ...], list[Order]] = {}
    for order in orders:
        extra = extra_fields_by_order.get(order.pk) or {}
        details = details_by_order.get(order.pk) or {}
        event, audit = _order_change(
            order=order,
            to_status=to_status,
            fields=extra,
            before={"status": order.status, **{k: getattr(order, k) for k in extra}},
            after={"status": to_status, **extra, **details},
            details=details,
            kind=kind,
            actor=actor,
            as_of=as_of,
            now=now,
        )
        by_names.setdefault(tuple(sorted(extra)), []).append(order)
        events.append(event)
        audits.append(audit)
    for names, members in by_names.items():
        _orders_update(orders=members, names=names, to_status=to_status, now=now)
    bulk_insert(events)
    audit_record_many(audits)
    for order in orders:
        broadcast.order_changed_on_commit(order.pk)
    return orders


# More distinct value sets than this among orders changing the same fields: one bulk_update
# (a CASE per field) beats an UPDATE per value set.
_MAX_UPDATES_PER_FIELD_SET = 4


def _orders_update(*, orders: list[Order], names: tuple[str, ...], to_status: str, now) -> None:
    """Write status, version, updated_at and the fields `names` of orders already changed in
    memory: one UPDATE per distinct set of values, or one bulk_update when they all differ."""
    by_values: dict[tuple, list[Order]] = {}
    try:
        for order in orders:
            by_values.setdefault(tuple(getattr(order, n) for n in names), []).append(order)
    except TypeError:  # an unhashable value (a JSON field): let bulk_update write each row
        by_values = {}
    if not by_values or len(by_values) > _MAX_UPDATES_PER_FIELD_SET:
        Order.objects.bulk_update(orders, ["status", "version", "updated_at", *names])
        return
    for values, members in by_values.items():
        # The rows are locked and their version was read under the lock, so F("version") + 1
        # is what each order now holds in memory.
        Order.objects.filter(pk__in=[o.pk for o in members]).update(
            status=to_status,
            version=F("version") + 1,
            updated_at=now,
            **dict(zip(names, values, strict=True)),
        )


def order_fill_apply(
    *,
    order: Order,
    quantity: Decimal,
    price: Decimal,
    as_of: datetime,
    exec_ref: str,
    actor=None,
    kind: str = "fill",
) -> Order:
    """Book `quantity` at `price` on a locked order (negative quantity reverses an earlier fill
    at that price, for busts and corrections). Keeps cum, leaves and average price exact and
    moves the status: filled when nothing is left, partially filled otherwise."""
    orders_fill_apply_many(
        fills=[OrderFill(order=order, quantity=quantity, price=price, exec_ref=exec_ref)],
        as_of=as_of,
        actor=actor,
        kind=kind,
    )
    return order


@retry_on_conflict
def order_set_status(
    *,
    order_id: int,
    to_status: str,
    as_of: datetime,
    kind: str,
    actor=None,
    details: dict[str, Any] | None = None,
) -> Order:
    """Lock one order and move it (for callers that have nothing else to change)."""
    order = order_lock(order_id=order_id)
    return order_transition(
        order=order, to_status=to_status, as_of=as_of, kind=kind, actor=actor, details=details
    )


# --- Order capture (issue 3): validation, create, stage, amend, cancel --------------------------

# Far beyond any real single order in our markets: a typo guard, not a risk limit.
MAX_ORDER_QUANTITY = Decimal("100000000")
MAX_INSTRUCTIONS_LENGTH = 2000
ORDER_INPUT_FIELDS = (
    "account",
    "symbol",
    "side",
    "quantity",
    "order_type",
    "limit_price",
    "stop_price",
    "time_in_force",
    "expire_date",
    "instructions",
)
_NEEDS_LIMIT = frozenset({OrderType.LIMIT, OrderType.STOP_LIMIT})
_NEEDS_STOP = frozenset({OrderType.STOP, OrderType.STOP_LIMIT})


@dataclass(frozen=True)
class OrderInput:
    """An order request that passed every check: what order_create and baskets insert."""

    account: Account
    security: Security
    side: str
    quantity: Decimal
    order_type: str
    limit_price: Decimal | None
    stop_price: Decimal | None
    time_in_force: str
    expire_date: date | None
    instructions: str

    def as_data(self) -> dict[str, Any]:
        return {
            "account": self.account.code,
            "symbol": self.security.symbol,
            "side": self.side,
            "quantity": self.quantity,
            "order_type": self.order_type,
            "limit_price": self.limit_price,
            "stop_price": self.stop_price,
            "time_in_force": self.time_in_force,
            "expire_date": self.expire_date,
            "instructions": self.instructions,
        }


def _canonical(value: Any) -> Any:
    if isinstance(value, Decimal):
        # 100, 100.0 and 1E+2 are the same quantity.
        return format(value.normalize(), "f")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str):
        return value.strip()
    return value


def order_data_fingerprint(*, data: Mapping[str, Any]) -> str:
    """A digest of what an order request asked for (same request, same digest)."""
    canonical = {name: _canonical(data.get(name)) for name in ORDER_INPUT_FIELDS}
    for name in ("account", "symbol", "side", "order_type", "time_in_force"):
        if isinstance(canonical[name], str):
            canonical[name] = canonical[name].upper()
    canonical["instructions"] = canonical["instructions"] or ""
    canonical["time_in_force"] = canonical["time_in_force"] or TimeInForce.DAY
    payload = json.dumps(canonical, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()


class OrderLookups:
    """The accounts and securities a batch of order requests names, loaded in two queries
    (a 10,000-line basket must not cost 20,000)."""

    def __init__(self, *, account_codes: Iterable[str], symbols: Iterable[str]) -> None:
        codes = {str(c).strip() for c in account_codes if c}
        syms = {str(s).strip().upper() for s in symbols if s}
        self.accounts = {
            a.code: a for a in Account.objects.filter(code__in=codes).prefetch_related("managers")
        }
        self.securities = {s.symbol: s for s in Security.objects.filter(symbol__in=syms)}

    def account(self, code: str) -> Account | None:
        return self.accounts.get(code)

    def security(self, symbol: str) -> Security | None:
        return self.securities.get(symbol.upper())


def account_manageable_by(*, user, account: Account) -> bool:
    """A PM trades the accounts they manage; Admin may trade any."""
    if has_role(user, roles.ADMIN):
        return True
    if not has_role(user, roles.PM):
        return False
    return any(m.pk == user.pk for m in account.managers.all())


def _num(value: Decimal) -> str:
    """A Decimal as people write it: 10, not 1E+1 or 10.00000000."""
    return format(value.normalize(), "f")


def _on_tick(price: Decimal, tick: Decimal) -> bool:
    return price % tick == 0


def order_terms_validate(
    *,
    security: Security | None,
    order_type: str,
    quantity: Any,
    limit_price: Decimal | None,
    stop_price: Decimal | None,
) -> dict[str, list[str]]:
    """The quantity and price checks (size limit, lot size, which prices the type takes, tick),
    as {field: [messages]}. Submit and the ticket's Check both use them, so Check never passes
    an order that Submit refuses."""
    errors: dict[str, list[str]] = {}

    def bad(field: str, message: str) -> None:
        errors.setdefault(field, []).append(message)

    if not isinstance(quantity, Decimal) or not quantity.is_finite():
        bad("quantity", "A quantity is required.")
    elif quantity <= 0:
        bad("quantity", "Quantity must be greater than zero.")
    elif quantity > MAX_ORDER_QUANTITY:
        bad(
            "quantity",
            f"Quantity {_num(quantity)} is above the limit of {MAX_ORDER_QUANTITY:,} per order.",
        )
    elif security is not None and quantity % security.lot_size != 0:
        bad(
            "quantity",
            f"Quantity {_num(quantity)} is not a multiple of {security.symbol}'s lot size "
            f"{_num(security.lot_size)}.",
        )

    prices = {"limit_price": limit_price, "stop_price": stop_price}
    needs = {"limit_price": _NEEDS_LIMIT, "stop_price": _NEEDS_STOP}
    for field, price in prices.items():
        label = field.replace("_", " ")
        if order_type not in OrderType.values:
            continue
        if order_type in needs[field] and price is None:
            bad(field, f"A {order_type} order needs a {label}.")
        elif order_type not in needs[field] and price is not None:
            bad(field, f"A {order_type} order takes no {label}.")
        elif price is not None and price <= 0:
            bad(field, f"The {label} must be greater than zero.")
        elif price is not None and security is not None and not _on_tick(price, security.tick_size):
            bad(
                field,
                f"The {label} {_num(price)} is not on {security.symbol}'s tick size "
                f"{_num(security.tick_size)}.",
            )
    return errors


def order_input_validate(
    *,
    pm,
    data: Mapping[str, Any],
    as_of: datetime,
    lookups: OrderLookups | None = None,
) -> OrderInput:
    """Check one order request completely. `data` holds typed values (Decimal, date) under the
    API's field names. Raises ValidationError {field: [messages]} for bad input and NotFound
    (the same words either way) when the account is unknown or not one the PM manages."""
    errors: dict[str, list[str]] = {}

    def bad(field: str, message: str) -> None:
        errors.setdefault(field, []).append(message)

    code = str(data.get("account") or "").strip()
    symbol = str(data.get("symbol") or "").strip().upper()
    lookups = lookups or OrderLookups(account_codes=[code], symbols=[symbol])

    account = lookups.account(code) if code else None
    if not code:
        bad("account", "An account is required.")
    elif account is None or not account_manageable_by(user=pm, account=account):
        raise account_not_found(code)
    elif not account.active:
        bad("account", f"Account {code} is closed to new orders.")

    security = lookups.security(symbol) if symbol else None
    if not symbol:
        bad("symbol", "A symbol is required.")
    elif security is None:
        bad("symbol", f"Unknown symbol '{symbol}'.")
    elif not security.active:
        bad("symbol", f"{symbol} is not active and cannot be traded.")

    side = str(data.get("side") or "").upper()
    if side not in Side.values:
        bad("side", f"Side must be one of {', '.join(Side.values)}.")
    order_type = str(data.get("order_type") or "").upper()
    if order_type not in OrderType.values:
        bad("order_type", f"Order type must be one of {', '.join(OrderType.values)}.")
    tif = str(data.get("time_in_force") or TimeInForce.DAY).upper()
    if tif not in TimeInForce.values:
        bad("time_in_force", f"Time in force must be one of {', '.join(TimeInForce.values)}.")

    quantity = data.get("quantity")
    prices = {"limit_price": data.get("limit_price"), "stop_price": data.get("stop_price")}
    for field, messages in order_terms_validate(
        security=security, order_type=order_type, quantity=quantity, **prices
    ).items():
        for message in messages:
            bad(field, message)

    expire_date = data.get("expire_date")
    if tif == TimeInForce.GTD:
        if expire_date is None:
            bad("expire_date", "A GTD order needs an expire date.")
        elif expire_date <= as_of.date():
            bad("expire_date", "The expire date of a GTD order must be after today.")
    elif expire_date is not None:
        bad("expire_date", "Only GTD orders take an expire date.")

    instructions = str(data.get("instructions") or "")
    if len(instructions) > MAX_INSTRUCTIONS_LENGTH:
        bad("instructions", f"Instructions are limited to {MAX_INSTRUCTIONS_LENGTH} characters.")

    if errors:
        raise ValidationError(errors)
    return OrderInput(
        account=account,
        security=security,
        side=side,
        quantity=quantity,
        order_type=order_type,
        limit_price=prices["limit_price"],
        stop_price=prices["stop_price"],
        time_in_force=tif,
        expire_date=expire_date,
        instructions=instructions,
    )


def _estimated_notional(item: OrderInput, as_of: datetime) -> Decimal | None:
    """The order's dirty notional in the security's currency (oms.money.notional: a bond's
    face per 100 plus accrued interest, a contract's multiplier)."""
    price = item.limit_price or item.security.reference_price
    if price is None:
        return None
    terms = Terms.of(item.security)
    value = notional(terms=terms, quantity=item.quantity, price=price, on=as_of.date()).total
    return money_round(value, item.security.currency)


def order_insert(
    *,
    pm,
    item: OrderInput,
    as_of: datetime,
    basket: Basket | None = None,
    idempotency_key: str | None = None,
    idempotency_fingerprint: str = "",
) -> Order:
    """Write one validated order in PENDING_COMPLIANCE with its event and audit row (the caller
    owns the transaction and runs the compliance check after)."""
    return orders_insert_bulk(
        pm=pm,
        items=[item],
        as_of=as_of,
        basket=basket,
        idempotency_key=idempotency_key,
        idempotency_fingerprint=idempotency_fingerprint,
    )[0]


def orders_insert_bulk(
    *,
    pm,
    items: list[OrderInput],
    as_of: datetime,
    basket: Basket | None = None,
    idempotency_key: str | None = None,
    idempotency_fingerprint: str = "",
) -> list[Order]:
    """Write validated orders in PENDING_COMPLIANCE, in the items' order, each with its create
    event and audit row: one INSERT of orders, one of events, one chain extension (the caller
    owns the transaction and runs the compliance check after). An idempotency key is for a
    single order only."""
    if idempotency_key and len(items) != 1:
        raise DomainError("An idempotency key names one order.", code="idempotency_key_batch")
    orders = bulk_insert(
        [
            Order(
                account=item.account,
                security=item.security,
                side=item.side,
                quantity=item.quantity,
                order_type=item.order_type,
                limit_price=item.limit_price,
                stop_price=item.stop_price,
                time_in_force=item.time_in_force,
                expire_date=item.expire_date,
                instructions=item.instructions,
                status=OrderStatus.PENDING_COMPLIANCE,
                pm=pm,
                received_at=as_of,
                basket=basket,
                leaves_qty=item.quantity,
                reference_price_at_entry=item.security.reference_price,
                estimated_notional=_estimated_notional(item, as_of),
                idempotency_key=idempotency_key,
                idempotency_fingerprint=idempotency_fingerprint,
            )
            for item in items
        ]
    )
    actor = pm if getattr(pm, "pk", None) else None
    events: list[OrderEvent] = []
    audits: list[dict[str, Any]] = []
    for item, order in zip(items, orders, strict=True):
        after = {**item.as_data(), "status": order.status, "basket": basket.pk if basket else None}
        events.append(
            OrderEvent(
                order=order,
                kind="create",
                at=as_of,
                actor=actor,
                from_status="",
                to_status=order.status,
                details=_jsonable(after),
            )
        )
        audits.append(
            {
                "actor": pm,
                "action": "order.create",
                "obj": order,
                "occurred_at": as_of,
                "after": after,
            }
        )
    bulk_insert(events)
    audit_record_many(audits)
    for order in orders:
        broadcast.order_changed_on_commit(order.pk)
    return orders


def _jsonable(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, Decimal | date) else v) for k, v in values.items()}


@retry_on_conflict
def orders_stage(*, order_ids: list[int], actor, as_of: datetime) -> list[Order]:
    """Put approved orders on the trading desk (APPROVED -> STAGED)."""
    orders = orders_lock(order_ids=order_ids)
    missing = set(order_ids) - {o.pk for o in orders}
    if missing:
        raise DomainNotFound(f"No such orders: {sorted(missing)}.")
    staged = orders_transition_bulk(
        orders=orders, to_status=OrderStatus.STAGED, as_of=as_of, kind="stage", actor=actor
    )
    # The market as the order reaches the desk: TCA's arrival benchmark (one statement).
    arrival_capture(kind="desk", order_ids=[o.pk for o in orders], as_of=as_of)
    return staged


def order_replay(*, pm, key: str, fingerprint: str) -> Order | None:
    existing = Order.objects.filter(pm=pm, idempotency_key=key).first()
    if existing is None:
        return None
    if existing.idempotency_fingerprint != fingerprint:
        raise Conflict(
            f"Idempotency-Key '{key}' was already used for a different order ({existing.pk}).",
            code="idempotency_key_reused",
            details={"order": existing.pk},
        )
    return existing


AMENDABLE_FIELDS = ("quantity", "limit_price", "stop_price", "time_in_force", "expire_date")
# At the broker a replace carries only these (FIX OrderCancelReplaceRequest as we send it).
AMENDABLE_AT_BROKER = ("quantity", "limit_price", "time_in_force")


def order_for_actor(*, order_id: int, actor) -> Order:
    """For a PM's amend or cancel: lock the order (its block first, the order FIX and
    allocation lock in too); someone who may not see it gets a 404, one who may see but not
    trade its account a 403."""
    plain = Order.objects.select_related("account").filter(pk=order_id).first()
    if plain is None or not accounts_visible_to(actor).filter(pk=plain.account_id).exists():
        raise DomainNotFound(f"Order {order_id} not found.")
    if not account_manageable_by(user=actor, account=plain.account):
        raise NotPermitted(f"You may not change orders of account {plain.account.code}.")
    if plain.block_id is not None:
        Block.objects.select_for_update().filter(pk=plain.block_id).first()
    order = (
        Order.objects.select_for_update(of=("self",))
        .select_related("account", "security")
        .get(pk=order_id)
    )
    if order.block_id != plain.block_id:
        raise Conflict(f"Order {order_id} changed blocks meanwhile; try again.", code="order_moved")
    return order


def order_amend_prepare(
    *, order_id: int, actor, changes: Mapping[str, Any]
) -> tuple[Order, dict[str, Any]]:
    """The order locked for an amend by `actor`, and what the amendment changes (a field that
    cannot be amended is a 400, a change of nothing a DomainError)."""
    unknown = set(changes) - set(AMENDABLE_FIELDS)
    if unknown:
        raise ValidationError({name: ["This field cannot be amended."] for name in sorted(unknown)})
    order = order_for_actor(order_id=order_id, actor=actor)
    current = {name: getattr(order, name) for name in AMENDABLE_FIELDS}
    diff = {k: v for k, v in changes.items() if current[k] != v}
    if not diff:
        raise DomainError("The amendment changes nothing.", code="nothing_to_amend")
    return order, diff


def order_amend_before_routing(*, order: Order, actor, as_of: datetime, diff) -> None:
    """Apply an amendment of an order not routed yet at once; it goes back to
    PENDING_COMPLIANCE (the caller checks it again)."""
    if order.block_id is not None:
        raise Conflict(
            f"Order {order.pk} is in block {order.block_id}; the desk must take it out first.",
            code="order_in_block",
        )
    merged = {
        "account": order.account.code,
        "symbol": order.security.symbol,
        "side": order.side,
        "order_type": order.order_type,
        "instructions": order.instructions,
        **{name: getattr(order, name) for name in AMENDABLE_FIELDS},
        **diff,
    }
    item = order_input_validate(pm=actor, data=merged, as_of=as_of)
    fields = {name: getattr(item, name) for name in diff}
    fields["leaves_qty"] = item.quantity - order.cum_qty
    fields["estimated_notional"] = _estimated_notional(item, as_of)
    details = {"changes": _jsonable(diff)}
    if order.status == OrderStatus.PENDING_COMPLIANCE:
        before = _jsonable({name: getattr(order, name) for name in fields})
        for name, value in fields.items():
            setattr(order, name, value)
        order.version += 1
        order.save(update_fields=["version", "updated_at", *fields])
        order_history_record(
            order=order,
            kind="amend",
            as_of=as_of,
            actor=actor,
            from_status=order.status,
            to_status=order.status,
            details=details,
            before=before,
            after=_jsonable(fields),
        )
        broadcast.order_changed_on_commit(order.pk)
    else:
        order_transition(
            order=order,
            to_status=OrderStatus.PENDING_COMPLIANCE,
            as_of=as_of,
            kind="amend",
            actor=actor,
            details=details,
            extra_fields={**fields, "compliance_status": ""},
        )


def order_amend_request(*, order: Order, actor, as_of: datetime, diff) -> None:
    """Validate an amendment of an order at the broker and record the request; the caller
    asks the broker (the new terms apply when it confirms)."""
    refused = sorted(set(diff) - set(AMENDABLE_AT_BROKER))
    if refused:
        raise ValidationError(
            {name: ["Cannot be changed once the order is at the broker."] for name in refused}
        )
    check_transition(order.status, OrderStatus.PENDING_REPLACE)
    errors: dict[str, list[str]] = {}
    quantity = diff.get("quantity")
    if quantity is not None:
        if quantity <= order.cum_qty:
            errors["quantity"] = [f"Quantity must stay above the {order.cum_qty} already filled."]
        elif quantity > MAX_ORDER_QUANTITY or quantity % order.security.lot_size != 0:
            errors["quantity"] = [
                f"Quantity must be a multiple of the lot size "
                f"{_num(order.security.lot_size)} and at most {MAX_ORDER_QUANTITY:,}."
            ]
    if "limit_price" in diff:
        limit_price = diff["limit_price"]
        if order.order_type not in _NEEDS_LIMIT:
            errors["limit_price"] = [f"A {order.order_type} order takes no limit price."]
        elif limit_price is None or limit_price <= 0:
            errors["limit_price"] = ["The limit price must be greater than zero."]
        elif not _on_tick(limit_price, order.security.tick_size):
            errors["limit_price"] = [
                f"The limit price {_num(limit_price)} is not on the tick size "
                f"{_num(order.security.tick_size)}."
            ]
    if diff.get("time_in_force") == TimeInForce.GTD:
        errors["time_in_force"] = ["An order at the broker cannot become GTD."]
    if errors:
        raise ValidationError(errors)
    order_history_record(
        order=order,
        kind="amend_request",
        as_of=as_of,
        actor=actor,
        from_status=order.status,
        to_status=order.status,
        details={"requested": _jsonable(diff)},
        before=_jsonable({name: getattr(order, name) for name in diff}),
        after=_jsonable(diff),
    )


def order_cancel_before_routing(*, order: Order, actor, as_of: datetime, reason: str = "") -> Order:
    """Cancel an order that was not routed (and is in no block) at once."""
    if order.block_id is not None:
        raise Conflict(
            f"Order {order.pk} is in block {order.block_id}; the desk must take it out first.",
            code="order_in_block",
        )
    return order_transition(
        order=order,
        to_status=OrderStatus.CANCELLED,
        as_of=as_of,
        kind="cancel",
        actor=actor,
        details={"reason": reason} if reason else None,
        extra_fields={"leaves_qty": Decimal(0)},
    )


def order_cancel_request(*, order: Order, actor, as_of: datetime, reason: str = "") -> None:
    """Record a PM's request to cancel an order at the broker; the caller asks the broker
    (the order moves to PENDING_CANCEL with the outbox row)."""
    check_transition(order.status, OrderStatus.PENDING_CANCEL)
    details = {"reason": reason} if reason else None
    order_history_record(
        order=order,
        kind="cancel_request",
        as_of=as_of,
        actor=actor,
        from_status=order.status,
        to_status=order.status,
        details=details,
        before={"status": order.status},
        after=details,
    )


# --- Fills in bulk (the execution-report path) ---------------------------------------------


@dataclass(frozen=True)
class OrderFill:
    """Shares booked to an order (negative: taken back) at a price. `value`, when given, is
    the exact change of the order's filled value (the booking ledger prices a share of several
    executions, or re-prices a day at its average with quantity 0); else quantity x price."""

    order: Order
    quantity: Decimal
    price: Decimal
    exec_ref: str
    value: Decimal | None = None


_FILL_KEEPS_STATUS = frozenset(
    {
        OrderStatus.PENDING_CANCEL,
        OrderStatus.PENDING_REPLACE,
        OrderStatus.CANCELLED,
        OrderStatus.DONE_FOR_DAY,
        OrderStatus.EXPIRED,
    }
)
_FILL_FIELDS = ("cum_qty", "leaves_qty", "avg_price", "filled_value")


def _fill_snapshot(order: Order) -> dict[str, Any]:
    return {
        name: getattr(order, name) for name in ("status", "version", "updated_at", *_FILL_FIELDS)
    }


def _fill_outcome(fill: OrderFill) -> tuple[str, dict[str, Any]]:
    """The status a fill moves its order to and the figures it sets, or the Conflict."""
    order, quantity, price = fill.order, fill.quantity, fill.price
    if quantity == 0 and not fill.value:
        raise Conflict("A fill of zero changes nothing.", code="empty_fill")
    new_cum = order.cum_qty + quantity
    if new_cum < 0:
        raise Conflict(
            f"Reversing {-quantity} would take order {order.pk} below zero filled.",
            code="negative_fill",
        )
    if new_cum > order.quantity:
        raise Conflict(
            f"Overfill: order {order.pk} would have {new_cum} filled of {order.quantity}.",
            code="overfill",
            details={"order": order.pk, "cum_qty": str(new_cum)},
        )
    new_value = order.filled_value + (price * quantity if fill.value is None else fill.value)
    avg = average_price(new_value, new_cum)
    fields = {
        "cum_qty": new_cum,
        "leaves_qty": order.quantity - new_cum,
        "avg_price": avg,
        "filled_value": new_value,
    }
    if quantity == 0:
        target = order.status  # a day re-priced at its average: the shares stay as they are
    elif new_cum == order.quantity:
        target = OrderStatus.FILLED
    elif quantity > 0 and order.status == OrderStatus.DONE_FOR_DAY:
        # A GTC order trading again on a later day is working again.
        target = OrderStatus.PARTIALLY_FILLED
    elif order.status in _FILL_KEEPS_STATUS:
        target = order.status  # a fill racing a cancel: book it, keep the pending/final state
    elif new_cum == 0:
        target = OrderStatus.WORKING
    else:
        target = OrderStatus.PARTIALLY_FILLED
    if target != order.status:
        check_transition(order.status, target)
    if target in (OrderStatus.CANCELLED, OrderStatus.EXPIRED, OrderStatus.REJECTED):
        fields["leaves_qty"] = Decimal(0)  # closed: nothing is left to work, whatever it holds
    return target, fields


def orders_fill_apply_many(
    *, fills: list[OrderFill], as_of: datetime, actor=None, kind: str = "fill"
) -> list[Order]:
    """order_fill_apply for several locked orders (e.g. the slices of one execution, or of a
    run of executions, where an order may come more than once): the same order rows, order
    events and audit events as applying them one by one in this order, written with one
    UPDATE, one INSERT of events and one chain extension. Every fill is checked before
    anything is written: a Conflict or InvalidTransition leaves every order as it was.

    The events go in as values (oms.bulk_rows.rows_insert), not model instances: a wide block
    fills a thousand orders at once."""
    if not fills:
        return []
    now = timezone.now()
    actor_id = actor.pk if getattr(actor, "pk", None) else None
    events: list[tuple] = []
    audits: list[dict[str, Any]] = []
    kept = {f.order.pk: (f.order, _fill_snapshot(f.order)) for f in fills}
    try:
        for fill in fills:
            # One at a time: a later fill of the same order starts where the earlier one left it.
            target, fields = _fill_outcome(fill)
            order = fill.order
            details = {
                "quantity": str(fill.quantity),
                "price": str(fill.price),
                "exec_ref": fill.exec_ref,
            }
            if target == order.status:
                before: dict[str, Any] = {k: str(getattr(order, k)) for k in fields}
                after = {**fields, **details}
            else:
                before = {"status": order.status, **{k: getattr(order, k) for k in fields}}
                after = {"status": target, **fields, **details}
            # As _order_change: the order moves in memory, its event and audit are gathered.
            events.append((order.pk, as_of, kind, order.status, target, actor_id, details))
            order.status = target
            for name, value in fields.items():
                setattr(order, name, value)
            order.version += 1
            order.updated_at = now
            audits.append(
                {
                    "actor": actor,
                    "action": f"order.{kind}",
                    "obj": order,
                    "occurred_at": as_of,
                    "before": before,
                    "after": after,
                }
            )
    except DomainError:
        for order, snapshot in kept.values():
            for name, value in snapshot.items():
                setattr(order, name, value)
        raise
    from oms.bulk_rows import rows_insert, rows_update  # here, so this block stays together

    orders = [order for order, _ in kept.values()]
    names = ["status", "version", "updated_at", *_FILL_FIELDS]
    rows_update(orders, names)
    rows_insert(OrderEvent, _EVENT_FIELDS, events)
    audit_record_many(audits)
    for order in orders:
        broadcast.order_changed_on_commit(order.pk)
    return orders


_EVENT_FIELDS = ("order_id", "at", "kind", "from_status", "to_status", "actor_id", "details")
