"""`make bench`: run every bench/*_bench.py (or the ones named) and collect their figures.

Each module has main(argv) -> dict of figures; this runner prints them and writes them,
with the time and machine, to bench/results/latest.json (and a timestamped copy).
"""

from __future__ import annotations

import importlib
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def _modules(names: list[str]) -> list[str]:
    found = sorted(p.stem for p in HERE.glob("*_bench.py"))
    if names:
        unknown = [n for n in names if n not in found and f"{n}_bench" not in found]
        if unknown:
            raise SystemExit(f"unknown benchmarks {unknown}; have {found}")
        return [n if n in found else f"{n}_bench" for n in names]
    return found


def main(argv: list[str]) -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "oms.settings.test")
    import django

    django.setup()
    RESULTS.mkdir(exist_ok=True)
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
    for name in _modules(argv):
        module = importlib.import_module(f"bench.{name}")
        started = time.monotonic()
        print(f"== {name}", flush=True)
        try:
            figures = module.main([])
        except Exception as exc:  # one broken benchmark must not hide the others' figures
            figures = {"error": f"{type(exc).__name__}: {exc}"}
            failed = True
        figures["wall_seconds"] = round(time.monotonic() - started, 2)
        run["benchmarks"][name] = figures
        print(json.dumps(figures, indent=2, default=str), flush=True)
    text = json.dumps(run, indent=2, default=str)
    (RESULTS / "latest.json").write_text(text)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    (RESULTS / f"run-{stamp}.json").write_text(text)
    print(f"figures written to {RESULTS / 'latest.json'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
