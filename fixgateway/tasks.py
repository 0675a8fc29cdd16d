"""Tasks on the `fix` queue (CELERY_TASK_ROUTES): thin wrappers over the services."""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from . import sessions


@shared_task
def unacknowledged_orders_check() -> dict:
    """Beat, every few seconds: open or resolve the unacknowledged-order exceptions."""
    return sessions.unacknowledged_orders_check(as_of=timezone.now())
