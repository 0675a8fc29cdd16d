"""Liveness of what the OMS depends on; later capabilities register more probes (FIX sessions)."""

from __future__ import annotations

from collections.abc import Callable

import redis
from django.conf import settings
from django.db import connection

PROBES: dict[str, Callable[[], dict]] = {}


def register_probe(name: str, probe: Callable[[], dict]) -> None:
    PROBES[name] = probe


def _database() -> dict:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return {"ok": True}


def _redis() -> dict:
    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1, socket_connect_timeout=1)
    try:
        client.ping()
    finally:
        client.close()
    return {"ok": True}


def _exceptions() -> dict:
    """Open exceptions by kind, for the record: they never make the OMS unhealthy (nor does
    failing to count them; the database probe reports that)."""
    from .selectors import exceptions_open_counts

    try:
        by_kind = exceptions_open_counts()
    except Exception as exc:
        return {"ok": True, "open": None, "error": f"{type(exc).__name__}: {exc}"[:300]}
    return {"ok": True, "open": sum(by_kind.values()), "by_kind": by_kind}


def _database_pool() -> dict:
    """How full this process's connection pool is (None: no pool configured)."""
    pool = getattr(connection, "pool", None)
    if pool is None:
        return {"ok": True, "pool": None}
    stats = pool.get_stats()
    return {
        "ok": True,
        "max": pool.max_size,
        "open": stats.get("pool_size", 0),
        "idle": stats.get("pool_available", 0),
        "waiting": stats.get("requests_waiting", 0),
        "timeouts": stats.get("requests_errors", 0),
    }


register_probe("database", _database)
register_probe("database_pool", _database_pool)
register_probe("redis", _redis)
register_probe("exceptions", _exceptions)


def health_report() -> tuple[bool, dict]:
    report: dict = {}
    healthy = True
    for name, probe in PROBES.items():
        try:
            report[name] = probe()
        except Exception as exc:  # a probe's failure is the answer, not a crash
            report[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
        healthy = healthy and bool(report[name].get("ok"))
    return healthy, report
