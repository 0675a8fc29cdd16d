"""`make run`'s launcher end to end: services found, database migrated and seeded, every
Procfile process started, the login page served, Ctrl-C stops everything."""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psycopg
import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve_and_stop(env: dict[str, str], port: int, log_path: Path) -> str:
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "oms.launch", "run"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 300
            body = ""
            while time.monotonic() < deadline:
                assert proc.poll() is None, log_path.read_text()[-4000:]
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/login/", timeout=2) as r:
                        body = r.read().decode()
                        assert r.status == 200
                        break
                except OSError:
                    time.sleep(1)
            else:
                pytest.fail("login page not served within 300 s:\n" + log_path.read_text()[-4000:])
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in the terminal sends
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                pytest.fail("make run did not stop within 60 s of Ctrl-C")
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    return body


def _run_env(tmp_path: Path, port: int) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE", "DJANGO_ALLOW_ASYNC_UNSAFE")
    }
    env.update(
        {
            "OMS_PORT": str(port),
            "OMS_RUN_DIR": str(tmp_path / "run"),
            "OMS_DEMO_PASSWORD": "demo-pass-123",
        }
    )
    return env


def test_make_run_with_local_services_serves_the_login_page(tmp_path):
    name = "oms_makerun_check"
    with psycopg.connect(
        "postgresql://127.0.0.1:5432/postgres",
        autocommit=True,
        user=os.environ.get("PGUSER") or "root",
    ) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    port = _free_port()
    env = _run_env(tmp_path, port)
    env["DATABASE_URL"] = f"postgresql://root@127.0.0.1:5432/{name}"
    env["REDIS_URL"] = "redis://127.0.0.1:6379/9"
    body = _serve_and_stop(env, port, tmp_path / "run1.log")
    assert "Log in" in body
    log = (tmp_path / "run1.log").read_text()
    assert "demo logins (password 'demo-pass-123'): pm1, pm2, trader1" in log
    # A second run finds the data and loads nothing new.
    port = _free_port()
    env["OMS_PORT"] = str(port)
    _serve_and_stop(env, port, tmp_path / "run2.log")
    assert (
        "0 securities, 0 accounts and 0 compliance rules created"
        in (tmp_path / "run2.log").read_text()
    )


def test_make_run_with_embedded_services_serves_the_login_page(tmp_path):
    port = _free_port()
    env = _run_env(tmp_path, port)
    env.update({"OMS_EMBEDDED": "1", "OMS_EMBEDDED_REDIS_PORT": str(_free_port())})
    body = _serve_and_stop(env, port, tmp_path / "embedded.log")
    assert "Log in" in body
    assert "embedded servers: postgres, redis" in (tmp_path / "embedded.log").read_text()


def test_a_bare_honcho_start_creates_what_beat_needs(tmp_path, django_db_setup):
    """A fresh checkout has no run directory: beat makes it instead of crashing (which
    stopped every other process of `honcho start`)."""
    run_dir = tmp_path / "fresh" / ".run"
    env = {**os.environ, "OMS_RUN_DIR": str(run_dir), "DJANGO_SETTINGS_MODULE": "oms.settings.test"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "honcho", "start", "beat"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not list(run_dir.glob("celerybeat-schedule*")):
            assert proc.poll() is None, proc.stdout.read().decode()[-4000:]
            time.sleep(0.5)
        assert list(run_dir.glob("celerybeat-schedule*")), "beat wrote no schedule"
        assert proc.poll() is None
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
