"""Report pages: the list, one report as a page, as a printable page and as CSV (downloads and
prints audited), and generating on demand. Thin: reads through reports.selectors."""

from __future__ import annotations

from datetime import date

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from oms.csvio import write_csv
from oms.query import QueryInvalid
from oms.roles import ADMIN, COMPLIANCE, OPERATIONS, has_role

from . import selectors, services

GENERATORS = (OPERATIONS, COMPLIANCE, ADMIN)


def _date(text: str) -> date | None:
    try:
        return date.fromisoformat(text) if text else None
    except ValueError:
        return None


@login_required
def report_list(request):
    raw = request.GET.get("date", "").strip()
    day = _date(raw)
    if raw and day is None:
        raise QueryInvalid(f"date: {raw[:40]!r} is not a date (YYYY-MM-DD).")
    reports = selectors.reports_visible(user=request.user, report_date=day)[:300]
    return render(
        request,
        "reports/list.html",
        {
            "reports": reports,
            "day": day,
            "today": timezone.now().date(),
            "may_generate": has_role(request.user, *GENERATORS),
        },
    )


def _report(request, report_id: int):
    report = selectors.report_get(user=request.user, report_id=report_id)
    if report is None:
        raise Http404("No such report.")
    return report, selectors.report_rows(user=request.user, report=report)


@login_required
def report_detail(request, report_id: int):
    report, rows = _report(request, report_id)
    return render(request, "reports/detail.html", {"report": report, "rows": rows})


@login_required
def report_print(request, report_id: int):
    report, rows = _report(request, report_id)
    services.report_download_record(
        report=report, actor=request.user, fmt="print", as_of=timezone.now()
    )
    return render(request, "reports/print.html", {"report": report, "rows": rows})


@login_required
def report_csv(request, report_id: int):
    report, rows = _report(request, report_id)
    services.report_download_record(
        report=report, actor=request.user, fmt="csv", as_of=timezone.now()
    )
    response = HttpResponse(write_csv(report.content["columns"], rows), content_type="text/csv")
    name = f"{report.kind}-{report.report_date}-v{report.version}.csv"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    # The hash of the whole report as generated (a PM's copy holds only their rows of it).
    response["X-Report-SHA256"] = report.content_hash
    return response


@login_required
@require_POST
def report_generate(request):
    if not has_role(request.user, *GENERATORS):
        raise PermissionDenied
    raw = request.POST.get("date", "").strip()
    day = _date(raw)
    if raw and day is None:
        # A date the user meant is never swapped for today's (a 400 page says which).
        raise QueryInvalid(f"date: {raw[:40]!r} is not a date (YYYY-MM-DD).")
    day = day or timezone.now().date()
    written = services.reports_generate(report_date=day, actor=request.user, as_of=timezone.now())
    messages.success(request, f"{len(written)} report(s) written for {day}.")
    return redirect(f"/reports/?date={day}")
