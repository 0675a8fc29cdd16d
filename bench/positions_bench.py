"""Position keeper: fill booking latency, bust (replay) latency, reconcile time.

Runs in the scratch database the runner gives it (`make bench ARGS=positions`).
"""

from __future__ import annotations

import random
import statistics
import time
from datetime import UTC, date, datetime
from decimal import Decimal


def _ms(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 3)


def main(argv: list[str]) -> dict:
    from positions.selectors import reconcile_differences
    from positions.services import position_fill_apply
    from tests import factories

    rng = random.Random(7)
    accounts = [factories.account(f"B{i}") for i in range(4)]
    securities = [factories.security(f"S{i}", price="100") for i in range(10)]
    as_of = datetime(2025, 6, 2, 14, tzinfo=UTC)
    trade, settle = date(2025, 6, 2), date(2025, 6, 3)
    sides = ["BUY", "SELL", "SELL_SHORT", "BUY_TO_COVER"]

    fills = 3000
    booked, timings = [], []
    for i in range(fills):
        a, s = rng.choice(accounts), rng.choice(securities)
        side, qty = rng.choice(sides), Decimal(rng.randint(1, 500))
        price = Decimal(rng.randint(9000, 11000)) / 100
        started = time.perf_counter()
        position_fill_apply(
            account_id=a.pk,
            security_id=s.pk,
            side=side,
            quantity=qty,
            price=price,
            trade_date=trade,
            settle_date=settle,
            fill_ref=f"f{i}",
            as_of=as_of,
        )
        timings.append(time.perf_counter() - started)
        booked.append((a, s, side, qty, price, f"f{i}"))

    busts = []
    for a, s, side, qty, price, ref in rng.sample(booked, 100):
        started = time.perf_counter()
        position_fill_apply(
            account_id=a.pk,
            security_id=s.pk,
            side=side,
            quantity=-qty,
            price=price,
            trade_date=trade,
            settle_date=settle,
            fill_ref=ref,
            as_of=as_of,
        )
        busts.append(time.perf_counter() - started)

    started = time.perf_counter()
    diffs = reconcile_differences()
    reconcile_s = time.perf_counter() - started
    return {
        "fills": fills,
        "fill_apply_ms_p50": _ms(timings, 0.5),
        "fill_apply_ms_p99": _ms(timings, 0.99),
        "fills_per_second_one_writer": round(len(timings) / sum(timings), 1),
        "bust_ms_p50_positions_of_about_75_fills": _ms(busts, 0.5),
        "bust_ms_mean": round(statistics.mean(busts) * 1000, 3),
        "reconcile_seconds_3100_ledger_rows": round(reconcile_s, 3),
        "reconcile_differences": len(diffs),
    }
