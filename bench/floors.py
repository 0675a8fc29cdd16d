"""Limits measured in the same run as a benchmark's figures: the machine's speed varies (the
same code measured 7.0 s and 12.3 s an hour apart with nothing else running), so a figure is
compared across runs by its ratio to these, not by itself."""

from __future__ import annotations

import time

from bench.blotter_bench import _ms

FLOOR_URL = "/api/blotter/layout/"  # the cheapest authenticated API call


def request_floors(client, *, samples: int, warm: int = 3) -> dict:
    """What nothing can beat here: a query round trip, and the cheapest authenticated API
    request through `client` (session, middleware, one small query), p50 and p99."""
    from django.db import connection

    sql = []
    with connection.cursor() as cursor:
        for _ in range(200):
            started = time.perf_counter()
            cursor.execute("SELECT 1")
            cursor.fetchone()
            sql.append(time.perf_counter() - started)
    for _ in range(warm):
        client.get(FLOOR_URL)
    api = []
    for _ in range(samples):
        started = time.perf_counter()
        response = client.get(FLOOR_URL)
        api.append(time.perf_counter() - started)
        if response.status_code != 200:
            raise RuntimeError(f"{FLOOR_URL} answered {response.status_code}")
    return {
        "sql_round_trip_p50_ms": _ms(sql, 0.5),
        "api_floor_p50_ms": _ms(api, 0.5),
        "api_floor_p99_ms": _ms(api, 0.99),
    }
