"""Reading orders: who may see which, the lists with their filters, one order with its history."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import Prefetch, QuerySet

from allocation.selectors import account_block_allocations
from compliance.selectors import order_compliance as compliance_of
from oms.errors import NotFound
from oms.models import Account
from oms.money import PRICE_PLACES, Terms, decimal_text, money_round, notional
from oms.roles import sees_all_accounts
from oms.selectors import accounts_visible_to

from .lifecycle import BEFORE_ROUTING, OrderStatus, can_transition
from .models import Order, OrderEvent, OrderType, Side
from .services import AMENDABLE_AT_BROKER, AMENDABLE_FIELDS, account_manageable_by

ORDER_FILTERS = ("status", "account", "security", "symbol", "side", "date", "date_from", "date_to")


def orders_visible_to(user) -> QuerySet[Order]:
    """Firm-wide roles see every order; a PM the orders of the accounts they manage."""
    qs = Order.objects.select_related("account", "security", "pm")
    if not getattr(user, "is_authenticated", False):
        return qs.none()
    if sees_all_accounts(user):
        return qs
    return qs.filter(account__in=accounts_visible_to(user).values("pk"))


def _as_date(value: Any) -> date | None:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        return None


def _day_start(day: date, plus_days: int = 0) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC) + timedelta(days=plus_days)


def order_list(*, user, filters: Mapping[str, Any] | None = None) -> QuerySet[Order]:
    """The orders `user` may see, filtered by status (comma-separated for several), account
    code, security symbol, side and the day received (UTC) or a range of days."""
    qs = orders_visible_to(user)
    filters = filters or {}
    if status := filters.get("status"):
        qs = qs.filter(status__in=[s.strip().upper() for s in str(status).split(",") if s])
    if account := filters.get("account"):
        # The account's id as a constant: the (account, received_at) index then gives the
        # newest page directly; joined by code, every order of the account was read and sorted.
        account_id = (
            Account.objects.filter(code=str(account).strip()).values_list("pk", flat=True).first()
        )
        qs = qs.filter(account_id=account_id) if account_id is not None else qs.none()
    symbol = filters.get("security") or filters.get("symbol")
    if symbol:
        qs = qs.filter(security__symbol=str(symbol).strip().upper())
    if side := filters.get("side"):
        qs = qs.filter(side=str(side).strip().upper())
    # Days as UTC ranges of received_at, not received_at::date: a range reads the index, the
    # cast read every order the user may see (bench/scale_bench.py).
    if day := _as_date(filters.get("date") or ""):
        qs = qs.filter(received_at__gte=_day_start(day), received_at__lt=_day_start(day, 1))
    if start := _as_date(filters.get("date_from") or ""):
        qs = qs.filter(received_at__gte=_day_start(start))
    if end := _as_date(filters.get("date_to") or ""):
        qs = qs.filter(received_at__lt=_day_start(end, 1))
    return qs.order_by("-received_at", "-id")


# What the My orders table shows of each order, read as values: model instances of the order,
# its account and security, and the template's filters on each, were most of a 100-row page's
# time on a million-order firm (bench/scale_bench.py).
ORDER_PAGE_COLUMNS = (
    "id",
    "version",
    "received_at",
    "account__code",
    "security__symbol",
    "security__tick_size",
    "side",
    "quantity",
    "order_type",
    "limit_price",
    "time_in_force",
    "expire_date",
    "status",
    "cum_qty",
    "leaves_qty",
    "avg_price",
    "compliance_status",
)
_SIDE_LABELS = dict(Side.choices)
_ORDER_TYPE_LABELS = dict(OrderType.choices)


def _plain(value: Decimal | None) -> str:
    """A quantity or price as written (100, 12.5); an empty cell for none."""
    return "" if value is None else decimal_text(value)


def order_list_values(orders: QuerySet[Order]) -> QuerySet:
    """`orders` (an order_list) read as the columns the My orders table shows."""
    return orders.select_related(None).values(*ORDER_PAGE_COLUMNS)


def order_page_rows(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Rows of order_list_values as the text of the My orders table (times in UTC)."""
    return [
        {
            "id": row["id"],
            "version": row["version"],
            "received_at": row["received_at"].astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
            "account": row["account__code"],
            "symbol": row["security__symbol"],
            "tick_size": str(row["security__tick_size"]),
            "side": _SIDE_LABELS.get(row["side"], row["side"]),
            "quantity": _plain(row["quantity"]),
            "order_type": _ORDER_TYPE_LABELS.get(row["order_type"], row["order_type"]),
            "limit_price": _plain(row["limit_price"]),
            "time_in_force": row["time_in_force"],
            "expire_date": row["expire_date"].isoformat() if row["expire_date"] else "",
            "status": row["status"],
            "cum_qty": _plain(row["cum_qty"]),
            "leaves_qty": _plain(row["leaves_qty"]),
            "avg_price": _plain(row["avg_price"]),
            "compliance_status": row["compliance_status"],
        }
        for row in rows
    ]


def order_get(*, user, order_id: int) -> Order:
    """One order, if `user` may see it (otherwise NotFound: its existence is not theirs)."""
    order = orders_visible_to(user).filter(pk=order_id).first()
    if order is None:
        raise NotFound(f"Order {order_id} not found.")
    return order


def order_with_events(*, order_id: int) -> Order:
    """One order with its history loaded (no visibility check: callers did it)."""
    events = Prefetch("events", queryset=order_events(order_id=order_id))
    return (
        Order.objects.select_related("account", "security", "pm")
        .prefetch_related(events)
        .get(pk=order_id)
    )


def order_events(*, order_id: int) -> QuerySet[OrderEvent]:
    return OrderEvent.objects.filter(order_id=order_id).select_related("actor").order_by("at", "id")


def order_compliance(*, order_id: int, user=None) -> dict | None:
    return compliance_of(order_id=order_id, user=user)


def order_actions(*, order: Order, user) -> dict[str, Any]:
    """What `user` may do with the order now, by the rules order_cancel, order_amend and
    compliance_override apply (they decide again on the request; this only spares the PM a
    button that can only fail). `amend_fields`: what an amend may change in this state."""

    none = {"cancel": False, "amend": False, "amend_fields": [], "override": False}
    if not account_manageable_by(user=user, account=order.account):
        return none
    before_routing = order.status in BEFORE_ROUTING
    if before_routing:
        # Before routing an order in a block belongs to the desk until it takes it out.
        free = order.block_id is None
        cancel = free and can_transition(order.status, OrderStatus.CANCELLED)
        amend = free and can_transition(order.status, OrderStatus.PENDING_COMPLIANCE)
        fields = list(AMENDABLE_FIELDS)
    else:
        cancel = can_transition(order.status, OrderStatus.PENDING_CANCEL)
        amend = can_transition(order.status, OrderStatus.PENDING_REPLACE)
        fields = list(AMENDABLE_AT_BROKER)
        if order.order_type not in ("LIMIT", "STOP_LIMIT"):
            fields.remove("limit_price")
    return {
        "cancel": cancel,
        "amend": amend,
        "amend_fields": fields if amend else [],
        # A warning is the order's PM's to lift; a block is Compliance's (not in this drawer).
        "override": order.status == OrderStatus.AWAITING_OVERRIDE and order.pm_id == user.pk,
    }


def order_fills(*, order: Order) -> list[dict[str, Any]]:
    """The order's fills as they moved it (its "fill" events: each booking of its share of the
    block's executions, a bust as a negative quantity), oldest first."""
    return [
        {
            "at": e.at,
            "quantity": e.details.get("quantity"),
            "price": e.details.get("price"),
        }
        for e in order.events.all()
        if e.kind == "fill" and e.details
    ]


def order_allocations(*, order: Order) -> list[dict[str, Any]]:
    """The order's account's allocations of its block (per trade date, at the day's
    average): what the custodian is told. Empty until a trading day is finalised."""
    if order.block_id is None:
        return []
    return [
        {
            "trade_date": a.trade_date,
            "settle_date": a.settle_date,
            "quantity": a.quantity,
            "avg_price": a.avg_price,
            "gross_amount": a.gross_amount,
            "accrued_interest": a.accrued_interest,
            "commission": a.commission,
            "fees": a.fees,
            "net_amount": a.net_amount,
            "currency": a.currency,
            "version": a.version,
        }
        for a in account_block_allocations(block_id=order.block_id, account_id=order.account_id)
    ]


def ticket_money(
    *, security, quantity: Decimal | None, price: Decimal | None, as_of: datetime
) -> dict[str, Any]:
    """What the ticket shows of the order's money (oms.money.notional, the one function every
    figure uses): how the price is quoted, the contract multiplier, the accrued interest per
    100 of face to as_of's date, and for a quantity at a price (the limit, else the reference
    price) the clean amount, the accrued interest and the total, each rounded once to the
    security's currency."""
    terms = Terms.of(security)
    day = as_of.date()
    facts: dict[str, Any] = {
        "price_quotation": terms.quotation,
        "contract_multiplier": terms.multiplier,
        "accrued_per_100": (terms.accrued_per_unit(day) * 100).quantize(PRICE_PLACES),
        "clean_amount": None,
        "accrued_amount": None,
        "total_amount": None,
    }
    price = price if price is not None else security.reference_price
    if quantity is not None and price is not None:
        n = notional(terms=terms, quantity=quantity, price=price, on=day)
        facts["clean_amount"] = money_round(n.clean, security.currency)
        facts["accrued_amount"] = money_round(n.accrued, security.currency)
        facts["total_amount"] = money_round(n.total, security.currency)
    return facts
