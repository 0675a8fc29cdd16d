"""Settings shared by every environment; values come from the environment and fail loudly."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent.parent


def env_str(name: str, default: str | None = None) -> str:
    value = os.environ.get(name, default)
    if value is None or value == "":
        raise ImproperlyConfigured(f"Environment variable {name} is required")
    return value


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in {"1", "true", "yes", "on"}:
        return True
    if raw.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false), not {raw!r}")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be an integer, not {raw!r}") from exc


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


SECRET_KEY = env_str("DJANGO_SECRET_KEY", "dev-insecure-key-change-me-in-production-0123456789")
DEBUG = env_bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost")
CSRF_TRUSTED_ORIGINS = env_list(
    "DJANGO_CSRF_TRUSTED_ORIGINS", "http://127.0.0.1:8000,http://localhost:8000"
)
CSRF_FAILURE_VIEW = "audit.access.csrf_failure"

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "axes",
    "audit",
    "oms",
    "orders",
    "compliance",
    "positions",
    "allocation",
    "fixgateway",
    "marketdata",
    "reports",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "oms.middleware.RejectNulBytesMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "audit.middleware.RequestContextMiddleware",
    # Every refused request (401, 403, a view's 404 to a signed-in user, CSRF) is audited.
    "audit.access.AccessDeniedAuditMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as its docs require: turns a locked-out login into a 429 page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "oms.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "oms.context_processors.navigation",
            ],
        },
    },
]
WSGI_APPLICATION = None
ASGI_APPLICATION = "oms.asgi.application"

DATABASE_URL = env_str("DATABASE_URL", "postgresql://root@127.0.0.1:5432/oms")
# A pool per process with a ceiling (psycopg_pool through Django): under Daphne every request
# runs on a thread of its own, and persistent connections stayed open on idle threads until
# the server ran out. A request that finds the pool busy waits OMS_DB_POOL_TIMEOUT seconds,
# then gets 503 with Retry-After (oms.views.server_error). OMS_DB_POOL_SIZE=0: no pool, one
# connection per request, closed after it.
DB_POOL_SIZE = env_int("OMS_DB_POOL_SIZE", 10)
DB_POOL_TIMEOUT = float(env_str("OMS_DB_POOL_TIMEOUT", "5"))
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=0)}
DATABASES["default"].setdefault("OPTIONS", {})["application_name"] = env_str(
    "OMS_DB_APPLICATION_NAME", "oms"
)
if DB_POOL_SIZE > 0:
    DATABASES["default"]["OPTIONS"]["pool"] = {
        "min_size": 1,
        "max_size": DB_POOL_SIZE,
        "timeout": DB_POOL_TIMEOUT,
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env_str("REDIS_URL", "redis://127.0.0.1:6379/0")
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {
            # The layer's receive is a blocking pop of up to 5 s: the client's read timeout
            # must outlast it, or every idle websocket is dropped (the redis-py 8 default of
            # 5 s did). Health checks find a connection the network dropped before using it.
            "hosts": [
                {
                    "address": REDIS_URL,
                    "socket_timeout": 30,
                    "socket_connect_timeout": 5,
                    "socket_keepalive": True,
                    "health_check_interval": 15,
                }
            ],
            "prefix": env_str("OMS_CHANNEL_PREFIX", "oms"),
        },
    }
}
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": env_str("OMS_CACHE_PREFIX", "oms"),
    }
}

CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TIMEZONE = "UTC"
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {"fixgateway.tasks.*": {"queue": "fix"}}
CELERY_BEAT_SCHEDULE: dict = {}
# Compliance (issue 4): every active rule against the portfolios after the close (21:45 UTC,
# after the 16:00 New York close in summer and winter time), reporting breaches from price moves.
from celery.schedules import crontab  # noqa: E402

CELERY_BEAT_SCHEDULE["compliance-post-trade-after-close"] = {
    "task": "compliance.post_trade_sweep",
    "schedule": crontab(hour=21, minute=45, day_of_week="mon-fri"),
}

# FIX (issue 14): NewOrderSingles the broker has not acknowledged within its ack_timeout_seconds
# become exceptions, and are resolved once answered. The default queue: the fix worker's
# solo pool belongs to the sessions.
CELERY_BEAT_SCHEDULE["fix-unacknowledged-orders"] = {
    "task": "fixgateway.tasks.unacknowledged_orders_check",
    "schedule": 2.0,
    "options": {"queue": "default"},
}

# The audit chain's anchors (audit/anchors.py): signed with a key the database does not hold,
# kept outside Postgres, every OMS_AUDIT_ANCHOR_SECONDS.
OMS_AUDIT_KEY = env_str("OMS_AUDIT_KEY", "dev-audit-anchor-key-change-me")
OMS_AUDIT_ANCHOR_DIR = env_str(
    "OMS_AUDIT_ANCHOR_DIR",
    str(Path(env_str("OMS_RUN_DIR", str(BASE_DIR / ".run"))) / "audit-anchors"),
)
CELERY_BEAT_SCHEDULE["audit-anchor"] = {
    "task": "audit.anchor",
    "schedule": float(env_int("OMS_AUDIT_ANCHOR_SECONDS", 60)),
    "options": {"queue": "default"},
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Brute-force protection: 5 failures for one username from one address lock it for 15 minutes
# (counters in the Redis cache, so every web process sees them).
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_HANDLER = "axes.handlers.cache.AxesCacheHandler"
AXES_FAILURE_LIMIT = env_int("OMS_LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("OMS_LOGIN_LOCKOUT_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static", ("vendor", BASE_DIR / "node_modules")]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
MEDIA_ROOT = Path(env_str("OMS_MEDIA_ROOT", str(BASE_DIR / ".run" / "media")))

REST_FRAMEWORK = {
    # Token first: its WWW-Authenticate header makes missing credentials a 401 (a session
    # without the right is still a 403).
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PARSER_CLASSES": [
        "oms.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "oms.api.StandardPagination",
    "PAGE_SIZE": 100,
    "DEFAULT_FILTER_BACKENDS": ["oms.query.StrictFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "oms.schema.OmsAutoSchema",
    "EXCEPTION_HANDLER": "oms.api.exception_handler",
    "COERCE_DECIMAL_TO_STRING": True,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "OMS API",
    "DESCRIPTION": "Institutional order management: orders, compliance, routing, positions.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # Bodies are documented as JSON (and the basket files as multipart): form encodings are
    # still read, but cannot say null, a list or an object as JSON does.
    "PARSER_WHITELIST": ["oms.parsers.JSONParser", "oms.parsers.UploadParser"],
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "oms.schema.postprocess",
    ],
    # Several models have a "status": each choice set gets its own stable name.
    "ENUM_NAME_OVERRIDES": {
        "OrderStatusEnum": "orders.lifecycle.OrderStatus",
        "BlockStatusEnum": "orders.models.Block.Status",
        "BlockDayStatusEnum": "allocation.models.BlockDay.Status",
    },
}

# One project-wide precision for money, prices and quantities (see oms.fields).
OMS_DECIMAL_PLACES = 8
OMS_DEMO_PASSWORD = os.environ.get("OMS_DEMO_PASSWORD", "demo-pass-123")
OMS_RUN_DIR = Path(env_str("OMS_RUN_DIR", str(BASE_DIR / ".run")))
OMS_FIX_STORE_DIR = Path(env_str("OMS_FIX_STORE_DIR", str(OMS_RUN_DIR / "fix" / "store")))
OMS_FIX_LOG_DIR = Path(env_str("OMS_FIX_LOG_DIR", str(OMS_RUN_DIR / "fix" / "log")))
# The live feed keeps each group's last OMS_FEED_HISTORY messages in Redis for
# OMS_FEED_HISTORY_SECONDS after the last one: a page that reconnects within that gets what it
# missed instead of a snapshot (orders.feed_history). 0 keeps none (every reconnect resyncs).
OMS_FEED_HISTORY = env_int("OMS_FEED_HISTORY", 1000)
OMS_FEED_HISTORY_SECONDS = env_int("OMS_FEED_HISTORY_SECONDS", 3600)
# At most one order-feed message per group per this many milliseconds (orders.broadcast): a
# change after a quiet window goes at once, those committed during a window together at its
# end; tens of websocket frames a second per page instead of one per commit. 0: one per commit.
OMS_FEED_COALESCE_MS = env_int("OMS_FEED_COALESCE_MS", 25)
# Inbound reports wait in a bounded queue (a full queue holds QuickFIX's callback: backpressure)
# and are committed up to OMS_FIX_APPLY_BATCH at a time, with the inbound sequence mark.
OMS_FIX_INBOUND_QUEUE = env_int("OMS_FIX_INBOUND_QUEUE", 5000)
OMS_FIX_APPLY_BATCH = env_int("OMS_FIX_APPLY_BATCH", 500)
# The gateway process's GIL switch interval (sys.setswitchinterval), in microseconds: QuickFIX's
# reader thread waits up to this long for the GIL before every message it delivers.
OMS_FIX_SWITCH_INTERVAL_US = env_int("OMS_FIX_SWITCH_INTERVAL_US", 500)
# The process owning a FIX session writes its heartbeat row every OMS_FIX_OWNER_HEARTBEAT_SECONDS;
# readers take the owner for dead (the session down) once the row is older than the stale time,
# so a killed gateway shows down within stale + one beat (4 s by default).
OMS_FIX_OWNER_HEARTBEAT_SECONDS = env_int("OMS_FIX_OWNER_HEARTBEAT_SECONDS", 1)
OMS_FIX_OWNER_STALE_SECONDS = env_int("OMS_FIX_OWNER_STALE_SECONDS", 3)
# Market data (marketdata app, fixgateway/marketdata.py): a quote not updated within
# OMS_MD_STALE_SECONDS is flagged stale; the gateway pushes what changed every OMS_MD_PUSH_MS,
# each security at most once per OMS_MD_THROTTLE_MS, and writes the latest quotes and the
# minute bars to the database every OMS_MD_FLUSH_MS.
OMS_MD_STALE_SECONDS = env_int("OMS_MD_STALE_SECONDS", 15)
OMS_MD_PUSH_MS = env_int("OMS_MD_PUSH_MS", 50)
OMS_MD_FLUSH_MS = env_int("OMS_MD_FLUSH_MS", 250)
OMS_MD_THROTTLE_MS = env_int("OMS_MD_THROTTLE_MS", 200)

# Allocation and settlement (issue 8): the SEC-style fee on sells, as a rate of gross (Section 31,
# $27.80 per million), and the after-close job that finalises done blocks and writes the
# custodians' files (21:30 UTC: after the 16:00 New York close in summer and winter time).
from celery.schedules import crontab  # noqa: E402

# The booking ledger (issue 13): a block of more orders than this is booked to its orders,
# positions and cash off the reports' path, by the booker every OMS_BOOKING_DUE_SECONDS (one
# pass per block however many reports came in), so a report's cost does not grow with the
# block's width; narrower blocks are booked with their reports.
OMS_BOOKING_INLINE_MAX_ORDERS = env_int("OMS_BOOKING_INLINE_MAX_ORDERS", 100)
OMS_BOOKING_DUE_SECONDS = float(env_str("OMS_BOOKING_DUE_SECONDS", "1.0"))
CELERY_BEAT_SCHEDULE["allocation-bookings-due"] = {
    "task": "allocation.tasks.bookings_due_book",
    "schedule": OMS_BOOKING_DUE_SECONDS,
    "options": {"queue": "default", "expires": OMS_BOOKING_DUE_SECONDS * 5},
}

CELERY_BEAT_SCHEDULE["allocation-settlement-after-close"] = {
    "task": "allocation.tasks.settlement_after_close",
    "schedule": crontab(hour=21, minute=30, day_of_week="mon-fri"),
}

# End-of-day reports (reports app) after the close and the after-close booking (22:00 UTC).
CELERY_BEAT_SCHEDULE["reports-end-of-day"] = {
    "task": "reports.tasks.end_of_day_reports",
    "schedule": crontab(hour=22, minute=0, day_of_week="mon-fri"),
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("OMS_LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
