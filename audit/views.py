from datetime import UTC, datetime, time

from django import forms
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from oms.csvio import write_csv
from oms.paging import page_of
from oms.query import page_query, problems_text
from oms.roles import ADMIN, COMPLIANCE, has_role

from .selectors import audit_changes, audit_events
from .services import audit_record

CSV_HEADER = [
    "seq",
    "occurred_at",
    "user",
    "action",
    "object_type",
    "object_id",
    "object",
    "request_id",
    "ip",
    "before",
    "after",
    "hash",
]
CSV_LIMIT = 100_000


def _parse_when(raw: str, *, end: bool = False) -> datetime | None:
    raw = (raw or "").strip()
    if not raw:
        return None
    # A well-formed but impossible date (2026-13-45) raises ValueError; a malformed one parses
    # to None: both are the user's mistake, said as such (never ignored, never a 500).
    # A bare date first: Python 3.11's fromisoformat (inside parse_datetime) reads one as its
    # midnight, which made "until" a day exclude that whole day.
    try:
        day = parse_date(raw)
        moment = None if day else parse_datetime(raw)
    except ValueError:
        moment = day = None
    if moment is None:
        if day is None:
            raise ValueError(f"{raw!r} is not a date (YYYY-MM-DD) or a date and time.")
        moment = datetime.combine(day, time.max if end else time.min)
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment, UTC)
    return moment


class AuditQuery(forms.Form):
    """The names the audit page takes (values are read by _filters)."""

    user = forms.CharField(required=False)
    action = forms.CharField(required=False)
    object_type = forms.CharField(required=False)
    object_id = forms.CharField(required=False)
    since = forms.CharField(required=False)
    until = forms.CharField(required=False)
    format = forms.CharField(required=False)


def _filters(request) -> dict:
    g = request.GET
    form = page_query(AuditQuery, g)  # an unknown or repeated name: a 400 page naming it
    if not form.is_valid():  # e.g. a NUL character, which Postgres text cannot hold
        raise ValueError(problems_text(form.errors))
    if g.get("format", "") not in ("", "csv"):
        raise ValueError("format is csv or nothing.")
    return {
        "username": g.get("user", "").strip(),
        "action": g.get("action", "").strip(),
        "object_type": g.get("object_type", "").strip(),
        "object_id": g.get("object_id", "").strip(),
        "since": _parse_when(g.get("since", "")),
        "until": _parse_when(g.get("until", ""), end=True),
    }


@login_required
def events(request):
    if not has_role(request.user, COMPLIANCE, ADMIN):
        raise PermissionDenied
    try:
        filters = _filters(request)
    except ValueError as exc:
        return render(
            request,
            "audit/events.html",
            {"page": None, "filters": request.GET, "query": "", "error": str(exc)},
            status=400,
        )
    qs = audit_events(**filters)
    if request.GET.get("format") == "csv":
        rows = (
            [
                e.chain_seq,
                e.occurred_at.isoformat(),
                e.actor_username,
                e.action,
                e.object_type,
                e.object_id,
                e.object_repr,
                e.request_id,
                e.ip,
                e.before,
                e.after,
                e.hash,
            ]
            for e in qs[:CSV_LIMIT]
        )
        audit_record(actor=request.user, action="audit.export", after={"query": request.GET.dict()})
        response = HttpResponse(write_csv(CSV_HEADER, rows), content_type="text/csv")
        response["Content-Disposition"] = 'attachment; filename="audit-events.csv"'
        return response
    page = page_of(qs, request.GET.get("page"), 100)
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "audit/events.html",
        {
            "page": page,
            "rows": [(e, audit_changes(before=e.before, after=e.after)) for e in page],
            "filters": request.GET,
            "query": query.urlencode(),
        },
    )
