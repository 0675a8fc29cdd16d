"""What a reconnecting page costs (`make bench ARGS=feed`): resuming from its sequence number
(the missed messages replayed from the group's history in Redis) against the snapshot it took
before (GET /api/blotter/snapshot/), on a real Daphne with 10,000 orders on the blotter.

- resume_<n>: connect with ?since= after missing n one-order messages, until the n-th arrives;
- reconnect_snapshot: connect, then the snapshot of the 10,000 orders (what every reconnect
  did before).
"""

from __future__ import annotations

import json
import statistics
import time
import urllib.request
from datetime import UTC, datetime
from decimal import Decimal

ORDERS = 10_000
MISSED = (10, 100, 1000)
RUNS = 5


def _median_ms(values: list[float]) -> float:
    return round(statistics.median(values) * 1000, 1)


def main(argv: list[str]) -> dict:
    from django.test import Client
    from websockets.sync.client import connect

    from orders.blotter_selectors import BLOTTER_GROUP
    from orders.broadcast import publish_order_changes, sequence_current
    from orders.models import Order
    from tests import factories
    from tests.conftest import _test_database_url, daphne_serving

    trader = factories.user("bench_trader", "Trader")
    pm = factories.user("bench_pm", "PM")
    account = factories.account("FA1", pm)
    security = factories.security("FS1")
    now = datetime.now(UTC)
    Order.objects.bulk_create(
        [
            Order(
                account=account,
                security=security,
                side="BUY",
                quantity=Decimal(100),
                order_type="MARKET",
                status="STAGED",
                pm=pm,
                received_at=now,
                leaves_qty=Decimal(100),
            )
            for _ in range(ORDERS)
        ],
        batch_size=5000,
    )
    order_id = Order.objects.values_list("pk", flat=True).first()
    web = Client()
    web.force_login(trader)
    cookie = f"sessionid={web.cookies['sessionid'].value}"

    def publish(n: int) -> None:
        target = sequence_current(BLOTTER_GROUP) + n
        for _ in range(n):
            publish_order_changes([order_id])
        deadline = time.monotonic() + 60
        while sequence_current(BLOTTER_GROUP) < target:
            assert time.monotonic() < deadline, "publisher stuck"
            time.sleep(0.01)

    figures: dict = {"orders_on_blotter": ORDERS}
    with daphne_serving(_test_database_url(), DJANGO_SETTINGS_MODULE="bench.settings") as server:
        ws_base = server.replace("http://", "ws://")

        def open_ws(path: str):
            return connect(
                ws_base + path,
                additional_headers={"Cookie": cookie},
                origin=server,
                open_timeout=10,
            )

        publish(1)
        with open_ws("/ws/blotter/") as ws:
            json.loads(ws.recv(timeout=10))
        for n in MISSED:
            times, sizes = [], []
            for _ in range(RUNS):
                seq = sequence_current(BLOTTER_GROUP)
                epoch = json.loads(
                    urllib.request.urlopen(
                        urllib.request.Request(
                            f"{server}/api/blotter/snapshot/", headers={"Cookie": cookie}
                        ),
                        timeout=30,
                    ).read()
                )["epoch"]
                publish(n)
                started = time.perf_counter()
                size = 0
                with open_ws(f"/ws/blotter/?since={seq}&epoch={epoch}") as ws:
                    hello = json.loads(ws.recv(timeout=10))
                    assert hello == {"type": "subscribed", "resumed": n}, hello
                    for _ in range(n):
                        size += len(ws.recv(timeout=30))
                times.append(time.perf_counter() - started)
                sizes.append(size)
            figures[f"resume_{n}_missed_ms_median"] = _median_ms(times)
            figures[f"resume_{n}_missed_bytes"] = sizes[0]
        times, sizes = [], []
        for _ in range(RUNS):
            started = time.perf_counter()
            with open_ws("/ws/blotter/") as ws:
                json.loads(ws.recv(timeout=10))
                body = urllib.request.urlopen(
                    urllib.request.Request(
                        f"{server}/api/blotter/snapshot/", headers={"Cookie": cookie}
                    ),
                    timeout=60,
                ).read()
            times.append(time.perf_counter() - started)
            sizes.append(len(body))
        figures["reconnect_snapshot_ms_median"] = _median_ms(times)
        figures["reconnect_snapshot_bytes"] = sizes[0]
    for n in MISSED:
        figures[f"snapshot_over_resume_{n}"] = round(
            figures["reconnect_snapshot_ms_median"] / figures[f"resume_{n}_missed_ms_median"], 1
        )
    for name, value in figures.items():
        print(f"{name:40s} {value}")
    return figures
