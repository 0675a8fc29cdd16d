"""Order capture (issue 3): an order request checked completely (order_input_validate, with
order_terms_validate for quantity and prices), its fingerprint for idempotency and duplicates,
validated orders inserted in PENDING_COMPLIANCE (one or set-wise), and approved orders staged
on the desk."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError

from audit.services import audit_record_many, bulk_insert
from marketdata.services import arrival_capture
from oms import roles
from oms.db import retry_on_conflict
from oms.errors import Conflict, DomainError
from oms.errors import NotFound as DomainNotFound
from oms.models import Account, Security
from oms.money import Terms, decimal_text, money_round, notional
from oms.roles import has_role
from oms.selectors import account_not_found

from . import broadcast
from .lifecycle import OrderStatus
from .models import Basket, Order, OrderEvent, OrderType, Side, TimeInForce
from .transitions import orders_lock, orders_transition_bulk

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


NEEDS_LIMIT = frozenset({OrderType.LIMIT, OrderType.STOP_LIMIT})


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
        return decimal_text(value)
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


def on_tick(price: Decimal, tick: Decimal) -> bool:
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
            f"Quantity {decimal_text(quantity)} is above the limit of {MAX_ORDER_QUANTITY:,} per order.",
        )
    elif security is not None and quantity % security.lot_size != 0:
        bad(
            "quantity",
            f"Quantity {decimal_text(quantity)} is not a multiple of {security.symbol}'s lot size "
            f"{decimal_text(security.lot_size)}.",
        )

    prices = {"limit_price": limit_price, "stop_price": stop_price}
    needs = {"limit_price": NEEDS_LIMIT, "stop_price": _NEEDS_STOP}
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
        elif price is not None and security is not None and not on_tick(price, security.tick_size):
            bad(
                field,
                f"The {label} {decimal_text(price)} is not on {security.symbol}'s tick size "
                f"{decimal_text(security.tick_size)}.",
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


def estimated_notional(item: OrderInput, as_of: datetime) -> Decimal | None:
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
                estimated_notional=estimated_notional(item, as_of),
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
                details=jsonable(after),
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


def jsonable(values: Mapping[str, Any]) -> dict[str, Any]:
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
