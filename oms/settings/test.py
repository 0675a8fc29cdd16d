import os

from .base import *  # noqa: F403

DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CHANNEL_LAYERS["default"]["CONFIG"]["prefix"] = "oms-test"  # noqa: F405
CACHES["default"]["KEY_PREFIX"] = "oms-test"  # noqa: F405
OMS_RUN_DIR = BASE_DIR / ".run" / "test"  # noqa: F405

# Concurrency tests run tens of threads with a connection each in one process: a ceiling above
# theirs (the web process's own stays OMS_DB_POOL_SIZE, 10 by default).
if not os.environ.get("OMS_DB_POOL_SIZE") and "pool" in DATABASES["default"]["OPTIONS"]:  # noqa: F405
    DATABASES["default"]["OPTIONS"]["pool"]["max_size"] = 40  # noqa: F405

# Tests that count the feed's messages expect one per commit; tests/blotter/test_feed_fanout.py
# sets the window to see changes gathered.
OMS_FEED_COALESCE_MS = 0
