"""Celery entry points: thin, keyword-only, they read the clock and call one service."""

from __future__ import annotations

from datetime import datetime

from celery import shared_task
from django.utils import timezone

from . import services


@shared_task(name="allocation.tasks.settlement_after_close")
def settlement_after_close(*, as_of: str | None = None) -> dict:
    """After the close: finalise every block that is done, then write the day's files.
    `as_of` (ISO 8601) re-runs a past day; by default, now."""
    as_of = datetime.fromisoformat(as_of) if as_of else timezone.now()
    finalised = services.allocations_finalise_done(as_of=as_of)
    files = services.settlement_files_generate(trade_date=as_of.date(), as_of=as_of)
    return {
        "finalised_blocks": finalised,
        "files": [{"id": f.pk, "created": created} for f, created in files],
    }
