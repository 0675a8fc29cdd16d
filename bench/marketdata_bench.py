"""Market data under load (the market data issue), in the scratch database the runner gives it.

The simulator makes a market in OMS_BENCH_MD_SECURITIES (500) securities at
OMS_BENCH_MD_RATE (50) updates a second each, OMS_BENCH_MD_BATCH (40) securities per 35=X; the
gateway subprocess subscribes (the securities are held in an account), folds the refreshes
into its books, pushes what changed every OMS_MD_PUSH_MS (each security at most every
OMS_MD_THROTTLE_MS) to a real Daphne, where 20 blotter websocket clients (a process of their
own) receive them, and writes the books every OMS_MD_FLUSH_MS. Meanwhile the same session fills
blocks in another security, 1,000 reports each.

Figures: the updates the simulator sent and the gateway applied per second; from each pushed
quote's SendingTime at the simulator (the latest update it carries) to each client's receipt,
p50 / p99 / max (target p99 <= 250 ms), split at the push (SendingTime to the push, the push to
the client); execution reports applied per second in the same window (target >= 500/s).

Floors, measured in the same run on the same machine: each hop alone (the simulator composing
refreshes without sending; the gateway reading and folding those refreshes; one write of 500
quotes; encoding one push; the clients decoding one), the fills alone over the same session
before the market runs, and the gateway's own hop profile during the run (its log lines).
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
import urllib.request
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from bench.blotter_bench import _daphne, _free_port, _ms
from bench.fix_bench import _accounts, _desk, _routed_block

ROOT = Path(__file__).resolve().parent.parent
SECURITIES = int(os.environ.get("OMS_BENCH_MD_SECURITIES", "500"))
RATE = float(os.environ.get("OMS_BENCH_MD_RATE", "50"))
BATCH = int(os.environ.get("OMS_BENCH_MD_BATCH", "40"))
DURATION_S = float(os.environ.get("OMS_BENCH_MD_SECONDS", "20"))
CLIENTS = 20
BLOCKS = int(os.environ.get("OMS_BENCH_MD_BLOCKS", "20"))
FLOOR_BLOCKS = 5
# "separate": market data over a FIX session of its own, held by `run_market_data` in a process
# of its own (fixgateway.mdsession); "order": over the order session, in the gateway's process.
MD_SESSION = os.environ.get("OMS_BENCH_MD_SESSION", "separate")


def _clients_process(port, session, ready, stop, measuring, results) -> None:
    """CLIENTS blotter websockets; per client, for every quote received while `measuring`:
    the latency from its SendingTime and from the push; and the time spent decoding."""
    import websockets

    from marketdata.broadcast import QUOTE_COLUMNS

    src_at = QUOTE_COLUMNS.index("src")
    latencies: list[list[float]] = [[] for _ in range(CLIENTS)]
    from_push: list[list[float]] = [[] for _ in range(CLIENTS)]
    floor: list[list[float]] = [[] for _ in range(CLIENTS)]  # the bench's own pushes alone
    decoding = [0.0, 0]  # seconds, messages

    async def client(i: int, connected: list):
        async with websockets.connect(
            f"ws://127.0.0.1:{port}/ws/blotter/",
            additional_headers={"Cookie": f"sessionid={session}"},
            origin=f"http://127.0.0.1:{port}",
            max_queue=None,
            # OMS_BENCH_MD_DEFLATE=0: without permessage-deflate.
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
                if message["rows"] and message["rows"][0][0].startswith("FLOOR"):
                    floor[i].append(now - datetime.fromisoformat(message["at"]).timestamp())
                    continue
                if not measuring.is_set():
                    continue
                decoding[0] += time.time() - now
                decoding[1] += 1
                pushed = datetime.fromisoformat(message["at"]).timestamp()
                from_push[i].append(now - pushed)
                for row in message["rows"]:
                    if row[src_at]:
                        latencies[i].append(now - row[src_at])

    async def all_clients():
        connected: list = []
        await asyncio.gather(*(client(i, connected) for i in range(CLIENTS)))

    asyncio.run(all_clients())
    for i in range(CLIENTS):
        results.put((latencies[i], from_push[i], floor[i]))
    results.put(decoding)


def _hop_floors(broker) -> dict:
    """Each hop alone, in this process: the simulator composing 35=X (stepping the books and
    writing the message, not sending), the gateway reading and folding them, one write of
    every security's quote, and encoding one push of them."""
    from fixgateway.marketdata import MarketDataSession, parse_refresh
    from fixgateway.simmarket import SimMarket, incremental_refresh
    from marketdata.broadcast import quotes_message
    from marketdata.services import QuoteUpdate, quotes_apply

    market = SimMarket(lambda symbol: "50.00")
    market.stop()
    market.trade_probability = 0.2
    books = [market.book(f"FLOOR{i}") for i in range(SECURITIES)]
    rounds = 10
    incremental_refresh("FIX.4.4", [])  # reads the data dictionary once, before timing
    started = time.perf_counter()
    texts = []
    for _ in range(rounds):
        changes = [(b.symbol, market.step(b)) for b in books]
        for at in range(0, len(changes), BATCH):
            message = incremental_refresh("FIX.4.4", changes[at : at + BATCH])
            message.getHeader().setField(52, "20261203-12:00:00.000")
            texts.append(message.toString())
    compose = time.perf_counter() - started

    class _App:
        pass

    session = MarketDataSession(broker, _App(), start=False)
    now = datetime.now(UTC)
    started = time.perf_counter()
    for text in texts:
        session.apply_refresh(parse_refresh(text), now=now)
    parse = time.perf_counter() - started
    started = time.perf_counter()
    rows = session.push_rows(time.monotonic())
    text = quotes_message(rows, sent_at=time.time())
    encode = time.perf_counter() - started
    started = time.perf_counter()
    json.loads(text)
    decode = time.perf_counter() - started

    from oms.models import Security

    ids = list(Security.objects.filter(symbol__startswith="MD").values_list("id", flat=True))
    writes = []
    for _ in range(3):
        started = time.perf_counter()
        quotes_apply(
            updates=[
                QuoteUpdate(
                    security_id=i,
                    bid=Decimal("49.99"),
                    ask=Decimal("50.01"),
                    last=Decimal("50.00"),
                    day_volume=Decimal(1000),
                    day_vwap=Decimal("50.0012"),
                    trade_date=now.date(),
                )
                for i in ids
            ],
            source="FLOOR",
            as_of=datetime.now(UTC),
        )
        writes.append(time.perf_counter() - started)
    updates = rounds * SECURITIES
    return {
        "floor_sim_compose_updates_per_s": round(updates / compose),
        "floor_gateway_parse_updates_per_s": round(updates / parse),
        "floor_push_encode_ms": round(encode * 1000, 2),
        "floor_client_decode_ms": round(decode * 1000, 2),
        "floor_push_bytes": len(text),
        "floor_write_ms": round(min(writes) * 1000, 2),
        "_push_text": text,
    }


def _push_alone(text: str, pushes: int = 40, per_second: float = 10) -> None:
    """Send `pushes` copies of one push of every security (the floor's rows, named FLOOR...)
    from this process, at `per_second`: the fan-out (channel layer, Daphne, the clients) alone,
    the market still."""
    from marketdata.broadcast import quotes_message, quotes_send

    rows = json.loads(text)["rows"]

    async def send_all():
        for _ in range(pushes):
            await quotes_send(quotes_message(rows, sent_at=time.time()))
            await asyncio.sleep(1 / per_second)

    asyncio.run(send_all())


def _fills_alone(desk, accounts, applied) -> float:
    """Fills a second over the same session with the market (nearly) still."""
    before, started = applied.count(), time.perf_counter()
    for _ in range(FLOOR_BLOCKS):
        _routed_block(desk, accounts, 1000)
    target = before + FLOOR_BLOCKS * 1000
    deadline = time.monotonic() + 60
    while applied.count() < target and time.monotonic() < deadline:
        time.sleep(0.05)
    return round((applied.count() - before) / (time.perf_counter() - started), 1)


def _gateway_stats(log_path: Path, after: float) -> list[dict]:
    """The gateway's market data hop profile lines logged after `after` (epoch seconds)."""
    found = []
    for line in log_path.read_text(errors="replace").splitlines():
        if " market data {" not in line:
            continue
        try:
            # the log writes local time, as this process reads it
            logged = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").astimezone().timestamp()
        except ValueError:
            continue
        if logged >= after:
            found.append(json.loads(line[line.index("{") :]))
    return found


class _Simulator:
    """`manage.py run_broker_sim` in a process of its own (no message log: it sends tens of
    thousands of updates a second), called through its control port: sim(command, **args)."""

    def __init__(self, tmp: Path, sessions: list[str]):
        ready = tmp / "sim-ready.json"
        self.log = (tmp / "simulator.log").open("wb")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "manage.py"),
                "run_broker_sim",
                *(a for spec in sessions for a in ("--session", spec)),
                "--control-port",
                str(_free_port()),
                "--store",
                str(tmp / "sim"),
                "--ready-file",
                str(ready),
                "--fill-mode",
                "slices",
                "--no-db-prices",
                "--no-message-log",
            ],
            cwd=ROOT,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while not ready.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the simulator did not start (see {tmp / 'simulator.log'})")
            time.sleep(0.1)
        self.url = f"http://127.0.0.1:{json.loads(ready.read_text())['control_port']}"

    def __call__(self, command: str, **args) -> dict:
        request = urllib.request.Request(
            f"{self.url}/{command}",
            data=json.dumps(args).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.log.close()


def main(argv: list[str]) -> dict:
    from django.db import connection
    from django.test import Client

    from fixgateway.models import Execution, SessionState
    from oms.models import Security
    from positions.models import Position
    from tests import factories

    tmp = Path(tempfile.mkdtemp(prefix="md-bench-"))
    desk = _desk("M", port=_free_port())
    broker = desk.broker
    md_comp_id = f"O{desk.tag}MD"
    broker.extra_config = {
        "market_data": {"session": {"SenderCompID": md_comp_id}}
        if MD_SESSION == "separate"
        else True
    }
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
    floors = _hop_floors(broker)

    # The simulator is a process of its own, as a broker is another machine: in this process it
    # would share the GIL with the order entry below, and send a fifth less while blocks are
    # routed. It is driven through its control port.
    sessions = [f"{broker.port}:T{desk.tag}:O{desk.tag}"]
    if MD_SESSION == "separate":
        sessions.append(f"{broker.port}:T{desk.tag}:{md_comp_id}")
    sim = _Simulator(tmp, sessions)
    sim("config", slices=1000, interval=0.0, prices={desk.sec.symbol: "10.00"})
    # Still while the fills alone are measured.
    sim("md_config", rate=0.2, batch=BATCH, trade_probability=0.2)
    env = dict(os.environ)
    env.update(OMS_FIX_STORE_DIR=str(tmp / "gw-store"), OMS_FIX_LOG_DIR=str(tmp / "gw-log"))
    gateway_log = tmp / "gateway.log"
    with gateway_log.open("wb") as sink:
        gateway = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "run_fix_gateway", "--broker", broker.code],
            cwd=ROOT,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    feed = None
    if MD_SESSION == "separate":
        feed_log = tmp / "market-data.log"
        with feed_log.open("wb") as sink:
            feed = subprocess.Popen(
                [
                    sys.executable,
                    str(ROOT / "manage.py"),
                    "run_market_data",
                    "--broker",
                    broker.code,
                ],
                cwd=ROOT,
                env=env,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
    else:
        feed_log = gateway_log
    port = _free_port()
    daphne = _daphne(port)
    trader = factories.user(f"mdtr{desk.tag}", "Trader")
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(trader)
    ctx = multiprocessing.get_context("spawn")
    ready, stop, measuring = ctx.Event(), ctx.Event(), ctx.Event()
    results = ctx.Queue()
    clients = ctx.Process(
        target=_clients_process,
        args=(port, client.cookies["sessionid"].value, ready, stop, measuring, results),
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
        while len(sim("md_state")["subscribed"]) < SECURITIES:
            if time.monotonic() > deadline:
                raise RuntimeError("the gateway did not subscribe to every security")
            time.sleep(0.2)
        _push_alone(floors.pop("_push_text"))
        applied = Execution.objects.filter(broker=broker, exec_type="F")
        floors["floor_fills_alone_per_s"] = _fills_alone(desk, fill_accounts, applied)
        sim("md_config", rate=RATE)
        time.sleep(3)  # the market settles in
        load_before = os.getloadavg()
        measuring.set()
        window_start = time.time()
        sent_before, started = sim("md_state")["sent_updates"], time.perf_counter()
        fills_before = applied.count()
        for _ in range(BLOCKS):
            _routed_block(desk, fill_accounts, 1000)
        remaining = DURATION_S - (time.perf_counter() - started)
        if remaining > 0:
            time.sleep(remaining)
        elapsed = time.perf_counter() - started
        fills = applied.count() - fills_before
        sent = sim("md_state")["sent_updates"] - sent_before
        measuring.clear()
        load_after = os.getloadavg()
        time.sleep(1)
        stop.set()
        per_client = [results.get(timeout=60) for _ in range(CLIENTS)]
        decoding = results.get(timeout=60)
    finally:
        stop.set()
        clients.join(10)
        if clients.is_alive():
            clients.kill()
        daphne.terminate()
        daphne.wait(10)
        for proc in (gateway, feed):
            if proc is not None:
                proc.terminate()
                proc.wait(30)
        sim.stop()
        connection.close()
    latencies = [v for c, _, _ in per_client for v in c]
    from_push = [v for _, p, _ in per_client for v in p]
    push_floor = [v for _, _, f in per_client for v in f]
    hops = _gateway_stats(feed_log, window_start + 4)  # whole 5 s lines inside the window
    applied_rate = round(sum(h["updates_per_s"] for h in hops) / len(hops), 1) if hops else None
    p99 = _ms(latencies, 0.99) if latencies else None
    fill_rate = round(fills / elapsed, 1)
    return {
        "md_securities": SECURITIES,
        "md_session": MD_SESSION,
        "md_securities_per_message": BATCH,
        "md_target_updates_per_s": int(SECURITIES * RATE),
        "md_sent_updates_per_s": round(sent / elapsed, 1),
        "md_applied_updates_per_s": applied_rate,
        "md_clients": CLIENTS,
        "md_deliveries": len(latencies),
        "md_latency_p50_ms": _ms(latencies, 0.50) if latencies else None,
        "md_latency_p99_ms": p99,
        "md_latency_max_ms": _ms(latencies, 1.0) if latencies else None,
        "md_latency_target_p99_ms": 250,
        "md_latency_ok": p99 is not None and p99 <= 250,
        "md_measured_from": "the simulator's SendingTime of the latest update a quote carries",
        "md_push_to_client_p50_ms": _ms(from_push, 0.50) if from_push else None,
        "md_push_to_client_p99_ms": _ms(from_push, 0.99) if from_push else None,
        "floor_push_to_client_p50_ms": _ms(push_floor, 0.50) if push_floor else None,
        "floor_push_to_client_p99_ms": _ms(push_floor, 0.99) if push_floor else None,
        "md_client_decode_ms": round(decoding[0] / max(decoding[1], 1) * 1000, 3),
        "md_gateway_hops": hops,
        "fills_applied": fills,
        "fills_per_s": fill_rate,
        "fills_target_per_s": 500,
        "fills_ok": fill_rate >= 500,
        "fills_vs_alone": round(fill_rate / floors["floor_fills_alone_per_s"], 2)
        if floors["floor_fills_alone_per_s"]
        else None,
        **floors,
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in load_after],
        "seconds": round(elapsed, 1),
    }
