"""Scale (issue "Platform under load and abuse", item 6), in the scratch database the runner
gives it: a firm with a year of history and a full working day.

Data, built set-wise (INSERT ... SELECT generate_series, COPY):
- OMS_SCALE_ORDERS historical orders (default 1,000,000; filled, cancelled, rejected) over the
  365 days before today, each with three order events (create, stage, its end) and the three
  matching audit rows, linked into the hash chain by audit.services.event_digest, the function
  audit_record uses, so `manage.py audit_verify` passes over them;
- OMS_SCALE_WORKING working orders (default 10,000) received today, in blocks of 10, with their
  events and audit rows too;
- 20 PMs managing 10 accounts each, 2,000 securities, 200 positions an account, the post-trade
  rule kinds in every scope.

Figures (targets from the issue), each next to a floor measured in the same run:
- blotter snapshot of the working set: <= 500 ms, and its payload (rows and columns form);
- order list API (trader, PM, filtered) and the PM's My orders page: p99 <= 50 ms;
- the audit page and its searches: p99 <= 200 ms;
- a post-trade compliance run: <= 10 s;
- 100 websocket clients at 200 order updates/s: p99 <= 100 ms (bench/blotter_bench.py's run).

Run with `make bench ARGS=scale` (`OMS_SCALE_ORDERS=100000 make bench ARGS=scale` for a
smaller history).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import statistics
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

HISTORY = int(os.environ.get("OMS_SCALE_ORDERS", "1000000"))
WORKING = int(os.environ.get("OMS_SCALE_WORKING", "10000"))
PMS = 20
ACCOUNTS_PER_PM = 10
SECURITIES = 2_000
POSITIONS_PER_ACCOUNT = 200
BLOCK_SIZE = 10
SAMPLES = int(os.environ.get("OMS_SCALE_SAMPLES", "200"))
SNAPSHOT_RUNS = 7
WS_CLIENTS = 100
WS_RATE = 200
AUDIT_CHUNK = 50_000

TARGETS = {
    "blotter_snapshot_ms": 500,
    "order_list_p99_ms": 50,
    "my_orders_p99_ms": 50,
    "audit_p99_ms": 200,
    "post_trade_run_s": 10,
    "websocket_p99_ms": 100,
}


def _ms(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 2)


def _sql(statement: str, params=None) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(statement, params)


def _one(statement: str, params=None):
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.fetchone()


# --- the firm ---------------------------------------------------------------------------------


def _firm() -> dict:
    from compliance.models import RuleKind
    from compliance.services import restricted_entry_add, rule_create
    from oms.models import Account, AccountTag, Custodian, Issuer, Security
    from oms.roles import COMPLIANCE, PM, TRADER, roles_sync
    from tests import factories

    roles_sync()
    rng = random.Random(6)
    trader = factories.user("scale_trader", TRADER)
    officer = factories.user("scale_cco", COMPLIANCE)
    pms = [factories.user(f"scale_pm{i:02d}", PM) for i in range(PMS)]
    sectors = ["Energy", "Financials", "Health Care", "Industrials", "Utilities", "Materials"]
    issuers = Issuer.objects.bulk_create([Issuer(name=f"Scale issuer {i}") for i in range(1500)])
    securities = Security.objects.bulk_create(
        [
            Security(
                symbol=f"SC{i:04d}",
                name=f"Scale {i}",
                asset_class="EQUITY",
                exchange_mic="XNYS",
                currency="USD",
                sector=sectors[i % len(sectors)],
                issuer=issuers[i % len(issuers)],
                shares_outstanding=Decimal(rng.randint(50, 5000) * 1_000_000),
                avg_daily_volume=Decimal(rng.randint(200, 20_000) * 1_000),
                reference_price=Decimal(rng.randint(500, 50_000)) / 100,
            )
            for i in range(SECURITIES)
        ]
    )
    custodian = Custodian.objects.create(code="SCALECUST", name="Scale custodian")
    tag = AccountTag.objects.create(name="SCALE_ERISA")
    accounts = Account.objects.bulk_create(
        [
            Account(
                code=f"SA{i:03d}",
                name=f"Scale account {i}",
                custodian=custodian,
                custodian_account=f"C{i}",
                is_cash_account=i % 5 != 0,
            )
            for i in range(PMS * ACCOUNTS_PER_PM)
        ]
    )
    through = Account.managers.through
    through.objects.bulk_create(
        [through(account_id=a.pk, user_id=pms[i % PMS].pk) for i, a in enumerate(accounts)]
    )
    Account.tags.through.objects.bulk_create(
        [Account.tags.through(account_id=a.pk, accounttag_id=tag.pk) for a in accounts[::2]]
    )
    as_of = datetime.now(UTC)
    for scope in ("ALL", "TAG", "ACCOUNTS"):
        for kind, params in (
            (RuleKind.RESTRICTED_LIST, {}),
            (RuleKind.ISSUER_CONCENTRATION, {"max_pct": "10"}),
            (RuleKind.SECTOR_CONCENTRATION, {"max_pct": "40"}),
            (RuleKind.FIRM_OWNERSHIP, {"max_pct": "5"}),
            (RuleKind.NO_SHORT, {}),
            (RuleKind.CASH, {}),
        ):
            rule_create(
                actor=officer,
                as_of=as_of,
                name=f"scale {scope} {kind}",
                kind=kind,
                parameters=params,
                severity="BLOCK",
                scope=scope,
                tag_id=tag.pk if scope == "TAG" else None,
                account_ids=[a.pk for a in accounts[:50]] if scope == "ACCOUNTS" else None,
            )
    for s in securities[:20]:
        restricted_entry_add(
            actor=officer, as_of=as_of, security_id=s.pk, reason="scale", start_date=as_of.date()
        )
    return {
        "trader": trader,
        "officer": officer,
        "pms": pms,
        "account_ids": [a.pk for a in accounts],
        "security_ids": [s.pk for s in securities],
    }


def _firm_load() -> dict:
    from django.contrib.auth.models import User

    from oms.models import Account, Security

    return {
        "trader": User.objects.get(username="scale_trader"),
        "officer": User.objects.get(username="scale_cco"),
        "pms": list(User.objects.filter(username__startswith="scale_pm").order_by("username")),
        "account_ids": list(
            Account.objects.filter(code__startswith="SA")
            .order_by("pk")
            .values_list("pk", flat=True)
        ),
        "security_ids": list(
            Security.objects.filter(symbol__startswith="SC")
            .order_by("pk")
            .values_list("pk", flat=True)
        ),
    }


def _positions(firm: dict) -> None:
    """POSITIONS_PER_ACCOUNT holdings an account (a spread of securities), cash in each."""
    accounts, securities = firm["account_ids"], firm["security_ids"]
    _sql(
        """
        INSERT INTO positions_position (account_id, security_id, quantity, avg_cost, cost_basis,
            realized_pnl, opening_quantity, opening_avg_cost, opening_ledger_id, updated_at)
        SELECT a.id, s.id, ((a.n * 7 + s.n) %% 200 + 1) * 100, 0, 0, 0, 0, 0, 0, now()
        FROM unnest(%s::bigint[]) WITH ORDINALITY AS a(id, n)
        JOIN unnest(%s::bigint[]) WITH ORDINALITY AS s(id, n)
          ON (s.n + a.n * 13) %% (%s / %s) = 0
        """,
        [accounts, securities, len(securities), POSITIONS_PER_ACCOUNT],
    )
    _sql(
        """
        INSERT INTO positions_cashbalance (account_id, currency, settled, projected,
            opening_settled, updated_at)
        SELECT id, 'USD', CASE WHEN n %% 17 = 0 THEN -1000 ELSE 5000000 END,
               5000000, 0, now()
        FROM unnest(%s::bigint[]) WITH ORDINALITY AS a(id, n)
        """,
        [accounts],
    )


# --- orders, events, audit rows ---------------------------------------------------------------

# The orders of one range, set-wise: account, PM and security follow from the row number g; the
# account's PM is the one managing it (accounts are dealt to the PMs in turn, as in _firm).
_ORDERS_SQL = """
INSERT INTO orders_order (id, account_id, security_id, side, quantity, order_type, limit_price,
    time_in_force, instructions, status, pm_id, received_at, updated_at, block_id, cum_qty,
    leaves_qty, avg_price, filled_value, compliance_status, idempotency_fingerprint, version)
SELECT %(first)s + g - 1,
       acct.id, sec.id, side, qty, 'LIMIT', px, 'DAY', '', status, pm.id,
       %(start)s::timestamptz + (g - 1) * %(step)s::interval,
       %(start)s::timestamptz + (g - 1) * %(step)s::interval + interval '5 seconds',
       CASE WHEN %(blocks)s THEN %(first_block)s + (g - 1) / %(block_size)s END,
       CASE WHEN status = 'FILLED' THEN qty ELSE 0 END,
       CASE WHEN status IN ('FILLED', 'CANCELLED', 'REJECTED') THEN 0 ELSE qty END,
       CASE WHEN status = 'FILLED' THEN px END,
       CASE WHEN status = 'FILLED' THEN qty * px ELSE 0 END,
       'PASS', '', 4
FROM generate_series(1, %(n)s) AS g
CROSS JOIN LATERAL (SELECT
    CASE WHEN %(blocks)s THEN ((g - 1) / %(block_size)s) %% %(n_accounts)s
         ELSE g %% %(n_accounts)s END AS a,
    CASE WHEN %(blocks)s THEN ((g - 1) / %(block_size)s * 7) %% %(n_securities)s
         ELSE (g * 7) %% %(n_securities)s END AS s,
    CASE WHEN (CASE WHEN %(blocks)s THEN (g - 1) / %(block_size)s ELSE g END) %% 3 = 0
         THEN 'SELL' ELSE 'BUY' END AS side,
    (100 + (g %% 50) * 100)::numeric AS qty,
    (10 + (g %% 500))::numeric AS px,
    CASE WHEN %(working)s THEN 'WORKING'
         WHEN g %% 20 < 17 THEN 'FILLED'
         WHEN g %% 20 < 19 THEN 'CANCELLED'
         ELSE 'REJECTED' END AS status) AS f
JOIN LATERAL (SELECT (%(accounts)s::bigint[])[f.a + 1] AS id) AS acct ON true
JOIN LATERAL (SELECT (%(account_pms)s::bigint[])[f.a + 1] AS id) AS pm ON true
JOIN LATERAL (SELECT (%(securities)s::bigint[])[f.s + 1] AS id) AS sec ON true
"""

# Three events an order, the audit trail's twins: create, stage, and how it ended (or routed).
_EVENTS_SQL = """
INSERT INTO orders_orderevent (order_id, at, kind, from_status, to_status, actor_id, details)
SELECT o.id, o.received_at + e.after, e.kind, e.from_status,
       CASE WHEN e.n = 3 THEN o.status ELSE e.to_status END,
       CASE WHEN e.n = 3 AND o.status IN ('FILLED', 'WORKING', 'REJECTED') THEN NULL
            ELSE o.pm_id END,
       '{}'::jsonb
FROM orders_order o
CROSS JOIN LATERAL (VALUES
    (1, interval '0', 'create', '', 'PENDING_COMPLIANCE'),
    (2, interval '1 second', 'stage', 'PENDING_COMPLIANCE', 'STAGED'),
    (3, interval '5 seconds',
        CASE o.status WHEN 'FILLED' THEN 'fill' WHEN 'CANCELLED' THEN 'cancel'
                      WHEN 'REJECTED' THEN 'reject' ELSE 'route' END,
        'STAGED', '')
) AS e(n, after, kind, from_status, to_status)
WHERE o.id BETWEEN %(first)s AND %(last)s
ORDER BY o.id, e.n
"""

_END_KIND = {"FILLED": "fill", "CANCELLED": "cancel", "REJECTED": "reject", "WORKING": "route"}


def _orders(firm: dict, *, first: int, n: int, start: datetime, step: timedelta, working: bool):
    """n orders with ids first.. and their events; blocks of BLOCK_SIZE for working ones."""
    pm_of = {a: firm["pms"][i % PMS].pk for i, a in enumerate(firm["account_ids"])}
    first_block = 0
    if working:
        first_block = _blocks(firm, n=n, start=start)
    _sql(
        _ORDERS_SQL,
        {
            "first": first,
            "n": n,
            "start": start,
            "step": step,
            "working": working,
            "blocks": working,
            "first_block": first_block,
            "block_size": BLOCK_SIZE,
            "n_accounts": len(firm["account_ids"]),
            "n_securities": len(firm["security_ids"]),
            "accounts": firm["account_ids"],
            "account_pms": [pm_of[a] for a in firm["account_ids"]],
            "securities": firm["security_ids"],
        },
    )
    _sql(_EVENTS_SQL, {"first": first, "last": first + n - 1})


def _blocks(firm: dict, *, n: int, start: datetime) -> int:
    """The working orders' blocks (BLOCK_SIZE orders each, one security and side), as the desk
    made them; returns the first block's id. Filled in from the orders once they exist."""
    count = (n + BLOCK_SIZE - 1) // BLOCK_SIZE
    first = _one(
        """
        WITH made AS (
            INSERT INTO orders_block (security_id, side, quantity, status, order_type,
                time_in_force, strategy, strategy_params, cum_qty, allocation_plan,
                allocation_plan_hash, created_by_id, created_at, routed_at, updated_at)
            SELECT %s, 'BUY', 1, 'WORKING', 'LIMIT', 'DAY', 'DMA', '{}', 0, '[]', '', %s,
                   %s, %s, now()
            FROM generate_series(1, %s)
            RETURNING id)
        SELECT min(id) FROM made
        """,
        [firm["security_ids"][0], firm["trader"].pk, start, start, count],
    )[0]
    return first


def _blocks_fill_in(first_order: int, last_order: int) -> None:
    _sql(
        """
        UPDATE orders_block b SET security_id = o.security_id, side = o.side,
            quantity = o.quantity, limit_price = o.limit_price
        FROM (SELECT block_id, min(security_id) AS security_id, min(side) AS side,
                     sum(quantity) AS quantity, min(limit_price) AS limit_price
              FROM orders_order WHERE id BETWEEN %s AND %s GROUP BY block_id) o
        WHERE b.id = o.block_id
        """,
        [first_order, last_order],
    )


def _canonical(value) -> str:
    # What json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False) writes, for
    # the plain values the generator uses (ASCII text without quotes or backslashes, ints,
    # None, flat dicts of those): event_digest's canonical form at a tenth of its cost.
    if value is None:
        return "null"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return f'"{value}"'
    return "{" + ",".join(f'"{k}":{_canonical(value[k])}' for k in sorted(value)) + "}"


def _digest(fields: dict) -> str:
    """event_digest of these fields (cross-checked against it once a chunk)."""
    at = fields["occurred_at"].astimezone(UTC).isoformat(timespec="microseconds")
    payload = {**fields, "occurred_at": at}
    return hashlib.sha256(_canonical(payload).encode()).hexdigest()


def _copy_text(value) -> str:
    # COPY's text format; no generated value holds a tab, newline or backslash.
    if value is None:
        return "\\N"
    if isinstance(value, dict):
        return json.dumps(value)
    return str(value)


def _audit_rows(first: int, last: int) -> int:
    """The audit rows of orders first..last, three an order in the events' order, linked after
    the chain's head exactly as event_digest links them (checked against it once a chunk) and
    copied in. The chain lock is held as audit_record holds it, so nothing else extends the
    chain meanwhile."""
    from django.db import connection, transaction

    from audit.services import _chain_head, event_digest

    written = 0
    with transaction.atomic():
        seq, prev = _chain_head()
        users = dict(_all("SELECT id, username FROM auth_user"))
        with connection.cursor() as read, connection.connection.cursor() as write:
            for lo in range(first, last + 1, AUDIT_CHUNK):
                hi = min(last, lo + AUDIT_CHUNK - 1)
                read.execute(
                    """
                    SELECT o.id, o.received_at, o.side, o.quantity, o.security_id, o.status,
                           o.pm_id, a.code, s.symbol, o.limit_price
                    FROM orders_order o
                    JOIN oms_account a ON a.id = o.account_id
                    JOIN oms_security s ON s.id = o.security_id
                    WHERE o.id BETWEEN %s AND %s ORDER BY o.id
                    """,
                    [lo, hi],
                )
                lines = []
                checked = False
                for pk, at, side, qty, sec_id, status, pm_id, code, symbol, px in read.fetchall():
                    repr_ = f"Order {pk} {side} {qty} {sec_id}"
                    end = _END_KIND[status]
                    end_actor = pm_id if end == "cancel" else None
                    for actor_id, action, when, before, after in (
                        (
                            pm_id,
                            "order.create",
                            at,
                            None,
                            {
                                "account": code,
                                "symbol": symbol,
                                "side": side,
                                "quantity": str(qty),
                                "order_type": "LIMIT",
                                "limit_price": str(px),
                                "time_in_force": "DAY",
                                "status": "PENDING_COMPLIANCE",
                            },
                        ),
                        (
                            pm_id,
                            "order.stage",
                            at + timedelta(seconds=1),
                            {"status": "PENDING_COMPLIANCE"},
                            {"status": "STAGED"},
                        ),
                        (
                            end_actor,
                            f"order.{end}",
                            at + timedelta(seconds=5),
                            {"status": "STAGED"},
                            {"status": status},
                        ),
                    ):
                        fields = {
                            "chain_seq": seq,
                            "occurred_at": when,
                            "actor_id": actor_id,
                            "actor_username": users[actor_id] if actor_id else "",
                            "action": action,
                            "object_type": "orders.order",
                            "object_id": str(pk),
                            "object_repr": repr_,
                            "before": before,
                            "after": after,
                            "request_id": "",
                            "ip": "",
                            "prev_hash": prev,
                        }
                        digest = _digest(fields)
                        if not checked:
                            if digest != event_digest(**fields):
                                raise RuntimeError("the generator's digest is not event_digest's")
                            checked = True
                        lines.append(
                            "\t".join(_copy_text(fields[name]) for name in _AUDIT_COLUMNS)
                            + f"\t{digest}\n"
                        )
                        seq, prev = seq + 1, digest
                        written += 1
                with write.copy(
                    f"COPY audit_auditevent ({', '.join(_AUDIT_COLUMNS)}, hash) FROM STDIN"
                ) as copy:
                    copy.write("".join(lines))
    return written


_AUDIT_COLUMNS = (
    "chain_seq",
    "occurred_at",
    "actor_id",
    "actor_username",
    "action",
    "object_type",
    "object_id",
    "object_repr",
    "before",
    "after",
    "request_id",
    "ip",
    "prev_hash",
)


def _all(statement: str, params=None) -> list:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.fetchall()


def _history(firm: dict) -> dict:
    """The year of history and today's working set; how long each part took."""
    timings = {}
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    started = time.perf_counter()
    year_start = today - timedelta(days=365)
    step = timedelta(days=365) / max(HISTORY, 1)
    if HISTORY:
        _orders(firm, first=1, n=HISTORY, start=year_start, step=step, working=False)
    timings["history_orders_and_events_s"] = round(time.perf_counter() - started, 1)
    started = time.perf_counter()
    first_working = HISTORY + 1
    work_start = datetime.now(UTC) - timedelta(hours=2)
    _orders(
        firm,
        first=first_working,
        n=WORKING,
        start=work_start,
        step=timedelta(seconds=0.5),
        working=True,
    )
    _blocks_fill_in(first_working, first_working + WORKING - 1)
    last = first_working + WORKING - 1
    _sql("SELECT setval(pg_get_serial_sequence('orders_order', 'id'), %s)", [last])
    timings["working_orders_and_events_s"] = round(time.perf_counter() - started, 1)
    started = time.perf_counter()
    audit_rows = _audit_rows(1, last)
    timings["audit_rows_s"] = round(time.perf_counter() - started, 1)
    started = time.perf_counter()
    from django.db import connection

    # VACUUM sets the visibility map (index-only scans), as autovacuum would by morning; it
    # cannot run in a transaction (the generator's test), where ANALYZE alone does.
    vacuum = "ANALYZE" if connection.in_atomic_block else "VACUUM ANALYZE"
    for table in ("orders_order", "orders_orderevent", "audit_auditevent", "orders_block"):
        _sql(f"{vacuum} {table}")
    _sql(f"{vacuum} positions_position")
    timings["vacuum_analyze_s"] = round(time.perf_counter() - started, 1)
    sizes = dict(
        _all(
            """
            SELECT relname, pg_total_relation_size(oid) FROM pg_class
            WHERE relname IN ('orders_order', 'orders_orderevent', 'audit_auditevent')
            """
        )
    )
    return {
        "history_orders": HISTORY,
        "working_orders": WORKING,
        "order_events": _one("SELECT count(*) FROM orders_orderevent")[0],
        "audit_rows": _one("SELECT count(*) FROM audit_auditevent")[0],
        "audit_rows_generated": audit_rows,
        "table_mb": {k: round(v / 2**20) for k, v in sizes.items()},
        "generation": timings,
    }


# --- measuring --------------------------------------------------------------------------------


def _timed_get(client, url: str, *, n: int, warm: int = 3) -> tuple[list[float], object]:
    for _ in range(warm):
        response = client.get(url)
    times = []
    for _ in range(n):
        started = time.perf_counter()
        response = client.get(url)
        times.append(time.perf_counter() - started)
        if response.status_code != 200:
            raise RuntimeError(f"{url} answered {response.status_code}: {response.content[:300]!r}")
    return times, response


def _stats(times: list[float], target_ms: float | None = None, floor_ms: float | None = None):
    out = {"p50_ms": _ms(times, 0.5), "p99_ms": _ms(times, 0.99), "max_ms": _ms(times, 1.0)}
    if target_ms is not None:
        out["target_p99_ms"] = target_ms
        out["ok"] = out["p99_ms"] <= target_ms
    if floor_ms:
        out["p99_x_floor"] = round(out["p99_ms"] / floor_ms, 1)
    return out


def _client(user):
    from django.test import Client

    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(user)
    return client


def _snapshot(trader, floor) -> dict:
    client = _client(trader)
    out = {}
    for form, url in (
        ("objects", "/api/blotter/snapshot/"),
        ("columns", "/api/blotter/snapshot/?form=columns"),
    ):
        times, response = _timed_get(client, url, n=SNAPSHOT_RUNS, warm=1)
        body = json.loads(response.content)
        rows = len(body["rows"]) if "rows" in body else len(body.get("data", {}).get("id", []))
        out[form] = {
            "rows": rows,
            "bytes": len(response.content),
            "median_ms": round(statistics.median(times) * 1000, 1),
            "max_ms": round(max(times) * 1000, 1),
        }
    out["target_ms"] = TARGETS["blotter_snapshot_ms"]
    out["ok"] = out["objects"]["median_ms"] <= out["target_ms"]
    return out


def _order_lists(firm, floor) -> dict:
    trader, pm = firm["trader"], firm["pms"][3]
    account = _one(
        "SELECT a.code FROM oms_account a JOIN oms_account_managers m ON m.account_id = a.id"
        " WHERE m.user_id = %s ORDER BY a.id LIMIT 1",
        [pm.pk],
    )[0]
    day = (datetime.now(UTC) - timedelta(days=40)).date().isoformat()
    target = TARGETS["order_list_p99_ms"]
    out = {}
    for name, user, url in (
        ("api_trader_all", trader, "/api/orders/"),
        ("api_pm_all", pm, "/api/orders/"),
        ("api_pm_working", pm, "/api/orders/?status=WORKING"),
        ("api_pm_account", pm, f"/api/orders/?account={account}"),
        ("api_pm_day", pm, f"/api/orders/?date={day}"),
        ("api_trader_page_50", trader, "/api/orders/?page=50"),
    ):
        times, _ = _timed_get(_client(user), url, n=SAMPLES)
        out[name] = _stats(times, target, floor)
    times, _ = _timed_get(_client(pm), "/orders/mine/", n=SAMPLES)
    out["my_orders_page"] = _stats(times, TARGETS["my_orders_p99_ms"], floor)
    times, _ = _timed_get(_client(pm), "/api/blotter/snapshot/?scope=mine", n=SAMPLES // 4)
    out["my_orders_snapshot"] = _stats(times, TARGETS["my_orders_p99_ms"], floor)
    return out


def _audit(firm, floor) -> dict:
    officer = firm["officer"]
    pm = firm["pms"][5]
    client = _client(officer)
    month = (datetime.now(UTC) - timedelta(days=100)).date()
    some_order = max(1, HISTORY // 3)
    target = TARGETS["audit_p99_ms"]
    out = {}
    for name, url in (
        ("page", "/audit/"),
        ("page_20", "/audit/?page=20"),
        ("by_user", f"/audit/?user={pm.username}"),
        ("by_action_prefix", "/audit/?action=order."),
        ("by_action_rare", "/audit/?action=compliance.rule_create"),
        ("by_object", f"/audit/?object_type=orders.order&object_id={some_order}"),
        ("by_month", f"/audit/?since={month}&until={month + timedelta(days=30)}"),
        ("by_user_and_month", f"/audit/?user={pm.username}&since={month}&until={month}"),
    ):
        times, _ = _timed_get(client, url, n=SAMPLES // 2)
        out[name] = _stats(times, target, floor)
    return out


def _post_trade(firm) -> dict:
    from compliance.models import Rule
    from compliance.services import compliance_post_trade_run
    from positions.models import Position

    started = time.perf_counter()
    run = compliance_post_trade_run(actor=firm["officer"], as_of=datetime.now(UTC))
    first = time.perf_counter() - started
    started = time.perf_counter()
    again = compliance_post_trade_run(actor=firm["officer"], as_of=datetime.now(UTC))
    second = time.perf_counter() - started
    return {
        "positions": Position.objects.count(),
        "rules": Rule.objects.count(),
        "breaches": run.breach_count,
        "first_run_s": round(first, 2),
        "second_run_s": round(second, 2),
        "breaches_second": again.breach_count,
        "target_s": TARGETS["post_trade_run_s"],
        "ok": max(first, second) <= TARGETS["post_trade_run_s"],
    }


def _websockets(firm) -> dict:
    from bench.blotter_bench import _latency
    from bench.fanout_bench import WRITERS

    client = _client(firm["trader"])
    client.get("/api/blotter/layout/")
    ids = [
        r[0]
        for r in _all(
            "SELECT id FROM orders_order WHERE status = 'WORKING' ORDER BY id DESC LIMIT 200"
        )
    ]
    figures = _latency(
        client.cookies["sessionid"].value,
        ids,
        clients_n=WS_CLIENTS,
        rate=WS_RATE,
        client_procs=2,
        writers_n=WRITERS,
    )
    figures["ok"] = (
        figures["live_latency_p99_ms"] <= TARGETS["websocket_p99_ms"]
        and figures["live_missing"] == 0
        and figures["live_achieved_rate_per_s"] >= WS_RATE * 0.95
    )
    return figures


def _load() -> dict:
    one, five, fifteen = os.getloadavg()
    return {"load_1m": round(one, 2), "load_5m": round(five, 2), "load_15m": round(fifteen, 2)}


def main(argv: list[str]) -> dict:
    figures: dict = {
        "machine": {
            "nproc": os.cpu_count(),
            "ram_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
            "load_at_start": _load(),
        },
        "targets": TARGETS,
    }
    if os.environ.get("OMS_SCALE_REUSE") == "1" and _one("SELECT count(*) FROM orders_order")[0]:
        # Measuring on a database generated before: by the process below, or by hand through
        # bench.run_one with a DATABASE_URL of one's own.
        figures["data"] = {"reused": True, "orders": _one("SELECT count(*) FROM orders_order")[0]}
        figures.update(_measure(_firm_load()))
        return figures
    firm = _firm()
    _positions(firm)
    figures["data"] = _history(firm)
    # Measured in a fresh process, as a web process started on this database would answer:
    # the one that made the data holds what it made, and its garbage collector's full walks
    # (hundreds of milliseconds here) would land on the requests measured.
    figures.update(_measure_in_fresh_process())
    return figures


def _measure_in_fresh_process() -> dict:
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    from django.db import connections

    connections.close_all()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "figures.json"
        subprocess.run(
            [sys.executable, "-m", "bench.run_one", "bench.scale_bench", str(out)],
            cwd=Path(__file__).resolve().parent.parent,
            env={**os.environ, "OMS_SCALE_REUSE": "1"},
            check=True,
        )
        measured = json.loads(out.read_text())
    if "error" in measured:
        raise RuntimeError(f"measuring failed: {measured['error']}")
    return {
        key: value
        for key, value in measured.items()
        if key not in ("machine", "targets", "data", "migrate_seconds", "wall_seconds")
    }


def _measure(firm: dict) -> dict:
    """Every figure, in this process; it freezes what it has loaded out of the garbage
    collector's full walks first, as the web process does at start (oms.web, oms.runtime)."""
    from django.test import Client
    from django.urls import get_resolver

    from bench.floors import request_floors
    from oms.runtime import loaded_objects_freeze

    # Load what a web process has loaded before its first request (views, URL patterns, the
    # test client the requests go through), then freeze it.
    get_resolver().url_patterns  # noqa: B018
    Client(HTTP_HOST="127.0.0.1").get("/healthz")
    figures: dict = {"objects_frozen": loaded_objects_freeze()}
    floors = request_floors(_client(firm["trader"]), samples=SAMPLES)
    figures["floors"] = floors
    floor = floors["api_floor_p50_ms"]
    figures["load_before_measuring"] = _load()
    figures["blotter_snapshot"] = _snapshot(firm["trader"], floor)
    figures["order_lists"] = _order_lists(firm, floor)
    figures["audit"] = _audit(firm, floor)
    figures["post_trade"] = _post_trade(firm)
    if os.environ.get("OMS_SCALE_WEBSOCKETS", "1") != "0":
        figures["websockets"] = _websockets(firm)
    figures["load_at_end"] = _load()
    return figures
