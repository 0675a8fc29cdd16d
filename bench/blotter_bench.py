"""The blotter's speed (issue 6), in the scratch database the runner gives it.

- snapshot: GET /api/blotter/snapshot/ with 10,000 orders (target <= 500 ms), and 50,000;
- live latency: 20 websocket clients on a real Daphne, 200 order changes per second committed
  here; from each commit to each client's receipt, p50 / p99 / max (target p99 <= 100 ms).

Run with `python -m oms.launch bench blotter` (`make bench ARGS=blotter`).
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SNAPSHOT_SIZES = (10_000, 50_000)
SNAPSHOT_RUNS = 7
CLIENTS = 20
RATE = 200  # order changes per second
DURATION_S = 10
LIVE_ORDERS = 200
WRITERS = 4  # committing threads (one alone cannot reach RATE: each commit extends the audit chain)
ORDERS_PER_COMMIT = 4


def _ms(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 2)


def _orders(n: int, accounts, securities, pms, status: str) -> list[int]:
    from orders.models import Order

    now = datetime.now(UTC)
    objs = [
        Order(
            account=accounts[i % len(accounts)],
            security=securities[i % len(securities)],
            side="BUY" if i % 3 else "SELL",
            quantity=Decimal(100 + i % 900),
            order_type="LIMIT",
            limit_price=Decimal("101.25"),
            status=status,
            pm=pms[i % len(pms)],
            received_at=now,
            leaves_qty=Decimal(100 + i % 900),
        )
        for i in range(n)
    ]
    return [o.pk for o in Order.objects.bulk_create(objs, batch_size=5000)]


def main(argv: list[str]) -> dict:
    from django.test import Client

    from tests import factories

    trader = factories.user("bench_trader", "Trader")
    pms = [factories.user(f"bench_pm{i}", "PM") for i in range(10)]
    accounts = [factories.account(f"BA{i}", pms[i % 10]) for i in range(40)]
    securities = [factories.security(f"BS{i}") for i in range(200)]
    figures: dict = {}

    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(trader)
    total = 0
    for size in SNAPSHOT_SIZES:
        _orders(size - total, accounts, securities, pms, "STAGED")
        total = size
        client.get("/api/blotter/snapshot/")  # warm
        times = []
        for _ in range(SNAPSHOT_RUNS):
            started = time.perf_counter()
            response = client.get("/api/blotter/snapshot/")
            times.append(time.perf_counter() - started)
            assert response.status_code == 200
        rows = len(json.loads(response.content)["rows"])
        figures[f"snapshot_{size}_rows"] = rows
        figures[f"snapshot_{size}_median_ms"] = round(statistics.median(times) * 1000, 1)
        figures[f"snapshot_{size}_max_ms"] = round(max(times) * 1000, 1)
        figures[f"snapshot_{size}_bytes"] = len(response.content)
    figures["snapshot_10000_target_ms"] = 500
    figures["snapshot_10000_ok"] = figures["snapshot_10000_median_ms"] <= 500

    # Back to a live-sized desk for the latency run.
    from orders.models import Order

    Order.objects.all().delete()
    live_ids = _orders(LIVE_ORDERS, accounts, securities, pms, "WORKING")
    figures.update(_latency(client.cookies["sessionid"].value, live_ids))
    return figures


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _daphne(port: int) -> subprocess.Popen:
    # This process's environment names the scratch database, settings and Redis prefixes.
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "oms.web",
            "-b",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("daphne did not start")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _latency(
    session: str,
    order_ids: list[int],
    *,
    clients_n: int = CLIENTS,
    rate: int = RATE,
    client_procs: int = 1,
    writers_n: int = WRITERS,
) -> dict:
    """`clients_n` websocket clients (spread over `client_procs` processes) on a fresh Daphne,
    `rate` order changes a second committed here for DURATION_S; from each commit to each
    client's receipt of that version of the order or a later one (the feed may send only the
    latest state of an order changed twice within one message). bench/scale_bench.py runs it
    with 100 clients. Also the CPU seconds each side used while the changes were committed.
    writers_n committing threads pace the rate between them: with 100 clients on the same CPUs a
    commit takes longer, and more threads keep the offered rate (what is measured is the feed)."""
    from django.db import transaction

    from orders.services import order_fill_apply, orders_lock

    port = _free_port()
    daphne = _daphne(port)
    ctx = multiprocessing.get_context("spawn")
    ready, stop = ctx.Event(), ctx.Event()
    results = ctx.Queue()
    connected = ctx.Value("i", 0)
    shares = [
        clients_n // client_procs + (p < clients_n % client_procs) for p in range(client_procs)
    ]
    procs = [
        ctx.Process(
            target=_clients_process,
            args=(port, session, ready, stop, results, share, connected, clients_n),
            daemon=True,
        )
        for share in shares
        if share
    ]
    for proc in procs:
        proc.start()
    try:
        if not ready.wait(60):
            raise RuntimeError("websocket clients did not connect")
        cpu_before = {
            "daphne": _cpu_seconds(daphne.pid),
            "clients": sum(_cpu_seconds(p.pid) for p in procs),
            "committing_process": time.process_time(),
        }
        committed: dict[tuple[int, int], float] = {}
        commit_times: list[float] = []
        commits = rate * DURATION_S // ORDERS_PER_COMMIT
        started = time.perf_counter()

        def writer(w: int) -> None:
            # Each writer paces its share; together they commit RATE order changes per second,
            # ORDERS_PER_COMMIT at a time (as a block fill splits across its accounts).
            from django.db import connection

            try:
                for n in range(w, commits, writers_n):
                    delay = started + n * ORDERS_PER_COMMIT / rate - time.perf_counter()
                    if delay > 0:
                        time.sleep(delay)
                    first = (n * ORDERS_PER_COMMIT) % len(order_ids)
                    ids = order_ids[first : first + ORDERS_PER_COMMIT]
                    changed = []
                    stamp: list[float] = []
                    began = time.time()
                    with transaction.atomic():
                        # The first after-commit callback: the moment of the commit, before
                        # the feed's own callback reads the rows to publish.
                        transaction.on_commit(lambda stamp=stamp: stamp.append(time.time()))
                        for order in orders_lock(order_ids=ids):
                            changed.append(
                                order_fill_apply(
                                    order=order,
                                    quantity=Decimal("0.01"),
                                    price=Decimal("100"),
                                    as_of=datetime.now(UTC),
                                    exec_ref=f"bench-{n}",
                                )
                            )
                    at = stamp[0]
                    commit_times.append(at - began)
                    for order in changed:
                        committed[(order.pk, order.version)] = at
            finally:
                connection.close()

        writers = [threading.Thread(target=writer, args=(w,)) for w in range(writers_n)]
        for t in writers:
            t.start()
        for t in writers:
            t.join()
        elapsed = time.perf_counter() - started
        time.sleep(2)
        cpu = {
            "daphne": _cpu_seconds(daphne.pid) - cpu_before["daphne"],
            "clients": sum(_cpu_seconds(p.pid) for p in procs) - cpu_before["clients"],
            "committing_process": time.process_time() - cpu_before["committing_process"],
        }
        stop.set()
        received = [results.get(timeout=60) for _ in range(clients_n)]
    finally:
        stop.set()
        for proc in procs:
            proc.join(10)
            if proc.is_alive():
                proc.kill()
        daphne.terminate()
        try:
            daphne.wait(30)  # closing 100 sockets on a loaded machine can take a while
        except subprocess.TimeoutExpired:
            daphne.kill()
            daphne.wait(10)
    latencies = []
    missing = 0
    frames = 0
    for per_client, client_frames in received:
        frames += client_frames
        seen: dict[int, list[tuple[int, float]]] = {}
        for (order_id, version), got in per_client.items():
            seen.setdefault(order_id, []).append((version, got))
        for (order_id, version), at in committed.items():
            # The earliest receipt of this version or a later one of the order.
            got = min((t for v, t in seen.get(order_id, ()) if v >= version), default=None)
            if got is None:
                missing += 1
            else:
                latencies.append(got - at)
    window = elapsed + 2
    return {
        "live_clients": clients_n,
        "live_client_processes": len(procs),
        "live_frames_received_per_s": round(frames / window),
        "live_cpu_share": {name: round(used / window, 2) for name, used in cpu.items()},
        "live_order_updates": len(committed),
        "live_orders_per_commit": ORDERS_PER_COMMIT,
        "live_target_rate_per_s": rate,
        "live_achieved_rate_per_s": round(len(committed) / elapsed, 1),
        # How long one writer's transaction took, lock to commit: what bounds the rate reached.
        "live_commit_p50_ms": _ms(commit_times, 0.50),
        "live_commit_p99_ms": _ms(commit_times, 0.99),
        "live_deliveries": len(latencies),
        "live_missing": missing,
        "live_latency_p50_ms": _ms(latencies, 0.50),
        "live_latency_p99_ms": _ms(latencies, 0.99),
        "live_latency_max_ms": _ms(latencies, 1.0),
        "live_latency_target_p99_ms": 100,
        "live_measured_from": "order change commit (order_fill_apply) to client receipt",
    }


def _clients_process(port, session, ready, stop, results, clients_n, connected, total) -> None:
    """`clients_n` websocket clients in a process of their own (so the committing threads' GIL does
    not delay their receipts); wall-clock receipt time per (order id, version), and the frames
    each received. `connected` counts the clients of every such process; `ready` is set when it
    reaches `total`."""
    import websockets

    received: list[dict] = [{} for _ in range(clients_n)]
    frames = [0] * clients_n

    async def client(i: int):
        async with websockets.connect(
            f"ws://127.0.0.1:{port}/ws/blotter/",
            additional_headers={"Cookie": f"sessionid={session}"},
            origin=f"http://127.0.0.1:{port}",
            max_queue=None,
        ) as ws:
            await ws.recv()  # subscribed
            with connected.get_lock():
                connected.value += 1
                if connected.value == total:
                    ready.set()
            while not stop.is_set():
                try:
                    raw = await asyncio.wait_for(ws.recv(), 0.5)
                except TimeoutError:
                    continue
                now = time.time()
                frames[i] += 1
                for row in json.loads(raw).get("rows", ()):
                    key = (row["id"], row["version"])
                    received[i].setdefault(key, now)

    async def all_clients():
        await asyncio.gather(*(client(i) for i in range(clients_n)))

    asyncio.run(all_clients())
    for per_client, n in zip(received, frames, strict=True):
        results.put((per_client, n))
