"""Market data under load (the market data issue), in the scratch database the runner gives it.

The simulator makes a market in OMS_BENCH_MD_SECURITIES (500) securities at
OMS_BENCH_MD_RATE (50) updates a second each, 40 securities per 35=X; the gateway subprocess
subscribes (the securities are held in an account), folds the refreshes into its books and
every 50 ms writes and pushes what changed (each security at most every 200 ms) to a real
Daphne, where 20 blotter websocket clients (a process of their own) receive them. Meanwhile
the same session fills blocks in another security, 1,000 reports each.

Figures: the updates the simulator sent per second; from each pushed quote's SendingTime at
the simulator (the latest update it carries) to each client's receipt, p50 / p99 / max
(target p99 <= 250 ms); execution reports applied per second in the same window (target
>= 500/s).
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import quickfix as fix

from bench.blotter_bench import _daphne, _free_port, _ms
from bench.fix_bench import _accounts, _desk, _routed_block

ROOT = Path(__file__).resolve().parent.parent
SECURITIES = int(os.environ.get("OMS_BENCH_MD_SECURITIES", "500"))
RATE = float(os.environ.get("OMS_BENCH_MD_RATE", "50"))
DURATION_S = float(os.environ.get("OMS_BENCH_MD_SECONDS", "20"))
CLIENTS = 20
BLOCKS = int(os.environ.get("OMS_BENCH_MD_BLOCKS", "20"))


def _clients_process(port, session, ready, stop, results) -> None:
    """CLIENTS blotter websockets; per client, the latency of every quote received."""
    import websockets

    latencies: list[list[float]] = [[] for _ in range(CLIENTS)]

    async def client(i: int, connected: list):
        async with websockets.connect(
            f"ws://127.0.0.1:{port}/ws/blotter/",
            additional_headers={"Cookie": f"sessionid={session}"},
            origin=f"http://127.0.0.1:{port}",
            max_queue=None,
            # OMS_BENCH_MD_DEFLATE=0: without permessage-deflate (whose cost on 20 copies of
            # every push is one suspect of the latency).
            compression="deflate" if os.environ.get("OMS_BENCH_MD_DEFLATE", "1") == "1" else None,
        ) as ws:
            await ws.recv()  # subscribed
            connected.append(i)
            if len(connected) == CLIENTS:
                ready.set()
            while not stop.is_set():
                try:
                    raw = await asyncio.wait_for(ws.recv(), 0.5)
                except TimeoutError:
                    continue
                now = time.time()
                message = json.loads(raw)
                if message.get("type") != "quotes":
                    continue
                for q in message["quotes"]:
                    if q.get("src"):
                        latencies[i].append(now - q["src"])

    async def all_clients():
        connected: list = []
        await asyncio.gather(*(client(i, connected) for i in range(CLIENTS)))

    asyncio.run(all_clients())
    for per_client in latencies:
        results.put(per_client)


def main(argv: list[str]) -> dict:
    from django.db import connection
    from django.test import Client

    from fixgateway.models import Execution, SessionState
    from fixgateway.simulator import BrokerSimulator, SimConfig, acceptor_settings
    from oms.models import Security
    from positions.models import Position
    from tests import factories

    tmp = Path(tempfile.mkdtemp(prefix="md-bench-"))
    desk = _desk("M", port=_free_port())
    broker = desk.broker
    broker.extra_config = {"market_data": True}
    broker.save(update_fields=["extra_config"])
    (holder,) = _accounts(desk, 1, "H")
    securities = Security.objects.bulk_create(
        [
            Security(
                symbol=f"MD{desk.tag}{i}",
                name=f"MD {i}",
                asset_class="EQUITY",
                exchange_mic="XNAS",
                currency="USD",
                sector="Technology",
                issuer=desk.sec.issuer,
                reference_price=Decimal("50.00"),
            )
            for i in range(SECURITIES)
        ]
    )
    Position.objects.bulk_create(
        [Position(account=holder, security=s, quantity=Decimal(100)) for s in securities]
    )
    fill_accounts = _accounts(desk, 1, "F")

    sim = BrokerSimulator(
        SimConfig(fill_mode="slices", slices=1000, interval=0.0, prices={desk.sec.symbol: "10.00"})
    )
    sim.market.rate = RATE
    sim.market.batch = 40
    sim.market.trade_probability = 0.2
    acfg = acceptor_settings(
        [{"port": broker.port, "sender": f"T{desk.tag}", "target": f"O{desk.tag}"}], tmp / "sim"
    )
    acceptor = fix.ThreadedSocketAcceptor(
        sim, fix.FileStoreFactory(acfg), acfg, fix.ScreenLogFactory(False, False, False)
    )
    acceptor.start()
    env = dict(os.environ)
    env.update(OMS_FIX_STORE_DIR=str(tmp / "gw-store"), OMS_FIX_LOG_DIR=str(tmp / "gw-log"))
    gateway = subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "run_fix_gateway", "--broker", broker.code],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    port = _free_port()
    daphne = _daphne(port)
    trader = factories.user(f"mdtr{desk.tag}", "Trader")
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(trader)
    ctx = multiprocessing.get_context("spawn")
    ready, stop = ctx.Event(), ctx.Event()
    results = ctx.Queue()
    clients = ctx.Process(
        target=_clients_process,
        args=(port, client.cookies["sessionid"].value, ready, stop, results),
        daemon=True,
    )
    clients.start()
    try:
        deadline = time.monotonic() + 60
        while not SessionState.objects.filter(broker=broker, logged_on=True).exists():
            if time.monotonic() > deadline:
                raise RuntimeError("gateway did not log on")
            time.sleep(0.2)
        if not ready.wait(60):
            raise RuntimeError("websocket clients did not connect")
        deadline = time.monotonic() + 60
        while len(sim.market.state()["subscribed"]) < SECURITIES:
            if time.monotonic() > deadline:
                raise RuntimeError("the gateway did not subscribe to every security")
            time.sleep(0.2)
        time.sleep(2)  # the market settles in
        applied = Execution.objects.filter(broker=broker, exec_type="F")
        sent_before, started = sim.market.sent_updates, time.perf_counter()
        fills_before = applied.count()
        for _ in range(BLOCKS):
            _routed_block(desk, fill_accounts, 1000)
        remaining = DURATION_S - (time.perf_counter() - started)
        if remaining > 0:
            time.sleep(remaining)
        elapsed = time.perf_counter() - started
        fills = applied.count() - fills_before
        sent = sim.market.sent_updates - sent_before
        time.sleep(1)
        stop.set()
        per_client = [results.get(timeout=60) for _ in range(CLIENTS)]
    finally:
        stop.set()
        clients.join(10)
        if clients.is_alive():
            clients.kill()
        daphne.terminate()
        daphne.wait(10)
        gateway.terminate()
        gateway.wait(30)
        sim.stop()
        acceptor.stop()
        connection.close()
    latencies = [v for c in per_client for v in c]
    p99 = _ms(latencies, 0.99)
    fill_rate = round(fills / elapsed, 1)
    return {
        "md_securities": SECURITIES,
        "md_target_updates_per_s": int(SECURITIES * RATE),
        "md_sent_updates_per_s": round(sent / elapsed, 1),
        "md_clients": CLIENTS,
        "md_deliveries": len(latencies),
        "md_latency_p50_ms": _ms(latencies, 0.50),
        "md_latency_p99_ms": p99,
        "md_latency_max_ms": _ms(latencies, 1.0),
        "md_latency_target_p99_ms": 250,
        "md_latency_ok": p99 <= 250,
        "md_measured_from": "the simulator's SendingTime of the latest update a quote carries",
        "fills_applied": fills,
        "fills_per_s": fill_rate,
        "fills_target_per_s": 500,
        "fills_ok": fill_rate >= 500,
        "seconds": round(elapsed, 1),
    }
