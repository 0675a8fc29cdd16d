"""Settings of a benchmark's process and of the servers it starts (Daphne, the FIX gateway).

The test settings, except that the Redis prefixes come from the environment: the runner gives
each benchmark its own (the test settings pin both to "oms-test"), so that no benchmark sees
another's channel groups or cache keys. The Django test client's host is allowed, as under
pytest.
"""

from oms.settings import base as _base
from oms.settings.base import env_str
from oms.settings.test import *  # noqa: F403

CHANNEL_LAYERS["default"]["CONFIG"]["prefix"] = env_str("OMS_CHANNEL_PREFIX", "oms-bench")  # noqa: F405
CACHES["default"]["KEY_PREFIX"] = env_str("OMS_CACHE_PREFIX", "oms-bench")  # noqa: F405
ALLOWED_HOSTS = [*ALLOWED_HOSTS, "testserver"]  # noqa: F405
# The feed's gathering window as in production (the test settings send every commit at once).
OMS_FEED_COALESCE_MS = _base.OMS_FEED_COALESCE_MS  # OMS_FEED_COALESCE_MS in the environment, or 25
