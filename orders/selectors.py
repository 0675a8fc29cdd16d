"""Reading orders: who may see which, the lists with their filters, one order with its history."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django.db.models import Prefetch, QuerySet

from oms.errors import NotFound
from oms.roles import sees_all_accounts
from oms.selectors import accounts_visible_to

from .models import Order, OrderEvent

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
        qs = qs.filter(account__code=str(account).strip())
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
    from compliance.selectors import order_compliance as compliance_of

    return compliance_of(order_id=order_id, user=user)
