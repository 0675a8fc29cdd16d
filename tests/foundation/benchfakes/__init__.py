"""Tiny benchmark modules for tests/foundation/test_bench_harness.py: each reports what database
and Redis prefixes the runner gave it, and leaves a mark there a second user would find."""

from __future__ import annotations


def report() -> dict:
    import redis
    from django.conf import settings
    from django.core.cache import cache
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
    tables = connection.introspection.table_names()
    marked = "fake_bench_mark" in tables
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE fake_bench_mark (id int)")
    cache.set("fake-bench-mark", 1, 600)
    prefix = settings.CACHES["default"]["KEY_PREFIX"]
    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        redis_keys = len(list(client.scan_iter(match=f"{prefix}*")))
    finally:
        client.close()
    return {
        "database": connection.settings_dict["NAME"],
        "pending_migrations": len(pending),
        "orders_table": "orders_order" in tables,
        "mark_found": marked,
        "channel_prefix": settings.CHANNEL_LAYERS["default"]["CONFIG"]["prefix"],
        "cache_prefix": prefix,
        "redis_keys": redis_keys,
    }
