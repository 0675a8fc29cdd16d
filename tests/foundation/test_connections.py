"""Bounded connections: a Daphne with a pool of 4 takes a burst of 200 parallel API reads
with at most 4 Postgres connections open, and every request answers 200 or 503 (with
Retry-After), never 500."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from django.db import connection

from tests.conftest import _test_database_url, daphne_serving

pytestmark = pytest.mark.django_db(transaction=True)

POOL = 4
BURST = 200


def _connections_named(name: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", [name])
        return cursor.fetchone()[0]


def test_a_burst_stays_under_the_pool_ceiling_and_never_answers_500(refdata):
    from rest_framework.authtoken.models import Token

    token = Token.objects.create(user=refdata.pm1).key
    name = f"oms-pool-{uuid.uuid4().hex[:8]}"
    with daphne_serving(
        _test_database_url(),
        OMS_DB_POOL_SIZE=str(POOL),
        OMS_DB_POOL_TIMEOUT="1",
        OMS_DB_APPLICATION_NAME=name,
    ) as url:
        most, done = 0, threading.Event()

        def watch() -> None:
            nonlocal most
            try:
                while not done.is_set():
                    most = max(most, _connections_named(name))
                    done.wait(0.02)
            finally:
                connection.close()  # this thread's own, or the test database cannot be dropped

        watcher = threading.Thread(target=watch)
        watcher.start()

        def get(_: int) -> requests.Response:
            return requests.get(
                f"{url}/api/orders/", headers={"Authorization": f"Token {token}"}, timeout=60
            )

        try:
            with ThreadPoolExecutor(max_workers=BURST) as pool:
                responses = list(pool.map(get, range(BURST)))
        finally:
            done.set()
            watcher.join()
        health = requests.get(f"{url}/healthz", timeout=10).json()

    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {200, 503}, sorted(set(statuses))
    assert statuses.count(200) > 0
    for r in responses:
        if r.status_code == 503:
            assert r.headers["Retry-After"]
            assert r.json()["error"]["code"] == "busy"
    assert 0 < most <= POOL
    assert health["database_pool"]["max"] == POOL
