"""`make bench`: run every bench/*_bench.py (or the ones named), each in a scratch database of
its own, and collect their figures.

`python -m oms.launch bench [NAME ...]` finds Postgres and Redis and starts this with their
DATABASE_URL and REDIS_URL. A NAME is a benchmark (`fix` or `fix_bench`) or a dotted module path
(`tests.foundation.benchfakes.first_bench`); any module with main(argv) -> dict of figures will do.

Each benchmark runs in a process of its own (`python -m bench.run_one`), so nothing one leaves
behind (a database name in the settings, open connections, module state, a server it started)
reaches the next. For each, in order:

1. a database `oms_bench_<name>_<pid>` is created, empty, on the server DATABASE_URL names
   (that database itself is never touched, and need not exist);
2. the child process gets DATABASE_URL pointing at it, DJANGO_SETTINGS_MODULE=bench.settings
   and Redis prefixes of its own (channel layer and cache: `oms_bench_<name>_<pid>:`); it
   migrates the database and calls main([]); the benchmark builds whatever data it needs, and
   the servers it starts (Daphne, the FIX gateway) inherit the same environment, so they serve
   the same scratch database and prefixes;
3. afterwards, whether it succeeded, failed or was interrupted: whatever the child left running
   (it leads a process group of its own) is stopped, the database is dropped (WITH (FORCE),
   Postgres 13 or later) and the Redis keys under its prefix are deleted.

The figures print and are written, with the time and machine, to bench/results/latest.json (and
a timestamped copy; `--results DIR` writes them elsewhere). A failing benchmark's entry holds its
error, the others still run and show their figures, and the exit status is then 1.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"


def _modules(names: list[str]) -> list[tuple[str, str]]:
    """(results key, module path) for each benchmark to run, in order, once each."""
    found = sorted(p.stem for p in HERE.glob("*_bench.py"))
    if not names:
        return [(stem, f"bench.{stem}") for stem in found]
    chosen: dict[str, str] = {}
    unknown = []
    for name in names:
        if "." in name:
            chosen[name] = name
        elif name in found or f"{name}_bench" in found:
            stem = name if name in found else f"{name}_bench"
            chosen[stem] = f"bench.{stem}"
        else:
            unknown.append(name)
    if unknown:
        raise SystemExit(f"unknown benchmarks {unknown}; have {found} (or give a module path)")
    return list(chosen.items())


def _scratch_name(module_path: str) -> str:
    """oms_bench_<name>_<pid>, within Postgres's 63 characters and safe unquoted."""
    name = module_path.removeprefix("bench.").removesuffix("_bench")
    name = re.sub(r"[^a-z0-9_]", "_", name.lower())[:40]
    return f"oms_bench_{name}_{os.getpid()}"


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def _admin(url: str):
    """An autocommit connection to the server's maintenance database ("postgres"), or failing
    that to the database the URL names, for CREATE and DROP DATABASE."""
    import psycopg

    try:
        return psycopg.connect(_with_database(url, "postgres"), autocommit=True)
    except psycopg.OperationalError:
        return psycopg.connect(url, autocommit=True)


def _database_drop(url: str, name: str) -> None:
    from psycopg import sql

    with _admin(url) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def _database_create(url: str, name: str) -> None:
    from psycopg import sql

    _database_drop(url, name)  # a leftover of a killed run that had the same pid
    with _admin(url) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def _redis_forget(url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        for start in range(0, len(keys), 1000):
            client.delete(*keys[start : start + 1000])
    finally:
        client.close()


def _signal_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        pass  # nothing of the benchmark's is left running


def _child(module_path: str, figures_path: Path, env: dict[str, str]) -> int:
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.run_one", module_path, str(figures_path)],
        cwd=ROOT,
        env=env,
        start_new_session=True,  # so that whatever it starts can be stopped with it
    )
    try:
        return proc.wait()
    except KeyboardInterrupt:
        # The child has a session of its own: Ctrl-C reaches it only through here.
        _signal_group(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            _signal_group(proc.pid, signal.SIGKILL)
            proc.wait()
        raise
    finally:
        _signal_group(proc.pid, signal.SIGTERM)  # a server the benchmark failed to stop


def _run_one(module_path: str, database_url: str, redis_url: str) -> dict:
    scratch = _scratch_name(module_path)
    prefix = f"{scratch}:"
    env = dict(os.environ)
    env.update(
        DATABASE_URL=_with_database(database_url, scratch),
        REDIS_URL=redis_url,
        DJANGO_SETTINGS_MODULE="bench.settings",
        OMS_CHANNEL_PREFIX=prefix,
        OMS_CACHE_PREFIX=prefix,
    )
    with tempfile.TemporaryDirectory(prefix="oms-bench-") as tmp:
        figures_path = Path(tmp) / "figures.json"
        try:
            _database_create(database_url, scratch)
            code = _child(module_path, figures_path, env)
            figures = json.loads(figures_path.read_text()) if figures_path.exists() else {}
            if code != 0 and "error" not in figures:
                figures["error"] = f"the benchmark's process exited with status {code}"
        finally:
            _database_drop(database_url, scratch)
            _redis_forget(redis_url, prefix)
    figures["scratch_database"] = scratch
    return figures


def _interrupted(signum, frame):
    raise KeyboardInterrupt  # SIGTERM too cleans up the running benchmark's database


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("benchmarks", nargs="*", help="fix, fix_bench, or a dotted module path")
    parser.add_argument("--results", type=Path, default=RESULTS, help="where latest.json goes")
    args = parser.parse_args(argv)
    modules = _modules(args.benchmarks)
    if not args.benchmarks:
        # In a bare `make bench` the scale benchmark's history is a tenth of a year: the full
        # million (`make bench ARGS=scale`) takes about half an hour to generate on its own.
        os.environ.setdefault("OMS_SCALE_ORDERS", "100000")
    database_url, redis_url = os.environ.get("DATABASE_URL"), os.environ.get("REDIS_URL")
    if not database_url or not redis_url:
        raise SystemExit("DATABASE_URL and REDIS_URL are needed: run `make bench`")
    signal.signal(signal.SIGTERM, _interrupted)

    args.results.mkdir(parents=True, exist_ok=True)
    run = {
        "started_at": datetime.now(UTC).isoformat(),
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
        },
        "benchmarks": {},
    }
    failed = False
    for key, module_path in modules:
        print(f"== {key}", flush=True)
        started = time.monotonic()
        try:
            figures = _run_one(module_path, database_url, redis_url)
        except KeyboardInterrupt:
            print(f"interrupted during {key}; its scratch database is dropped", flush=True)
            return 130
        except Exception as exc:  # the scratch database could not be made or dropped
            figures = {"error": f"{type(exc).__name__}: {exc}"}
        failed = failed or "error" in figures
        figures["total_seconds"] = round(time.monotonic() - started, 2)
        run["benchmarks"][key] = figures
        print(json.dumps(figures, indent=2, default=str), flush=True)
    text = json.dumps(run, indent=2, default=str)
    (args.results / "latest.json").write_text(text)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    (args.results / f"run-{stamp}.json").write_text(text)
    print(f"figures written to {args.results / 'latest.json'}")
    if failed:
        failures = [k for k, f in run["benchmarks"].items() if "error" in f]
        print(f"failed: {', '.join(failures)}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
