"""One benchmark in this process: `python -m bench.run_one MODULE FIGURES_JSON`.

The runner (`python -m bench`) starts it with DATABASE_URL naming an empty scratch database of
the benchmark's own and DJANGO_SETTINGS_MODULE=bench.settings. Here the database is migrated,
MODULE's main([]) runs against it, and its figures (or the error) are written to FIGURES_JSON.
Exit status 0 only when the benchmark returned its figures.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
import traceback
from pathlib import Path


def main(argv: list[str]) -> int:
    module_path, figures_path = argv
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connections

    started = time.monotonic()
    try:
        # As the test runner prepares a test database: every migration, and tables for any
        # app without migrations.
        call_command("migrate", interactive=False, run_syncdb=True, verbosity=0)
        migrated = time.monotonic()
        figures = importlib.import_module(module_path).main([])
        figures["migrate_seconds"] = round(migrated - started, 2)
        figures["wall_seconds"] = round(time.monotonic() - migrated, 2)
        code = 0
    except Exception as exc:  # recorded as the benchmark's figures; the runner goes on
        traceback.print_exc()
        figures = {"error": f"{type(exc).__name__}: {exc}"}
        figures["wall_seconds"] = round(time.monotonic() - started, 2)
        code = 1
    finally:
        connections.close_all()
    Path(figures_path).write_text(json.dumps(figures, default=str))
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
