"""More than one web process and more than one worker: a change made through one Daphne reaches a
blotter connected to another (the channel layer in Redis is shared), and each keeps its own
bounded pool; fills applied by whichever of two Celery FIX workers owns the broker's session
reach blotters on both Daphnes, and only one worker owns it at a time."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
import requests
from rest_framework.authtoken.models import Token

from tests.conftest import ROOT, _test_database_url, daphne_serving

from .helpers import session_cookie, staged_order, ws_connect, ws_json

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_a_block_made_through_one_daphne_reaches_a_blotter_on_another(refdata):
    orders = [staged_order(refdata.acct1, refdata.aapl), staged_order(refdata.acct2, refdata.aapl)]
    token = Token.objects.create(user=refdata.trader).key
    database_url = _test_database_url()
    with (
        daphne_serving(database_url, OMS_DB_POOL_SIZE="3") as web_a,
        daphne_serving(database_url, OMS_DB_POOL_SIZE="3") as web_b,
    ):
        with (
            ws_connect(web_b, "/ws/blotter/", cookie=session_cookie(refdata.trader)) as desk,
            ws_connect(web_b, "/ws/orders/mine/", cookie=session_cookie(refdata.pm1)) as pm1,
        ):
            assert ws_json(desk)["type"] == "subscribed"
            assert ws_json(pm1)["type"] == "subscribed"
            made = requests.post(
                f"{web_a}/api/blocks/",
                json={"order_ids": [o.pk for o in orders]},
                headers={"Authorization": f"Token {token}"},
                timeout=30,
            )
            assert made.status_code == 201, made.text
            rows = ws_json(desk, timeout=10)["rows"]
            assert sorted(r["id"] for r in rows) == sorted(o.pk for o in orders)
            assert {r["block_id"] for r in rows} == {made.json()["id"]}
            # pm1's feed on the other process carries pm1's order only.
            assert [r["id"] for r in ws_json(pm1, timeout=10)["rows"]] == [orders[0].pk]


class CeleryWorkers:
    """The Procfile's `fix` workers as real processes: `celery -A fixgateway.worker worker -Q fix
    --pool solo`, each holding the gateway bootstep; one owns the broker's session through the
    advisory lock, the other stands by."""

    def __init__(self, tmp_path, env: dict):
        self.tmp, self.env, self.procs = tmp_path, env, []

    def start(self, name: str) -> subprocess.Popen:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "fixgateway.worker",
                "worker",
                "-Q",
                "fix",
                "-n",
                f"{name}@%h",
                "--pool",
                "solo",
                "-l",
                "info",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=open(self.tmp / f"celery-{name}.log", "w"),
            stderr=subprocess.STDOUT,
        )
        self.procs.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()


def _session_owner_pid(broker) -> int | None:
    from fixgateway.models import SessionState

    state = SessionState.objects.filter(broker=broker, logged_on=True).first()
    return int(state.owner.rsplit(":", 1)[1]) if state and state.owner else None


def _lock_holders(broker) -> int:
    """Postgres sessions holding the broker's ownership lock (fixgateway.runner)."""
    from django.db import connection

    from fixgateway.runner import LOCK_NAMESPACE

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
            " AND classid = %s AND objid = %s AND database = "
            "(SELECT oid FROM pg_database WHERE datname = current_database())",
            [LOCK_NAMESPACE, broker.pk],
        )
        return cursor.fetchone()[0]


def _filled_rows(ws, order_ids: set[int], timeout: float = 30) -> float:
    """Read the feed until every one of these orders shows FILLED: when that happened."""
    filled: set[int] = set()
    deadline = time.monotonic() + timeout
    while filled != order_ids:
        message = ws_json(ws, timeout=max(0.1, deadline - time.monotonic()))
        filled |= {r["id"] for r in message["rows"] if r["status"] == "FILLED"} & order_ids
    return time.monotonic()


def test_fills_applied_by_whichever_celery_worker_owns_the_session_reach_both_daphnes(
    refdata, broker, sim, gateway_env, tmp_path
):
    from orders.models import Order
    from tests.fix.conftest import routed_block, wait_until

    workers = CeleryWorkers(tmp_path, gateway_env)
    database_url = _test_database_url()
    try:
        first, second = workers.start("fix-a"), workers.start("fix-b")
        wait_until(lambda: _session_owner_pid(broker), timeout=60, what="a worker logs on")
        # One owner at a time: one lock holder, one session row naming one of the two.
        assert _lock_holders(broker) == 1
        owner = _session_owner_pid(broker)
        assert owner in (first.pid, second.pid)
        standby = second if owner == first.pid else first
        with (
            daphne_serving(database_url, OMS_DB_POOL_SIZE="3") as web_a,
            daphne_serving(database_url, OMS_DB_POOL_SIZE="3") as web_b,
        ):
            trader = session_cookie(refdata.trader)
            with (
                ws_connect(web_a, "/ws/blotter/", cookie=trader) as desk_a,
                ws_connect(web_b, "/ws/blotter/", cookie=trader) as desk_b,
                ws_connect(web_b, "/ws/orders/mine/", cookie=session_cookie(refdata.pm1)) as pm1,
            ):
                for ws in (desk_a, desk_b, pm1):
                    assert ws_json(ws)["type"] == "subscribed"
                timings = []
                for round_ in range(2):
                    routed_at = time.monotonic()
                    block = routed_block(refdata, broker, "300", "200")
                    ids = set(Order.objects.filter(block=block).values_list("pk", flat=True))
                    # The fills are applied in the owning worker, published from there, and
                    # reach the desk on both web processes; pm1 sees their own order only.
                    seen = [_filled_rows(ws, ids) - routed_at for ws in (desk_a, desk_b)]
                    mine = {
                        o for o in ids if Order.objects.get(pk=o).account_id == refdata.acct1.pk
                    }
                    _filled_rows(pm1, mine)
                    timings.append(seen)
                    if round_ == 0:
                        # The owner's worker stops; the standby takes the lock and the session.
                        stopped_at = time.monotonic()
                        next(p for p in workers.procs if p.pid == owner).terminate()
                        wait_until(
                            lambda: _session_owner_pid(broker) == standby.pid,
                            timeout=30,
                            what="the standby worker takes over",
                        )
                        takeover = time.monotonic() - stopped_at
                        assert _lock_holders(broker) == 1
                print(
                    f"two celery fix workers, two daphnes: route to FILLED on both blotters "
                    f"{max(timings[0]):.2f} s (owner), {max(timings[1]):.2f} s (after takeover); "
                    f"standby took over {takeover:.1f} s after the owner's worker was stopped"
                )
    finally:
        workers.stop_all()
