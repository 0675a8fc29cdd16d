"""Celery beat's end-of-day job: thin, it names the day and calls the service."""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from .services import reports_generate


@shared_task(name="reports.tasks.end_of_day_reports")
def end_of_day_reports(report_date: str | None = None) -> int:
    from datetime import date

    now = timezone.now()
    day = date.fromisoformat(report_date) if report_date else now.date()
    return len(reports_generate(report_date=day, actor=None, as_of=now))
