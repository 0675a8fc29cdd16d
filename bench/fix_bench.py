"""FIX throughput: execution reports from the simulator applied end to end by the gateway
(execution, orders, allocation, positions, cash, audit committed), against raw QuickFIX on
loopback with no database work. Target: >= 1,000 reports/s end to end.

OMS_BENCH_FIX_REPORTS sets how many reports (default 20,000). It writes its own broker,
users and orders into the database it runs on (make bench uses a scratch database).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import quickfix as fix

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Counter(fix.Application):
    """An initiator that only counts execution reports (the raw QuickFIX baseline)."""

    def __init__(self, expected: int):
        super().__init__()
        self.expected, self.count = expected, 0
        self.first = self.last = 0.0
        self.done = threading.Event()
        self.logged_on = threading.Event()
        self.session = None

    def onCreate(self, s):  # noqa: N802
        self.session = s

    def onLogon(self, s):  # noqa: N802
        self.logged_on.set()

    def onLogout(self, s):  # noqa: N802
        pass

    def toAdmin(self, m, s):  # noqa: N802
        pass

    def fromAdmin(self, m, s):  # noqa: N802
        pass

    def toApp(self, m, s):  # noqa: N802
        pass

    def fromApp(self, m, s):  # noqa: N802
        try:
            if m.getHeader().getField(35) == "8" and m.getField(150) == "F":
                self.count += 1
                now = time.perf_counter()
                self.first = self.first or now
                self.last = now
                if self.count >= self.expected:
                    self.done.set()
        except BaseException:  # noqa: BLE001
            pass


def _raw(n: int, tmp: Path) -> float:
    from fixgateway import fixmsg
    from fixgateway.simulator import BrokerSimulator, SimConfig, acceptor_settings

    port = _free_port()
    sim = BrokerSimulator(SimConfig(fill_mode="slices", slices=n, interval=0.0))
    acfg = acceptor_settings([{"port": port, "sender": "RAWB", "target": "RAWO"}], tmp / "raw-sim")
    acceptor = fix.ThreadedSocketAcceptor(
        sim, fix.FileStoreFactory(acfg), acfg, fix.ScreenLogFactory(False, False, False)
    )
    counter = _Counter(n)
    icfg = fixmsg.session_settings(
        {
            "ConnectionType": "initiator",
            "FileStorePath": str(tmp / "raw-ini"),
            "StartTime": "00:00:00",
            "EndTime": "00:00:00",
            "ReconnectInterval": "1",
            "UseDataDictionary": "Y",
            "AllowUnknownMsgFields": "Y",
        },
        [
            {
                "BeginString": "FIX.4.4",
                "SenderCompID": "RAWO",
                "TargetCompID": "RAWB",
                "SocketConnectHost": "127.0.0.1",
                "SocketConnectPort": str(port),
                "HeartBtInt": "30",
                "DataDictionary": fixmsg.data_dictionary_path("FIX.4.4"),
            }
        ],
    )
    initiator = fix.SocketInitiator(counter, fix.FileStoreFactory(icfg), icfg)
    acceptor.start()
    initiator.start()
    try:
        counter.logged_on.wait(15)
        order = fixmsg.new_message("D")
        for tag, value in (
            (11, "RAW-1"),
            (21, "1"),
            (55, "RAW"),
            (54, "1"),
            (38, str(n)),
            (40, "1"),
            (59, "0"),
        ):
            order.setField(tag, value)
        order.setField(
            60, fixmsg.fix_time(__import__("datetime").datetime.now(__import__("datetime").UTC))
        )
        fix.Session.sendToTarget(order, counter.session)
        counter.done.wait(300)
        elapsed = counter.last - counter.first
        return counter.count / elapsed if elapsed else 0.0
    finally:
        initiator.stop()
        sim.stop()
        acceptor.stop()


@dataclass
class _Desk:
    """A broker, a trader, a PM and a security of the benchmark's own (a fresh tag each)."""

    tag: str
    broker: object
    trader: object
    pm: object
    sec: object


def _desk(prefix: str, port: int = 1) -> _Desk:
    from fixgateway.models import Broker
    from tests import factories

    tag = f"{prefix}{uuid.uuid4().hex[:6]}"
    broker = Broker.objects.create(
        code=f"B{tag}", name="bench", port=port, sender_comp_id=f"O{tag}", target_comp_id=f"T{tag}"
    )
    return _Desk(
        tag=tag,
        broker=broker,
        trader=factories.user(f"tr{tag}", "Trader"),
        pm=factories.user(f"pm{tag}", "PM"),
        sec=factories.security(f"S{tag}", price="10.00"),
    )


def _routed_block(desk: _Desk, accounts: list, quantity: int):
    """One staged market order of `quantity` per account, blocked and routed to the desk's
    broker: the block, with its ClOrdID at hand."""
    from django.utils import timezone

    from fixgateway.models import FixOrder
    from orders.block_services import block_create, block_route
    from orders.lifecycle import OrderStatus
    from tests import factories

    now = timezone.now()
    ids = [
        factories.order(
            account,
            desk.sec,
            desk.pm,
            quantity=str(quantity),
            status=OrderStatus.STAGED,
            received_at=now,
        ).pk
        for account in accounts
    ]
    block = block_create(order_ids=ids, actor=desk.trader, as_of=now)
    block = block_route(
        block_id=block.pk,
        broker_id=desk.broker.pk,
        order_type="MARKET",
        actor=desk.trader,
        as_of=now,
    )
    block.cl_ord_id = FixOrder.objects.get(block=block).cl_ord_id
    return block


def _end_to_end(n: int, tmp: Path, orders_per_block: int = 1) -> dict:
    from django.db import connection

    from fixgateway.models import Execution, SessionState
    from fixgateway.simulator import BrokerSimulator, SimConfig, acceptor_settings
    from orders.models import Block
    from tests import factories

    desk = _desk("E", port=_free_port())
    tag, broker, port, sec = desk.tag, desk.broker, desk.broker.port, desk.sec
    sim = BrokerSimulator(
        SimConfig(fill_mode="slices", slices=1000, interval=0.0, prices={sec.symbol: "10.00"})
    )
    acfg = acceptor_settings(
        [{"port": port, "sender": f"T{tag}", "target": f"O{tag}"}], tmp / "e2e-sim"
    )
    acceptor = fix.ThreadedSocketAcceptor(
        sim, fix.FileStoreFactory(acfg), acfg, fix.ScreenLogFactory(False, False, False)
    )
    acceptor.start()
    env = dict(os.environ)
    env.update(OMS_FIX_STORE_DIR=str(tmp / "gw-store"), OMS_FIX_LOG_DIR=str(tmp / "gw-log"))
    gw = subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "run_fix_gateway", "--broker", broker.code],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while not SessionState.objects.filter(broker=broker, logged_on=True).exists():
            if time.monotonic() > deadline:
                raise RuntimeError("gateway did not log on")
            time.sleep(0.2)
        # Each block is filled in 1,000 reports, split across its orders (one account each).
        accounts = [factories.account(f"A{tag}{i}", desk.pm) for i in range(orders_per_block)]
        blocks = [_routed_block(desk, accounts, 1000).pk for _ in range(max(1, n // 1000))]
        expected = len(blocks) * 1000
        started = time.perf_counter()
        applied = Execution.objects.filter(broker=broker, exec_type="F")
        while applied.count() < expected:
            if time.perf_counter() - started > 3600:
                break
            time.sleep(0.5)
        elapsed = time.perf_counter() - started
        filled = Block.objects.filter(pk__in=blocks, status="FILLED").count()
        return {
            "reports": applied.count(),
            "seconds": round(elapsed, 2),
            "rate": round(applied.count() / elapsed, 1),
            "blocks_filled": filled,
            "orders_per_block": orders_per_block,
        }
    finally:
        gw.terminate()
        gw.wait(30)
        sim.stop()
        acceptor.stop()
        connection.close()


def _in_process(orders: int, reports: int) -> dict:
    """execution_report_apply called directly (no QuickFIX): what one report costs the
    database and this process, for a block of `orders` orders."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from fixgateway.services import InboundReport, execution_report_apply
    from tests import factories

    desk = _desk("I")
    accounts = [factories.account(f"A{desk.tag}{i}", desk.pm) for i in range(orders)]
    block = _routed_block(desk, accounts, reports)
    broker, cl_ord_id = desk.broker, block.cl_ord_id

    def report(i: int) -> InboundReport:
        return InboundReport(
            msg_type="8",
            cl_ord_id=cl_ord_id,
            exec_id=f"X{i}",
            exec_type="F",
            ord_status="1",
            last_qty=Decimal(orders),
            last_px=Decimal("10.01"),
            cum_qty=Decimal(orders * (i + 1)),
            avg_px=Decimal("10.01"),
        )

    execution_report_apply(broker=broker, report=report(0), as_of=timezone.now())
    with CaptureQueriesContext(connection) as ctx:
        execution_report_apply(broker=broker, report=report(1), as_of=timezone.now())
    started, cpu = time.perf_counter(), time.process_time()
    for i in range(2, reports):
        execution_report_apply(broker=broker, report=report(i), as_of=timezone.now())
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {
        "orders_per_block": orders,
        "statements_per_report": len(ctx.captured_queries),
        "ms_per_report": round(1000 * wall / (reports - 2), 2),
        "cpu_ms_per_report": round(1000 * cpu / (reports - 2), 2),
        "reports_per_s": round((reports - 2) / wall, 1),
    }


def _in_process_batched(orders: int, blocks: int, per_block: int, batch: int) -> dict:
    """inbound_batch_apply called directly (no QuickFIX) with `batch` reports at a time,
    interleaved over `blocks` blocks of `orders` orders: what the gateway's applier does
    with a burst."""
    from django.utils import timezone

    from fixgateway.services import InboundReport, inbound_batch_apply
    from tests import factories

    desk = _desk("J")
    broker = desk.broker
    cl_ord_ids = [
        _routed_block(
            desk,
            [factories.account(f"A{desk.tag}{b}x{i}", desk.pm) for i in range(orders)],
            per_block * orders,
        ).cl_ord_id
        for b in range(blocks)
    ]
    reports = [
        InboundReport(
            msg_type="8",
            cl_ord_id=cl_ord_ids[b],
            exec_id=f"J{b}-{i}",
            exec_type="F",
            ord_status="1",
            last_qty=Decimal(orders * orders),
            last_px=Decimal("10.01"),
        )
        for i in range(per_block)
        for b in range(blocks)
    ]
    started, cpu = time.perf_counter(), time.process_time()
    for k in range(0, len(reports), batch):
        results = inbound_batch_apply(
            broker=broker, reports=reports[k : k + batch], as_of=timezone.now()
        )
        assert all(r.outcome == "applied" for r in results), results[:3]
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {
        "orders_per_block": orders,
        "reports": len(reports),
        "batch": batch,
        "ms_per_report": round(1000 * wall / len(reports), 3),
        "cpu_ms_per_report": round(1000 * cpu / len(reports), 3),
        "reports_per_s": round(len(reports) / wall, 1),
    }


def _commit_floor(n: int = 2000) -> dict:
    """What Postgres itself allows one connection: a round trip, and the smallest durable
    transaction (one insert, committed), here, now."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("CREATE TEMP TABLE IF NOT EXISTS fix_bench_probe (v int)")
        started = time.perf_counter()
        for _ in range(n):
            cursor.execute("SELECT 1")
        trip = (time.perf_counter() - started) / n
        # A temporary table writes no WAL: commit a real one to pay for the flush.
        cursor.execute("CREATE TABLE IF NOT EXISTS fix_bench_commit_probe (v int)")
        started = time.perf_counter()
        for _ in range(n):
            cursor.execute("INSERT INTO fix_bench_commit_probe VALUES (1)")
        commit = (time.perf_counter() - started) / n
        cursor.execute("DROP TABLE fix_bench_commit_probe")
    return {
        "round_trip_ms": round(1000 * trip, 3),
        "insert_and_commit_ms": round(1000 * commit, 3),
        "commits_per_s": round(1 / commit),
    }


def main(argv: list[str]) -> dict:
    n = int(os.environ.get("OMS_BENCH_FIX_REPORTS", "20000"))
    in_process = [_in_process(orders, 300) for orders in (1, 3)]
    batched = [_in_process_batched(orders, 20, 100, 500) for orders in (1, 3)]
    floor = _commit_floor()
    with tempfile.TemporaryDirectory() as tmp:
        raw = _raw(n, Path(tmp))
        e2e = _end_to_end(n, Path(tmp))
        e2e_three = _end_to_end(max(1000, n // 2), Path(tmp) / "three", orders_per_block=3)
    return {
        "reports": n,
        "raw_quickfix_reports_per_s": round(raw, 1),
        "end_to_end_reports_per_s": e2e["rate"],
        "end_to_end": e2e,
        "end_to_end_blocks_of_3_orders": e2e_three,
        "ratio_raw_to_end_to_end": round(raw / e2e["rate"], 1) if e2e["rate"] else None,
        "target_reports_per_s": 1000,
        "meets_target": e2e["rate"] >= 1000,
        "in_process_apply": in_process,
        "in_process_batched_apply": batched,
        "postgres_floor": floor,
    }
