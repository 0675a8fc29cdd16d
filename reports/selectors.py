"""Reports as a user may read them: firm-wide roles see every report whole; a PM sees only
reports that name accounts, cut to the rows of their own accounts."""

from __future__ import annotations

from datetime import date

from oms.roles import sees_all_accounts
from oms.selectors import accounts_visible_to

from .models import Report


def reports_visible(*, user, report_date: date | None = None):
    qs = Report.objects.all()
    if report_date:
        qs = qs.filter(report_date=report_date)
    if not sees_all_accounts(user):
        qs = qs.exclude(account_column="")
    return qs.defer("content")


def report_get(*, user, report_id: int) -> Report | None:
    report = Report.objects.filter(pk=report_id).first()
    if report is None or (not sees_all_accounts(user) and not report.account_column):
        return None
    return report


def report_rows(*, user, report: Report) -> list[list[str]]:
    rows = report.content["rows"]
    if sees_all_accounts(user) or not report.account_column:
        return rows
    mine = set(accounts_visible_to(user).values_list("code", flat=True))
    i = report.content["columns"].index(report.account_column)
    return [r for r in rows if r[i] in mine]
