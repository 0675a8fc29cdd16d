"""The FIX tests' world: a broker simulator (QuickFIX acceptor, in this process, on a free
port) and the FIX gateway as a real subprocess (`manage.py run_fix_gateway`) on the test
database, talking over 127.0.0.1."""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest
import quickfix as fix

from tests.conftest import ROOT, _free_port, _test_database_url


def wait_until(predicate, timeout: float = 20, interval: float = 0.05, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class Sim:
    """The simulator engine and its application, stopped at teardown (QuickFIX must stop
    before Python exits)."""

    def __init__(
        self,
        tmp: Path,
        sessions: list[dict],
        personalities: tuple[str, ...] = (),
        store: str = "sim-store",
    ):
        from fixgateway.simulator import BrokerSimulator, SimConfig, acceptor_settings

        self.app = BrokerSimulator(SimConfig(prices={"AAPL": "190.00", "MSFT": "410.00"}))
        for name in personalities:
            self.app.personality_apply(name)
        # A fresh `store` is a broker whose numbering starts again at 1.
        cfg = acceptor_settings(sessions, tmp / store, tmp / "sim-log", personalities)
        self.acceptor = fix.ThreadedSocketAcceptor(
            self.app, fix.FileStoreFactory(cfg), cfg, fix.FileLogFactory(cfg)
        )
        self.acceptor.start()

    def __call__(self, command: str, **args):
        return self.app.control(command, args)

    def stop(self):
        self.app.stop()
        self.acceptor.stop()
        # Destroy the engine now: its sessions leave QuickFIX's global registry only then, and
        # a failed test's traceback keeps this object alive; the next test's simulator would
        # otherwise be handed this one's stale session (same SessionID).
        self.acceptor = None
        gc.collect()


@pytest.fixture
def broker(transactional_db):
    from fixgateway.models import Broker

    return Broker.objects.create(
        code="SIMT",
        name="Test simulator",
        host="127.0.0.1",
        port=_free_port(),
        sender_comp_id="OMS",
        target_comp_id="SIMT",
        heartbeat_seconds=5,
    )


@pytest.fixture
def sim(broker, tmp_path):
    s = Sim(
        tmp_path,
        [
            {
                "port": broker.port,
                "sender": "SIMT",
                "target": "OMS",
                "fix_version": broker.fix_version,
            }
        ],
    )
    yield s
    s.stop()


class GatewayProcess:
    def __init__(self, tmp: Path, env: dict):
        self.tmp, self.env, self.procs = tmp, env, []

    def start(self) -> subprocess.Popen:
        log = open(self.tmp / f"gateway-{len(self.procs)}.log", "w")
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "run_fix_gateway"],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.procs.append(proc)
        return proc

    def kill9(self, proc: subprocess.Popen) -> None:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

    def stop_all(self):
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()


@pytest.fixture
def gateway_env(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"}
    env["DATABASE_URL"] = _test_database_url()
    env["DJANGO_SETTINGS_MODULE"] = "oms.settings.test"
    env["OMS_FIX_STORE_DIR"] = str(tmp_path / "gw-store")
    env["OMS_FIX_LOG_DIR"] = str(tmp_path / "gw-log")
    return env


@pytest.fixture
def gateway(sim, gateway_env, tmp_path):
    """The gateway subprocess, logged on to the simulator."""
    from fixgateway.models import SessionState

    g = GatewayProcess(tmp_path, gateway_env)
    g.start()
    wait_until(
        lambda: SessionState.objects.filter(logged_on=True).exists(),
        timeout=30,
        what="gateway logon",
    )
    yield g
    g.stop_all()


@pytest.fixture
def desk(transactional_db):
    from tests.factories import build_refdata

    return build_refdata()


def routed_block(
    desk,
    broker,
    *quantities,
    order_type="MARKET",
    limit_price=None,
    time_in_force="DAY",
    strategy="DMA",
    strategy_params=None,
    security=None,
    as_of=None,
):
    """Staged orders (one per quantity, alternating the two accounts) blocked and routed."""
    from django.utils import timezone

    from orders.block_services import block_create, block_route
    from orders.lifecycle import OrderStatus
    from orders.models import Order

    security = security or desk.aapl
    now = as_of or timezone.now()
    ids = []
    for i, qty in enumerate(quantities):
        account, pm = (desk.acct1, desk.pm1) if i % 2 == 0 else (desk.acct2, desk.pm2)
        ids.append(
            Order.objects.create(
                account=account,
                security=security,
                side="BUY",
                quantity=Decimal(qty),
                order_type="MARKET",
                status=OrderStatus.STAGED,
                pm=pm,
                received_at=now,
                leaves_qty=Decimal(qty),
            ).pk
        )
    block = block_create(order_ids=ids, actor=desk.trader, as_of=now)
    return block_route(
        block_id=block.pk,
        broker_id=broker.pk,
        order_type=order_type,
        limit_price=Decimal(limit_price) if limit_price else None,
        time_in_force=time_in_force,
        strategy=strategy,
        strategy_params=strategy_params,
        actor=desk.trader,
        as_of=now,
    )


class World:
    """A broker row, its simulator (started now or later) and the gateway subprocess."""

    def __init__(self, tmp_path, gateway_env):
        self.tmp, self.env = tmp_path, gateway_env
        self.sims: list[Sim] = []
        self.gateway: GatewayProcess | None = None
        self.broker = None
        self.personalities: tuple[str, ...] = ()

    def make(self, *, fix_version="FIX.4.4", extra_config=None, personalities=(), sim=True):
        from fixgateway.models import Broker

        self.broker = Broker.objects.create(
            code="SIMP",
            name="Personality simulator",
            host="127.0.0.1",
            port=_free_port(),
            fix_version=fix_version,
            sender_comp_id="OMS",
            target_comp_id="SIMP",
            heartbeat_seconds=5,
            extra_config=extra_config or {},
        )
        self.personalities = tuple(personalities)
        if sim:
            self.sim_start()
        self.gateway = GatewayProcess(self.tmp, self.env)
        self.gateway.start()
        if sim:
            self.wait_logon()
        else:
            wait_until(self.owned, timeout=30, what="the gateway owns the session")
        return self.broker

    def sim_start(self, personalities=None, store="sim-store") -> Sim:
        spec = {
            "port": self.broker.port,
            "sender": "SIMP",
            "target": "OMS",
            "fix_version": self.broker.fix_version,
        }
        specs = [spec]
        # Market data over a session of its own (fixgateway.mdsession): the simulator accepts
        # that session too, on the same port.
        md = (self.broker.extra_config or {}).get("market_data")
        if isinstance(md, dict) and md.get("session", {}).get("SenderCompID"):
            specs.append({**spec, "target": md["session"]["SenderCompID"]})
        chosen = self.personalities if personalities is None else tuple(personalities)
        sim = Sim(self.tmp, specs, chosen, store=store)
        self.sims.append(sim)
        return sim

    @property
    def sim(self) -> Sim:
        return self.sims[-1]

    def owned(self) -> bool:
        from fixgateway.models import SessionState

        return SessionState.objects.filter(broker=self.broker).exclude(owner="").exists()

    def wait_logon(self, timeout=30) -> None:
        from fixgateway.models import SessionState

        wait_until(
            lambda: SessionState.objects.filter(broker=self.broker, logged_on=True).exists(),
            timeout=timeout,
            what="gateway logon",
        )

    def close(self) -> None:
        if self.gateway is not None:
            self.gateway.stop_all()
        for sim in self.sims:
            if sim.acceptor is not None:
                sim.stop()


@pytest.fixture
def world(transactional_db, tmp_path, gateway_env):
    w = World(tmp_path, gateway_env)
    yield w
    w.close()
