"""Celery entry points: thin, keyword-only, they read the clock and call one service."""

from __future__ import annotations

from datetime import datetime

from celery import shared_task
from django.utils import timezone

from . import services


@shared_task(name="allocation.tasks.settlement_after_close")
def settlement_after_close(*, as_of: str | None = None) -> dict:
    """After the close: finalise every trading day whose trading is over (each on its own;
    failures go to the exceptions list), then write the files of every date finalised.
    `as_of` (ISO 8601) re-runs a past day; by default, now."""
    as_of = datetime.fromisoformat(as_of) if as_of else timezone.now()
    outcome = services.allocations_finalise_due(as_of=as_of)
    dates = sorted({as_of.date(), *(trade_date for _, trade_date in outcome.finalised)})
    files = [
        f
        for trade_date in dates
        for f in services.settlement_files_generate(trade_date=trade_date, as_of=as_of)
    ]
    return {
        "finalised": [[block_id, d.isoformat()] for block_id, d in outcome.finalised],
        "failed": [[block_id, d.isoformat(), why] for block_id, d, why in outcome.failed],
        "files": [{"id": f.pk, "created": created} for f, created in files],
    }


@shared_task(name="allocation.tasks.bookings_due_book")
def bookings_due_book() -> dict:
    """Every OMS_BOOKING_DUE_SECONDS (Celery beat): book what wide blocks executed since their
    last pass to their orders, positions and cash."""
    outcome = services.bookings_due_book(as_of=timezone.now())
    return {"booked": outcome.booked, "failed": [[pk, why] for pk, why in outcome.failed]}
