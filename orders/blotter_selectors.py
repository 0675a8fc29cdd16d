"""Reading the blotter: the rows the trader's grid and the PM's My orders page show.

One query per call, always `.values()`: the snapshot serves tens of thousands of rows and the
publisher runs after every commit, so neither may touch a model instance or lazy relation.
"""

from __future__ import annotations

from datetime import datetime, time
from typing import Any

from django.contrib.postgres.aggregates import ArrayAgg
from django.core.exceptions import EmptyResultSet
from django.db import connection
from django.db.models import Q, QuerySet

from fixgateway.algo import broker_strategies
from fixgateway.models import Broker
from fixgateway.selectors import block_fix_history, broker_session_up, kill_switch_scopes
from fixgateway.selectors import broker_sessions as fix_broker_sessions
from oms.errors import NotFound
from oms.fields import ZERO
from oms.models import UserPreference
from oms.money import decimal_text
from oms.roles import ADMIN, TRADER, has_role, sees_all_accounts
from oms.selectors import accounts_visible_to, exceptions_open_counts

from .lifecycle import OPEN, OrderStatus
from .models import Block, Order

BLOTTER_GROUP = "blotter"

ROW_FIELDS = {
    "id": "id",
    "version": "version",
    "received_at": "received_at",
    "updated_at": "updated_at",
    "pm": "pm__username",
    "account_id": "account_id",
    "account": "account__code",
    "security_id": "security_id",
    "symbol": "security__symbol",
    # The grid shows prices to the security's tick and quantities as the lot allows.
    "tick_size": "security__tick_size",
    "currency": "security__currency",
    "side": "side",
    "quantity": "quantity",
    "cum_qty": "cum_qty",
    "leaves_qty": "leaves_qty",
    "avg_price": "avg_price",
    "order_type": "order_type",
    "limit_price": "limit_price",
    "time_in_force": "time_in_force",
    "status": "status",
    "compliance_status": "compliance_status",
    "block_id": "block_id",
    "block_status": "block__status",
    "broker": "block__broker__code",
    "strategy": "block__strategy",
    # Where the block's NewOrderSingle is: "queued" / "held" in the outbox, "withdrawn", or
    # "" once sent (fixgateway.FixOrder.outbox_state).
    "send_state": "block__fix_order__outbox_state",
    # Since when the broker cannot confirm the block (it reset its session, or a status request
    # failed); None when confirmed (fixgateway.FixOrder.unconfirmed_since).
    "unconfirmed_at_broker": "block__fix_order__unconfirmed_since",
    # The broker's last refusal of the block's order, cancel or replace (35=3, 35=j, 35=9 or
    # a rejected ExecutionReport): the grid shows its text as the reason.
    "reject": "block__fix_order__last_reject",
    # The notional column values an order at its limit, else at the reference price.
    "reference_price": "security__reference_price",
}
_DECIMALS = (
    "quantity",
    "cum_qty",
    "leaves_qty",
    "avg_price",
    "limit_price",
    "tick_size",
    "reference_price",
)
# Leaves as the desk reads them: nothing left on a finished order, the rest on anything else.
_NOTHING_LEFT = frozenset(
    {
        OrderStatus.FILLED,
        OrderStatus.CANCELLED,
        OrderStatus.REJECTED,
        OrderStatus.EXPIRED,
        OrderStatus.BLOCKED,
        OrderStatus.REPLACED,
    }
)


def pm_group(user_id: int) -> str:
    return f"orders.pm.{user_id}"


def may_work_orders(user) -> bool:
    return has_role(user, TRADER, ADMIN)


def feed_for(user, *, scope: str) -> str | None:
    """The websocket group a user's page follows: the firm-wide blotter or their own orders."""
    if not getattr(user, "is_authenticated", False):
        return None
    if scope == "blotter":
        return BLOTTER_GROUP if sees_all_accounts(user) else None
    return pm_group(user.pk)


def feed_accounts(user, *, scope: str) -> set[int] | None:
    """The accounts whose rows a replay of this user's feed may carry: None for every account
    (the firm-wide blotter, or a firm-wide role), else the ones they manage now."""
    if scope == "blotter" or sees_all_accounts(user):
        return None
    return set(accounts_visible_to(user).values_list("pk", flat=True))


def _row(values: dict[str, Any]) -> dict[str, Any]:
    row = {name: values[source] for name, source in ROW_FIELDS.items()}
    if row["status"] in _NOTHING_LEFT:
        row["leaves_qty"] = ZERO
    else:
        row["leaves_qty"] = row["quantity"] - row["cum_qty"]
    for name in _DECIMALS:
        value = row[name]
        row[name] = None if value is None else decimal_text(value)
    row["received_at"] = row["received_at"].isoformat()
    if row["unconfirmed_at_broker"] is not None:
        row["unconfirmed_at_broker"] = row["unconfirmed_at_broker"].isoformat()
    row["updated_at"] = row["updated_at"].isoformat()
    row["reject"] = (row["reject"] or {}).get("text", "")
    return row


def _blotter_orders(*, as_of: datetime) -> QuerySet[Order]:
    """Every order still open, plus everything touched since the start of as_of's UTC day."""
    day_start = datetime.combine(as_of.date(), time.min, tzinfo=as_of.tzinfo)
    return Order.objects.filter(
        Q(status__in=OPEN) | Q(updated_at__gte=day_start) | Q(received_at__gte=day_start)
    )


def _visible_orders(user, *, scope: str, as_of: datetime) -> QuerySet[Order]:
    qs = _blotter_orders(as_of=as_of)
    if scope == "blotter" and sees_all_accounts(user):
        return qs
    return qs.filter(account__in=accounts_visible_to(user).values("pk"))


def blotter_rows(*, user, scope: str, as_of: datetime) -> list[dict[str, Any]]:
    """The grid's rows for `user`: all orders (firm-wide roles, scope "blotter") or only the
    orders of the accounts they manage (scope "mine"). One query."""
    qs = _visible_orders(user, scope=scope, as_of=as_of).order_by("-received_at", "-id")
    return [_row(values) for values in qs.values(*ROW_FIELDS.values())]


# How Postgres writes each row field as the JSON _row makes of it (the snapshot's form): the
# snapshot of a full working day is tens of thousands of rows, and formatting them in Python and
# encoding the result took most of its time and memory. _row stays the definition (the
# publisher's); tests/blotter/test_snapshot_json.py holds the two to the same rows.
_SQL_INTS = frozenset({"id", "version", "account_id", "security_id", "block_id"})
_SQL_TIMES = frozenset({"received_at", "updated_at", "unconfirmed_at_broker"})


def _sql_json(name: str) -> str:
    column = f"t.c_{name}"
    if name == "leaves_qty":
        done = ", ".join(f"'{status}'" for status in sorted(_NOTHING_LEFT))
        return (
            f"CASE WHEN t.c_status IN ({done}) THEN '\"0\"' "
            "ELSE to_json(trim_scale(t.c_quantity - t.c_cum_qty)::text)::text END"
        )
    if name == "reject":
        # As _row: the refusal's text, "" when there is none.
        return f"coalesce(to_json({column}->>'text')::text, '\"\"')"
    if name in _SQL_INTS:
        value = f"{column}::text"
    elif name in _DECIMALS:
        value = f"to_json(trim_scale({column})::text)::text"
    elif name in _SQL_TIMES:
        # datetime.isoformat() of an aware UTC time: microseconds only when there are some.
        utc = f"({column} AT TIME ZONE 'UTC')"
        value = (
            f"'\"' || to_char({utc}, 'YYYY-MM-DD\"T\"HH24:MI:SS') || "
            f"CASE WHEN to_char({utc}, 'US') = '000000' THEN '' "
            f"ELSE '.' || to_char({utc}, 'US') END || '+00:00\"'"
        )
    else:
        value = f"to_json({column})::text"
    return f"coalesce({value}, 'null')"


SNAPSHOT_FORMS = ("objects", "columns")


def blotter_snapshot_json(*, user, scope: str, as_of: datetime, form: str = "objects") -> str:
    """blotter_rows as one JSON array, written by Postgres in one query: objects (the rows as
    _row makes them) or columns (each row an array in ROW_FIELDS order: the same data in
    about half the bytes, for pages that take it)."""
    qs = _visible_orders(user, scope=scope, as_of=as_of).order_by()
    try:
        inner, params = qs.values(*ROW_FIELDS.values()).query.sql_with_params()
    except EmptyResultSet:  # no account visible: nothing to ask Postgres
        return "[]"
    names = ", ".join(f"c_{name}" for name in ROW_FIELDS)
    if form == "columns":
        row = "'[' || " + " || ',' || ".join(_sql_json(name) for name in ROW_FIELDS) + " || ']'"
    else:
        row = (
            "'{' || "
            + " || ',' || ".join(f"'\"{name}\":' || {_sql_json(name)}" for name in ROW_FIELDS)
            + " || '}'"
        )
    sql = (
        f"SELECT '[' || coalesce(string_agg({row}, ',' "
        "ORDER BY t.c_received_at DESC, t.c_id DESC), '') || ']' "
        f"FROM ({inner}) AS t({names})"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()[0]


def order_rows_for_publish(*, order_ids: list[int]) -> list[tuple[dict[str, Any], list[int]]]:
    """Current rows of these orders with the ids of every PM managing each order's account,
    in one query (the publisher runs after every commit)."""
    qs = (
        Order.objects.filter(pk__in=order_ids)
        .annotate(manager_ids=ArrayAgg("account__managers__id", distinct=True, default=[]))
        .order_by("pk")
        .values(*ROW_FIELDS.values(), "manager_ids")
    )
    return [(_row(values), [m for m in values["manager_ids"] if m is not None]) for values in qs]


_BLOCK_DECIMALS = ("quantity", "cum_qty", "avg_price", "limit_price", "stop_price")


def block_detail(*, block_id: int) -> dict[str, Any] | None:
    """The block as the API shows it; quantities and prices as exact decimal strings."""
    row = (
        Block.objects.filter(pk=block_id)
        .values(
            "id",
            "status",
            "side",
            "quantity",
            "cum_qty",
            "avg_price",
            "order_type",
            "limit_price",
            "stop_price",
            "time_in_force",
            "strategy",
            "strategy_params",
            "security__symbol",
            "broker__code",
            "broker_id",
            "fix_order__outbox_state",
            "fix_order__last_reject",
            "fix_order__unconfirmed_since",
            "fix_order__unconfirmed_reason",
        )
        .first()
    )
    if row is not None:
        for name in _BLOCK_DECIMALS:
            row[name] = None if row[name] is None else decimal_text(row[name])
        # Routing to a session that is down only queues the order: the desk must see that.
        row["send_state"] = row.pop("fix_order__outbox_state") or ""
        row["queued"] = row["send_state"] in ("queued", "held")
        row["session_down"] = bool(row["queued"]) and not _session_up(row["broker_id"])
        row["last_reject"] = row.pop("fix_order__last_reject") or None
        row["unconfirmed_at_broker"] = row.pop("fix_order__unconfirmed_since")
        row["unconfirmed_reason"] = row.pop("fix_order__unconfirmed_reason") or ""
        row.pop("broker_id")
    return row


def _session_up(broker_id: int | None) -> bool:
    if broker_id is None:
        return False
    return broker_session_up(broker_id=broker_id)


def blotter_layout(*, user) -> dict[str, Any]:
    value = (
        UserPreference.objects.filter(user=user, key="blotter.layout")
        .values_list("value", flat=True)
        .first()
    )
    return value or {}


def broker_sessions() -> list[dict[str, Any]]:
    """Each broker's FIX session state from the gateway; "unknown" until the gateway reports."""
    return list(fix_broker_sessions())


def brokers_routable() -> list[dict[str, Any]]:
    """Active brokers with the strategies each takes (what routing would accept for it)."""
    rows = Broker.objects.filter(active=True).order_by("code")
    out = []
    for b in rows.values("id", "code", "name", "fix_version", "extra_config"):
        config = b.pop("extra_config")
        b["strategies"] = broker_strategies(fix_version=b.pop("fix_version"), extra_config=config)
        out.append(b)
    return out


def blotter_header() -> dict[str, Any]:
    """What the blotter's header shows, polled every few seconds: every engaged kill switch,
    the open exceptions (a count per kind) and each FIX session's state."""
    by_kind = exceptions_open_counts()
    return {
        "kill_switches": kill_switch_scopes(),
        "exceptions": {"open": sum(by_kind.values()), "by_kind": by_kind},
        "sessions": broker_sessions(),
    }


def block_history(*, user, block_id: int) -> dict[str, Any]:
    """The block with what the broker did with it (fixgateway.selectors.block_fix_history),
    for the blotter's side panel. A PM sees only blocks holding an order of an account they
    manage; any other block is NotFound, as is a missing one."""
    visible = Order.objects.filter(block_id=block_id)
    if not sees_all_accounts(user):
        visible = visible.filter(account__in=accounts_visible_to(user).values("pk"))
    block = block_detail(block_id=block_id) if visible.exists() else None
    if block is None:
        raise NotFound(f"Block {block_id} does not exist.")
    return {**block, **block_fix_history(block_id=block_id)}
