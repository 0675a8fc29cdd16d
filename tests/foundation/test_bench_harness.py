"""`make bench`'s runner (bench/__main__.py): benchmarks run back to back each get a fresh,
migrated scratch database and Redis prefixes of their own, dropped afterwards even when one
fails; a failure shows next to the others' figures and makes the exit status 1."""

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
import redis

ROOT = Path(__file__).resolve().parents[2]
FAKES = "tests.foundation.benchfakes"
FIRST, FAILING, SECOND = (f"{FAKES}.{name}_bench" for name in ("first", "failing", "second"))
pytestmark = pytest.mark.slow


def _urls() -> tuple[str, str]:
    from django.conf import settings

    # The server pytest's own database lives on, not its test database: the runner makes its own.
    return os.environ.get("DATABASE_URL", settings.DATABASE_URL), os.environ.get(
        "REDIS_URL", settings.REDIS_URL
    )


def _databases(database_url: str) -> set[str]:
    from bench.__main__ import _admin

    with _admin(database_url) as conn:
        return {row[0] for row in conn.execute("SELECT datname FROM pg_database")}


def test_it_runs_each_benchmark_in_a_fresh_database_and_drops_it(tmp_path):
    database_url, redis_url = _urls()
    env = dict(os.environ, DATABASE_URL=database_url, REDIS_URL=redis_url)
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--results", str(tmp_path), FIRST, FAILING, SECOND],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = proc.stdout + proc.stderr

    assert proc.returncode == 1, output
    figures = json.loads((tmp_path / "latest.json").read_text())["benchmarks"]
    assert list(figures) == [FIRST, FAILING, SECOND]
    first, failing, second = figures[FIRST], figures[FAILING], figures[SECOND]
    assert failing["error"] == "RuntimeError: fake benchmark failure"
    assert "fake benchmark failure" in proc.stderr  # its traceback
    for ran in first, second:
        assert "error" not in ran, output
        assert ran["database"] == ran["scratch_database"]
        assert ran["database"].startswith("oms_bench_")
        assert ran["pending_migrations"] == 0
        assert ran["orders_table"] is True
        assert ran["mark_found"] is False  # nobody's database but its own
        assert ran["channel_prefix"] == ran["cache_prefix"] == f"{ran['database']}:"
        assert ran["redis_keys"] >= 1  # its cache entry, there while it ran
    scratch = {first["database"], failing["scratch_database"], second["database"]}
    assert len(scratch) == 3
    assert psycopg.conninfo.conninfo_to_dict(database_url)["dbname"] not in scratch

    assert not scratch & _databases(database_url)
    client = redis.Redis.from_url(redis_url)
    try:
        for ran in first, second:
            assert not list(client.scan_iter(match=f"{ran['cache_prefix']}*"))
    finally:
        client.close()
