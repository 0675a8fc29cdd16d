"""Tasks on the `fix` queue (CELERY_TASK_ROUTES): thin wrappers over the services."""

from __future__ import annotations

from celery import shared_task
from django.db import connection
from django.utils import timezone

from . import sessions
from .outbound import NOTIFY_CHANNEL


@shared_task
def outbox_wake(*, broker_id: int) -> None:
    """Nudge the session owner to send its outbox now (it also polls twice a second)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_notify(%s, %s)", [NOTIFY_CHANNEL, str(broker_id)])


@shared_task
def unacknowledged_orders_check() -> dict:
    """Beat, every few seconds: open or resolve the unacknowledged-order exceptions."""
    return sessions.unacknowledged_orders_check(as_of=timezone.now())
