"""Order capture: single order latency (create + compliance + stage), basket preview of the
largest file allowed, and basket confirm throughput.

Runs in the scratch database the runner gives it (`make bench ARGS=orders`).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from decimal import Decimal

CONFIRM_LINES = 1_000
SINGLE_ORDERS = 200


def _ms(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 2)


def _basket(lines: int, symbols: list[str]) -> bytes:
    header = "account,symbol,side,quantity,order_type,limit_price,stop_price,time_in_force,expire_date,instructions"
    rows = [
        f"B{i % 4},{symbols[i % len(symbols)]},BUY,{100 + i},MARKET,,,DAY,,bench"
        for i in range(lines)
    ]
    return ("\n".join([header, *rows]) + "\n").encode()


def main(argv: list[str]) -> dict:
    from orders.basket_services import MAX_CSV_LINES as PREVIEW_LINES
    from orders.basket_services import basket_confirm, basket_preview
    from orders.entry import order_create
    from tests import factories

    pm = factories.user("bench_pm", "PM")
    for i in range(4):
        factories.account(f"B{i}", pm)
    symbols = [f"S{i}" for i in range(50)]
    for symbol in symbols:
        factories.security(symbol, price="100.00")
    as_of = datetime(2026, 6, 2, 14, tzinfo=UTC)

    timings = []
    for i in range(SINGLE_ORDERS):
        started = time.perf_counter()
        order_create(
            pm=pm,
            account=f"B{i % 4}",
            symbol=symbols[i % len(symbols)],
            side="BUY",
            quantity=Decimal(100 + i),
            order_type="LIMIT",
            limit_price=Decimal("99.50"),
            as_of=as_of,
            idempotency_key=f"bench-{i}",
        )
        timings.append(time.perf_counter() - started)

    big = _basket(PREVIEW_LINES, symbols)
    started = time.perf_counter()
    preview = basket_preview(pm=pm, content=big, as_of=as_of)
    preview_seconds = time.perf_counter() - started
    assert len(preview.valid_items) == PREVIEW_LINES

    content = _basket(CONFIRM_LINES, symbols)
    started = time.perf_counter()
    basket, _ = basket_confirm(pm=pm, content=content, as_of=as_of)
    confirm_seconds = time.perf_counter() - started
    assert basket.orders.count() == CONFIRM_LINES

    # The largest basket allowed, confirmed (its preview is done again inside, as in the app).
    started = time.perf_counter()
    basket, _ = basket_confirm(pm=pm, content=big, as_of=as_of)
    confirm_max_seconds = time.perf_counter() - started
    assert basket.orders.count() == PREVIEW_LINES

    return {
        "single_order_create_p50_ms": _ms(timings, 0.5),
        "single_order_create_p95_ms": _ms(timings, 0.95),
        "basket_preview_lines": PREVIEW_LINES,
        "basket_preview_seconds": round(preview_seconds, 2),
        "basket_confirm_lines": CONFIRM_LINES,
        "basket_confirm_seconds": round(confirm_seconds, 2),
        "basket_confirm_orders_per_second": round(CONFIRM_LINES / confirm_seconds, 1),
        "basket_confirm_max_lines": PREVIEW_LINES,
        "basket_confirm_max_seconds": round(confirm_max_seconds, 2),
    }
