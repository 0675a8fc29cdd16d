"""Redis and Daphne restarted during a stream of fills: every open blotter converges to the
database. A private redis-server (never the machine's shared one) and Daphne on free ports;
the writers are the FIX gateway subprocess applying the simulator's fills."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from tests.conftest import _free_port
from tests.fix.conftest import GatewayProcess, routed_block, wait_until
from tests.reliability.conftest import scale
from tests.reliability.feed import BlotterClient, DaphneServer, RedisServer

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def private_redis(tmp_path):
    server = RedisServer(_free_port(), tmp_path)
    server.start()
    yield server
    server.kill()


def _truth(order_ids) -> dict[int, tuple]:
    from orders.blotter_selectors import order_rows_for_publish

    rows = order_rows_for_publish(order_ids=list(order_ids))
    return {r["id"]: (r["version"], r["status"], Decimal(str(r["cum_qty"]))) for r, _ in rows}


def test_blotters_converge_after_redis_and_daphne_restarts_mid_stream(
    desk, broker, sim, gateway_env, private_redis, tmp_path, make_user, figure
):
    from django.test import Client

    from fixgateway.models import SessionState
    from orders.models import Block, Order

    env = {**gateway_env, "REDIS_URL": private_redis.url}
    gateway = GatewayProcess(tmp_path, env)
    gateway.start()
    port = _free_port()
    daphne = DaphneServer(
        port,
        {
            **env,
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
            "DJANGO_CSRF_TRUSTED_ORIGINS": f"http://127.0.0.1:{port}",
        },
        tmp_path / "daphne.log",
    )
    daphne.start()
    clients = []
    try:
        wait_until(
            lambda: SessionState.objects.filter(logged_on=True).exists(),
            timeout=30,
            what="gateway logon",
        )
        web = Client()
        web.force_login(desk.trader)
        cookie = f"sessionid={web.cookies['sessionid'].value}"
        clients = [BlotterClient(daphne.url, cookie) for _ in range(scale(3, 10))]
        for c in clients:
            c.start()
        wait_until(lambda: all(c.snapshots for c in clients), what="first snapshots")

        per_block = scale(20, 300)
        sim("config", fill_mode="slices", slices=per_block, interval=0.03)
        took, orders_seen = {}, 0

        def restart_redis():
            private_redis.kill()
            time.sleep(1)
            private_redis.start()

        def restart_daphne():
            daphne.kill()
            time.sleep(0.5)
            daphne.start()

        # One fault per stream, so each must be healed on its own.
        for name, fault in (("redis", restart_redis), ("daphne", restart_daphne)):
            blocks = [
                routed_block(desk, broker, str(per_block * 2), str(per_block), security=sec)
                for sec in (desk.aapl, desk.msft)
            ]
            ids = [b.pk for b in blocks]
            order_ids = list(Order.objects.filter(block__in=ids).values_list("pk", flat=True))
            total = sum(b.quantity for b in blocks)

            def filled(ids=ids) -> Decimal:
                return sum(Block.objects.filter(pk__in=ids).values_list("cum_qty", flat=True))

            wait_until(lambda t=total: filled() >= t / 3, timeout=120, what="a third filled")
            fault()
            wait_until(lambda t=total: filled() >= t, timeout=180, what="every fill applied")
            truth = _truth(order_ids)
            orders_seen += len(truth)
            started = time.monotonic()

            def converged(truth=truth) -> bool:
                return all(
                    {k: v for k, v in c.view().items() if k in truth} == truth for c in clients
                )

            wait_until(converged, timeout=30, interval=0.2, what=f"blotters after {name}")
            took[name] = time.monotonic() - started
        figure(
            faults=2,
            checked=f"{len(clients)} blotters converged to {orders_seen} orders after a Redis "
            f"restart ({took['redis']:.1f} s after the last fill) and a Daphne restart "
            f"({took['daphne']:.1f} s); reconnects {sum(c.reconnects for c in clients)}, "
            f"resumed {sum(c.resumes for c in clients)}, "
            f"snapshots {sum(c.snapshots for c in clients)}",
        )
    finally:
        for c in clients:
            c.stop.set()
        daphne.kill()
        gateway.stop_all()
