from .base import *  # noqa: F403

DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CHANNEL_LAYERS["default"]["CONFIG"]["prefix"] = "oms-test"  # noqa: F405
CACHES["default"]["KEY_PREFIX"] = "oms-test"  # noqa: F405
OMS_RUN_DIR = BASE_DIR / ".run" / "test"  # noqa: F405
