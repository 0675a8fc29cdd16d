"""Use-case transactions that a deadlock or a serialization failure does not reach a user with.

Lock order (docs/contracts.md): rows first, each kind in pk order (blocks, FIX orders, the
blocks' orders and booking rows, positions, cash), the audit chain last. The chain comes last by
construction: in_transaction holds the use case's audit events and links them at its end
(audit.services.audit_chain_last). What the order cannot rule out (two batches locking blocks
in arrival order, say) Postgres breaks as a deadlock; the outermost transaction then runs again,
a few times, before the error goes up (answered with 503 and Retry-After: oms.error_views).
"""

from __future__ import annotations

import functools
import logging
import random
import time
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from django.db import DatabaseError, connection, transaction

from audit.services import audit_chain_last

log = logging.getLogger("oms.db")

# 40P01 deadlock_detected, 40001 serialization_failure: the transaction was rolled back and may
# succeed as it is when run again.
CONFLICT_SQLSTATES = frozenset({"40P01", "40001"})
ATTEMPTS = 3

P = ParamSpec("P")
T = TypeVar("T")


def exception_causes(exc: BaseException | None, *, with_context: bool = False):
    """`exc` and what raised it (its __cause__, or with_context also the exception it was
    raised while handling), a few levels deep: Django wraps psycopg's errors in its own."""
    depth = 0
    while exc is not None and depth < 5:
        yield exc
        exc = exc.__cause__ or (exc.__context__ if with_context else None)
        depth += 1


def is_conflict(exc: BaseException) -> bool:
    """A deadlock or serialization failure, as psycopg raises it or as Django wraps it."""
    return any(
        getattr(cause, "sqlstate", None) in CONFLICT_SQLSTATES for cause in exception_causes(exc)
    )


def in_transaction(work: Callable[[], T], *, attempts: int = ATTEMPTS, durable: bool = False) -> T:
    """Run `work` in one transaction whose audit events are linked to the chain at its end.
    When this is the outermost transaction, a conflict runs it again (up to `attempts` in
    all); nested in a caller's transaction it runs once, and the caller's outermost
    transaction is the one to retry (a savepoint cannot undo a deadlock's rollback).
    Commit callbacks of an attempt that rolled back are discarded by Django, never run."""
    outermost = not connection.in_atomic_block
    attempt = 1
    while True:
        try:
            with transaction.atomic(durable=durable), audit_chain_last():
                return work()
        except DatabaseError as exc:
            if not (outermost and attempt < attempts and is_conflict(exc)):
                raise
            log.warning("transaction conflict (attempt %d of %d): %s", attempt, attempts, exc)
        # Jittered, growing pause: the two sides of a deadlock should not meet again at once.
        time.sleep(random.uniform(0.005, 0.03) * attempt)
        attempt += 1


def within_transaction(fn: Callable[P, T]) -> Callable[P, T]:
    """For a helper that writes one step of a use case: it refuses to run outside a
    transaction, where each of its writes would commit alone (half a booking left by a crash)
    and the use case's lock order (rows first, the audit chain last) would not hold."""

    @functools.wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> T:
        if not connection.in_atomic_block:
            raise transaction.TransactionManagementError(
                f"{fn.__qualname__} runs inside its use case's transaction "
                "(oms.db.in_transaction or retry_on_conflict)."
            )
        return fn(*args, **kwargs)

    return run


def retry_on_conflict(
    func: Callable[P, T] | None = None, *, attempts: int = ATTEMPTS, durable: bool = False
):
    """Decorator form of in_transaction, for a use case's service function (in place of
    @transaction.atomic)."""

    def decorate(fn: Callable[P, T]) -> Callable[P, T]:
        @functools.wraps(fn)
        def run(*args: P.args, **kwargs: P.kwargs) -> T:
            return in_transaction(
                functools.partial(fn, *args, **kwargs), attempts=attempts, durable=durable
            )

        return run

    return decorate(func) if func is not None else decorate
