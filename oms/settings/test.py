import os
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

# `OMS_TEST_WORKERS=2 make test` runs the suite in two pytest-xdist workers (oms.launch). Each
# gets its own test database
# (pytest-django's _gw<N> suffix), Redis database and run directory (FIX stores, anchors), so one
# worker's feeds, Celery queues and FIX sessions never meet the other's. They are set in the
# environment before the base settings read it, so the servers a test starts inherit them.
# Eight databases apart: a test listens on its own Redis database plus one, as another OMS.
# Once per worker: the servers a test starts load these settings again with the worker's
# environment, already moved.
_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
if _WORKER.startswith("gw") and os.environ.get("OMS_TEST_WORKER") != _WORKER:
    os.environ["OMS_TEST_WORKER"] = _WORKER
    _n = int(_WORKER[2:] or 0)
    _redis = urlsplit(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    _db = int(_redis.path.strip("/") or 0)
    os.environ["REDIS_URL"] = urlunsplit(_redis._replace(path=f"/{(_db + 8 * _n) % 16}"))
    os.environ["OMS_RUN_DIR"] = str(
        Path(__file__).resolve().parents[2] / ".run" / f"test-{_WORKER}"
    )

from .base import *  # noqa: E402, F403

DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CHANNEL_LAYERS["default"]["CONFIG"]["prefix"] = "oms-test"  # noqa: F405
CACHES["default"]["KEY_PREFIX"] = "oms-test"  # noqa: F405
OMS_RUN_DIR = BASE_DIR / ".run" / (f"test-{_WORKER}" if _WORKER else "test")  # noqa: F405

# Concurrency tests run tens of threads with a connection each in one process: a ceiling above
# theirs (the web process's own stays OMS_DB_POOL_SIZE, 10 by default).
if not os.environ.get("OMS_DB_POOL_SIZE") and "pool" in DATABASES["default"]["OPTIONS"]:  # noqa: F405
    DATABASES["default"]["OPTIONS"]["pool"]["max_size"] = 40  # noqa: F405

# Tests that count the feed's messages expect one per commit; tests/blotter/test_feed_fanout.py
# sets the window to see changes gathered.
OMS_FEED_COALESCE_MS = 0
