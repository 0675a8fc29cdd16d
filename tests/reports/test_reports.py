"""End-of-day reports: generated for a day, versioned by content hash, immutable, viewable,
downloadable as CSV and printable (each audited), cut to a PM's own accounts."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from datetime import date
from decimal import Decimal

import pytest
from django.db import IntegrityError, InternalError, ProgrammingError, connection, transaction
from django.test import Client

from tests.reports.conftest import T0

DAY = date(2026, 12, 1)


def _client(user) -> Client:
    c = Client()
    c.force_login(user)
    return c


@pytest.fixture
def books(refdata, scenario):
    from oms.services import exception_open
    from positions.models import Position

    Position.objects.create(account=refdata.acct1, security=refdata.aapl, quantity=Decimal(100))
    Position.objects.create(account=refdata.acct2, security=refdata.msft, quantity=Decimal(-50))
    with transaction.atomic():
        exception_open(
            kind="booking_failed",
            ref="block:1:2026-12-01",
            source="allocation",
            summary="Block 1: booking failed",
            detail={},
            as_of=T0,
        )
    return scenario


def test_every_report_is_generated_once_and_again_only_when_it_changed(refdata, books):
    from reports.models import Report, ReportKind
    from reports.services import content_hash, reports_generate

    written = reports_generate(report_date=DAY, actor=None, as_of=T0)
    assert sorted(r.kind for r in written) == sorted(ReportKind.values)
    for r in written:
        assert r.content_hash == content_hash(r.content) and r.version == 1
    tca = Report.objects.get(kind="tca_summary")
    assert [row[0] for row in tca.content["rows"]] == ["ACCT1", "ACCT2"]
    assert tca.content["rows"][0][5] == "50.00"
    exc = Report.objects.get(kind="exceptions")
    assert exc.content["rows"][0][:3] == ["opened", exc.content["rows"][0][1], "booking_failed"]
    # Nothing changed: nothing written.
    assert reports_generate(report_date=DAY, actor=None, as_of=T0) == []
    from positions.models import Position

    Position.objects.filter(account=refdata.acct1).update(quantity=Decimal(150))
    (again,) = reports_generate(report_date=DAY, actor=refdata.ops, as_of=T0)
    assert again.kind == "positions_cash" and again.version == 2
    # The hash is of the canonical JSON of the content.
    canonical = json.dumps(again.content, sort_keys=True, separators=(",", ":"))
    assert again.content_hash == hashlib.sha256(canonical.encode()).hexdigest()


def test_a_report_cannot_be_edited_or_deleted(refdata, books):
    from reports.services import reports_generate

    (report, *_) = reports_generate(report_date=DAY, actor=None, as_of=T0)
    for sql in (
        "UPDATE reports_report SET content_hash = 'x' WHERE id = %s",
        "DELETE FROM reports_report WHERE id = %s",
    ):
        with pytest.raises((InternalError, ProgrammingError, IntegrityError)):
            with transaction.atomic(), connection.cursor() as cur:
                cur.execute(sql, [report.pk])


def test_download_and_print_are_audited_and_a_pm_sees_only_their_rows(refdata, books):
    from audit.models import AuditEvent
    from reports.models import Report
    from reports.services import reports_generate

    reports_generate(report_date=DAY, actor=None, as_of=T0)
    positions = Report.objects.get(kind="positions_cash")
    ops = _client(refdata.ops)
    response = ops.get(f"/reports/{positions.pk}/download.csv")
    assert response.status_code == 200 and response["X-Report-SHA256"] == positions.content_hash
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert {r["account"] for r in rows} == {"ACCT1", "ACCT2"}
    assert ops.get(f"/reports/{positions.pk}/print/").status_code == 200
    page = ops.get(f"/reports/{positions.pk}/").content.decode()
    assert positions.content_hash in page
    downloads = AuditEvent.objects.filter(action="report.download", object_id=str(positions.pk))
    assert sorted(e.after["format"] for e in downloads) == ["csv", "print"]

    pm = _client(refdata.pm1)
    rows = list(
        csv.DictReader(
            io.StringIO(pm.get(f"/reports/{positions.pk}/download.csv").content.decode())
        )
    )
    assert {r["account"] for r in rows} == {"ACCT1"}
    # A report that is not by account (it may name anyone's business) is not a PM's.
    commissions = Report.objects.get(kind="commissions_by_broker")
    assert pm.get(f"/reports/{commissions.pk}/download.csv").status_code == 404
    listing = pm.get("/reports/").content.decode()
    assert "Commissions and fees" not in listing and "Positions and cash" in listing
    assert pm.post("/reports/generate/", {"date": "2026-12-01"}).status_code == 403


def test_the_beat_task_generates_the_day(refdata, books):
    from reports.models import Report
    from reports.tasks import end_of_day_reports

    assert end_of_day_reports("2026-12-01") == 6
    assert Report.objects.filter(report_date=DAY).count() == 6
    assert end_of_day_reports("2026-12-01") == 0
