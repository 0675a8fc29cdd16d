"""Postgres restarted (immediate shutdown, crash recovery) in the middle of a stream of fills:
the FIX worker reconnects and nothing the broker sent is lost or applied twice. Runs against a
private Postgres (a copy of the test database), never the shared server."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from decimal import Decimal

import psycopg
import pytest

from tests.conftest import ROOT, _free_port, _test_database_url
from tests.fix.conftest import GatewayProcess, wait_until
from tests.reliability.conftest import scale
from tests.reliability.pg import PrivatePostgres

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def private_pg():
    pg = PrivatePostgres(_free_port())
    pg.start()
    yield pg
    pg.stop()


def _actor(env: dict, command: str, args: dict) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "tests.reliability.pg_actor", command, json.dumps(args)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    if out.returncode:
        raise AssertionError(f"pg_actor {command} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _fills(url: str) -> int:
    try:
        with psycopg.connect(url, connect_timeout=2) as conn:
            return conn.execute(
                "SELECT count(*) FROM fixgateway_execution WHERE exec_type = 'F'"
            ).fetchone()[0]
    except psycopg.OperationalError:
        return -1


def test_postgres_restart_mid_stream_loses_no_fill(
    broker, sim, gateway_env, private_pg, tmp_path, figure
):
    private_pg.clone(_test_database_url(), "oms_faults")
    url = private_pg.url("oms_faults")
    env = {**gateway_env, "DATABASE_URL": url}
    n_blocks, per_block = 2, scale(40, 1000)
    big, small = per_block * 3 // 5, per_block - per_block * 3 // 5
    fields = (
        "code name host port fix_version sender_comp_id target_comp_id heartbeat_seconds".split()
    )
    blocks = _actor(
        env,
        "setup",
        {
            "broker": {f: getattr(broker, f) for f in fields},
            "blocks": n_blocks,
            "quantities": [str(big), str(small)],
        },
    )["blocks"]
    sim("config", fill_mode="slices", slices=per_block, interval=0.02)
    gateway = GatewayProcess(tmp_path, env)
    gateway.start()
    try:
        wait_until(lambda: _fills(url) >= per_block // 2, timeout=120, what="fills streaming")
        private_pg.crash()
        down_at = time.monotonic()
        time.sleep(2)
        private_pg.start()
        restarted = time.monotonic() - down_at

        def done() -> bool:
            state = _actor(env, "state", {"blocks": blocks})
            return all(b["status"] == "FILLED" for b in state.values())

        wait_until(done, timeout=max(120, per_block), interval=1, what="every block filled")
        recovered = time.monotonic() - down_at
        state = _actor(env, "state", {"blocks": blocks})
        sim_state = sim("state")
        by_first = {o["first_cl_ord_id"]: o for o in sim_state["orders"]}
        lost = twice = 0
        for pk, ours in state.items():
            theirs = by_first[f"OMS-B{pk}-1"]
            lost += max(0, theirs["fills"] - ours["fills"])
            twice += max(0, ours["fills"] - theirs["fills"])
            assert Decimal(theirs["cum"]) == Decimal(ours["cum"]) == per_block
            assert [Decimal(c) for c in ours["orders_cum"]] == [big, small]
        sent_twice = sum(c - 1 for c in sim_state["received"].values())
        # The engine restarted in-process during the outage: it must survive the next
        # reconnect too (a stale engine once left it unregistered, and it segfaulted here).
        wait_until(lambda: sim("state")["sessions"], timeout=30, what="the session up")
        assert sim("disconnect")["sessions"]
        wait_until(lambda: not sim("state")["sessions"], timeout=10, what="logged out")
        wait_until(lambda: sim("state")["sessions"], timeout=30, what="the session back")
        assert all(p.poll() is None for p in gateway.procs)
        figure(
            faults=1,
            checked=f"{n_blocks * per_block} fills; database down {restarted:.1f} s, every "
            f"block filled {recovered:.1f} s after the crash, {sent_twice} orders sent twice",
            lost=lost,
            twice=twice + sent_twice,
        )
        assert lost == 0 and twice == 0 and sent_twice == 0
    finally:
        gateway.stop_all()
