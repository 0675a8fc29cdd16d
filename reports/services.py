"""End-of-day reports: generate (after the close by Celery beat, or on demand) and record
downloads. A report is never edited: generating again writes a new version only when the
content changed (its SHA-256 differs from the latest version's)."""

from __future__ import annotations

import hashlib
import json
from datetime import date, datetime

from django.db import connection

from audit.services import audit_record
from oms.db import retry_on_conflict

from .builders import BUILDERS, text
from .models import Report, ReportKind


def content_hash(content: dict) -> str:
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


@retry_on_conflict
def reports_generate(
    *, report_date: date, actor=None, as_of: datetime, kinds: list[str] | None = None
) -> list[Report]:
    """Every report kind (or those named) for the date, in one transaction. Returns the
    reports written (a kind whose content did not change writes nothing)."""
    with connection.cursor() as cur:
        # One generation at a time: two would both compute the same next version.
        cur.execute("SELECT pg_advisory_xact_lock(hashtext('reports.generate'))")
    written = []
    for kind in kinds or list(ReportKind.values):
        columns, rows, account_column = BUILDERS[kind](report_date)
        content = {"columns": columns, "rows": [[text(v) for v in row] for row in rows]}
        digest = content_hash(content)
        latest = Report.objects.filter(kind=kind, report_date=report_date).order_by("-version")
        latest = latest.first()
        if latest is not None and latest.content_hash == digest:
            continue
        report = Report.objects.create(
            kind=kind,
            report_date=report_date,
            version=(latest.version + 1) if latest else 1,
            content=content,
            content_hash=digest,
            account_column=account_column,
            generated_at=as_of,
            generated_by=actor,
        )
        audit_record(
            actor=actor,
            action="report.generate",
            obj=report,
            after={
                "kind": kind,
                "date": str(report_date),
                "version": report.version,
                "sha256": digest,
                "rows": len(rows),
            },  # fmt: skip
            occurred_at=as_of,
        )
        written.append(report)
    return written


def report_download_record(*, report: Report, actor, fmt: str, as_of: datetime) -> None:
    """Who took a copy, in which form, of which exact content (its hash)."""
    audit_record(
        actor=actor,
        action="report.download",
        obj=report,
        after={"format": fmt, "sha256": report.content_hash, "version": report.version},
        occurred_at=as_of,
    )
