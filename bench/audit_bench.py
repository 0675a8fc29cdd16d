"""Does the audit chain's lock bound throughput? (`make bench ARGS=audit`)

Every audited transaction ends by taking one advisory lock (audit.services.CHAIN_LOCK_KEY),
reading the chain's head and inserting its events; the lock is held until the commit, so
chained transactions commit one at a time. This measures what that costs with 16 concurrent
writers, against limits measured in the same run on the same machine:

- `floor`: the Postgres commit floor — each writer updates a row of its own and commits (raw SQL,
  no ORM, no audit);
- `unchained`: the real use case (`orders.services.order_set_status` on the writer's own order:
  lock, transition, order event, audit event, after-commit push) with its audit event written
  exactly as the chain writes it (same row, same INSERT) but numbered from a sequence, without
  the lock and the head read: what the same work costs when nothing serialises it;
- `chained`: the same use case as it runs in production;
- `single`: the chained use case with one writer only (the lock's cost with no one waiting).

Each writer is a process of its own (16 processes: the GIL would otherwise be what is measured),
all started together on a barrier, for PHASE_SECONDS per phase. Reported per phase:
transactions/s, p50/p99/max latency; for `chained` also how long transactions waited for the
chain lock and how long they held it (lock acquired to commit done): 1/hold is the most the
chain could ever commit per second, whatever the number of writers.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time

WRITERS = int(os.environ.get("OMS_BENCH_AUDIT_WRITERS", "16"))
PHASE_SECONDS = float(os.environ.get("OMS_BENCH_AUDIT_SECONDS", "8"))
# The machine's load drifts (other suites share it): the two use-case phases alternate, twice.
PHASES = ("floor", "unchained", "chained", "unchained", "chained", "single")


def _ms(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 2)


def _unchained_head() -> tuple[int, str]:
    """The chain's head replaced by a sequence: no lock, no read of the last event."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT nextval('bench_audit_unchained')")
        seq = cursor.fetchone()[0]
    return seq, "0" * 64


class _LockTimer:
    """Wraps the real _chain_head to time the lock: requested, acquired, and released (the
    connection's COMMIT returned; not the commit callbacks, which run after it)."""

    def __init__(self, real, connection):
        self.real = real
        self.waits: list[float] = []
        self.holds: list[float] = []
        self.acquired: float | None = None
        real_commit = connection.commit

        def commit():
            real_commit()
            if self.acquired is not None:
                self.holds.append(time.perf_counter() - self.acquired)
                self.acquired = None

        connection.commit = commit

    def __call__(self):
        requested = time.perf_counter()
        head = self.real()
        self.acquired = time.perf_counter()
        self.waits.append(self.acquired - requested)
        return head


def _writer(index: int, order_id: int, row_id: int, commands, results, ready) -> None:
    import django

    django.setup()
    from django.db import connection, connections, transaction
    from django.utils import timezone

    import audit.services as audit_services
    from orders.lifecycle import OrderStatus
    from orders.services import order_set_status

    real_head = audit_services._chain_head
    timer = _LockTimer(real_head, connections["default"])
    status = OrderStatus.STAGED

    def use_case() -> None:
        nonlocal status
        to_status, kind = (
            (OrderStatus.APPROVED, "unstage")
            if status == OrderStatus.STAGED
            else (OrderStatus.STAGED, "stage")
        )
        order_set_status(order_id=order_id, to_status=to_status, as_of=timezone.now(), kind=kind)
        status = to_status

    def floor() -> None:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("UPDATE bench_audit_floor SET n = n + 1 WHERE id = %s", [row_id])

    ready.put(index)
    while True:
        command = commands.get()
        if command is None:
            return
        phase, start_at, stop_at = command
        timer.waits, timer.holds = [], []
        if phase == "unchained":
            audit_services._chain_head = _unchained_head
        elif phase in ("chained", "single"):
            audit_services._chain_head = timer
        work = floor if phase == "floor" else use_case
        if phase == "single" and index != 0:
            # One writer alone: what a lock holder costs when nobody waits behind it.
            stop_at = start_at
        latencies, error = [], None
        time.sleep(max(0.0, start_at - time.time()))
        try:
            while time.time() < stop_at:
                started = time.perf_counter()
                work()
                latencies.append(time.perf_counter() - started)
        except Exception as exc:  # reported to the parent, which fails the benchmark
            error = f"{type(exc).__name__}: {exc}"
        audit_services._chain_head = real_head
        results.put(
            {
                "phase": phase,
                "latencies": latencies,
                "waits": timer.waits,
                "holds": timer.holds,
                "error": error,
            }
        )


def _prepare(writers: int) -> tuple[list[int], list[int]]:
    from django.db import connection

    from orders.lifecycle import OrderStatus
    from tests import factories

    refdata = factories.build_refdata()
    orders = [
        factories.order(
            refdata.acct1 if i % 2 == 0 else refdata.acct2,
            refdata.aapl,
            refdata.pm1 if i % 2 == 0 else refdata.pm2,
            status=OrderStatus.STAGED,
        )
        for i in range(writers)
    ]
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE bench_audit_floor (id int PRIMARY KEY, n bigint NOT NULL)")
        cursor.execute(
            "INSERT INTO bench_audit_floor SELECT g, 0 FROM generate_series(1, %s) g", [writers]
        )
        # Downwards from -1: never a number the real chain (1, 2, ...) takes in the phases after.
        cursor.execute(
            "CREATE SEQUENCE bench_audit_unchained INCREMENT BY -1 MAXVALUE -1 START WITH -1"
        )
    return [o.pk for o in orders], list(range(1, writers + 1))


def _run(writers: int, order_ids: list[int], row_ids: list[int]) -> dict:
    from django.db import connections

    connections.close_all()
    # Each writer's own connection, made when it needs it: no pool threads across the spawn.
    os.environ["OMS_DB_POOL_SIZE"] = "0"
    ctx = mp.get_context("spawn")
    ready, results = ctx.Queue(), ctx.Queue()
    commands = [ctx.Queue() for _ in range(writers)]
    procs = [
        ctx.Process(
            target=_writer,
            args=(i, order_ids[i], row_ids[i], commands[i], results, ready),
            daemon=True,
        )
        for i in range(writers)
    ]
    for proc in procs:
        proc.start()
    try:
        for _ in procs:
            ready.get(timeout=180)
        collected: dict[str, list[dict]] = {}
        for phase in PHASES:
            start_at = time.time() + 1.0
            for queue in commands:
                queue.put((phase, start_at, start_at + PHASE_SECONDS))
            collected.setdefault(phase, []).extend(
                results.get(timeout=PHASE_SECONDS + 120) for _ in procs
            )
        errors = {p["error"] for parts in collected.values() for p in parts if p["error"]}
        if errors:
            raise RuntimeError(f"writers failed: {sorted(errors)}")
        figures: dict = {}
        for phase, parts in collected.items():
            seconds = PHASE_SECONDS * PHASES.count(phase)
            latencies = [x for p in parts for x in p["latencies"]]
            entry = {
                "transactions_per_second": round(len(latencies) / seconds, 1),
                "latency_ms_p50": _ms(latencies, 0.5),
                "latency_ms_p99": _ms(latencies, 0.99),
                "latency_ms_max": _ms(latencies, 1.0),
            }
            waits = [x for p in parts for x in p["waits"]]
            holds = [x for p in parts for x in p["holds"]]
            if holds:
                entry["lock_wait_ms_p50"] = _ms(waits, 0.5)
                entry["lock_wait_ms_p99"] = _ms(waits, 0.99)
                entry["lock_hold_ms_p50"] = _ms(holds, 0.5)
                entry["lock_hold_ms_p99"] = _ms(holds, 0.99)
                # The lock serialises lock-to-commit: its ceiling whatever the writers.
                entry["chain_ceiling_per_second"] = round(1 / (sum(holds) / len(holds)), 0)
                entry["lock_busy_share"] = round(sum(holds) / seconds, 3)
            figures[phase] = entry
    finally:
        for queue in commands:
            queue.put(None)
        for proc in procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()
    return figures


def main(argv: list[str]) -> dict:
    from django.db import connection

    order_ids, row_ids = _prepare(WRITERS)
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        synchronous_commit = cursor.fetchone()[0]
        cursor.execute("SHOW fsync")
        fsync = cursor.fetchone()[0]
    load_before = os.getloadavg()[0]
    phases = _run(WRITERS, order_ids, row_ids)
    chained, unchained, floor = phases["chained"], phases["unchained"], phases["floor"]
    figures = {
        "writers": WRITERS,
        "phase_seconds": PHASE_SECONDS,
        "cpus": os.cpu_count(),
        # Other suites share the machine: how busy it was around the run.
        "load_average_before": round(load_before, 1),
        "load_average_after": round(os.getloadavg()[0], 1),
        "postgres_synchronous_commit": synchronous_commit,
        "postgres_fsync": fsync,
        **{f"{phase}_{k}": v for phase, entry in phases.items() for k, v in entry.items()},
        "chained_over_unchained_throughput": round(
            chained["transactions_per_second"] / unchained["transactions_per_second"], 3
        ),
        "chained_over_unchained_p99": round(
            chained["latency_ms_p99"] / max(unchained["latency_ms_p99"], 0.001), 3
        ),
        "chained_over_floor_throughput": round(
            chained["transactions_per_second"] / floor["transactions_per_second"], 3
        ),
        "chain_ceiling_over_chained_throughput": round(
            chained["chain_ceiling_per_second"] / chained["transactions_per_second"], 2
        ),
    }
    for name, value in figures.items():
        print(f"{name:45s} {value}")
    return figures
