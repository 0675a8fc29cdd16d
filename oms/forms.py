"""Forms of the core pages; the exceptions filter is shared by the page and the API, so both
read (and refuse) the same query parameters the same way."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from django import forms
from django.core.validators import RegexValidator
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from .selectors import EXCEPTION_STATUSES
from .services import CODE_RE, NOTE_MAX

_code = RegexValidator(CODE_RE, "A lower-case code, e.g. booking_failed.")
WHEN_HELP = "Give a date (YYYY-MM-DD) or an ISO 8601 date-time."


def parse_when(raw: str, *, end: bool) -> datetime | None:
    """A date or a date-time (UTC unless it says otherwise). A bare date covers its whole day:
    as the start of a range its midnight, as the end the next midnight (the end is exclusive)."""
    raw = (raw or "").strip()
    if not raw:
        return None
    try:
        # A date first: parse_datetime would also read "2026-10-09", as its midnight.
        day = parse_date(raw)
        if day is not None:
            moment = datetime.combine(day, time.min)
            if end:
                if day == date.max:
                    return None  # the end of the calendar bounds nothing
                moment += timedelta(days=1)
        else:
            moment = parse_datetime(raw)
            if moment is None:
                raise forms.ValidationError(WHEN_HELP, code="invalid")
        if timezone.is_naive(moment):
            moment = timezone.make_aware(moment, UTC)
        # In UTC: Postgres refuses offsets Python allows (beyond 15:59), and an offset that
        # puts the moment outside the calendar fails here.
        moment = moment.astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise forms.ValidationError(WHEN_HELP, code="invalid") from exc
    return moment


class TimeRangeForm(forms.Form):
    """A filter with a time range: `since` and `until` fields (declared by the subclass), each a
    date or a date-time, the end after the start."""

    # How the API's schema describes them (oms.schema.form_parameters).
    query_schema = {
        name: {"type": "string", "anyOf": [{"format": "date"}, {"format": "date-time"}]}
        for name in ("since", "until")
    }

    def clean_since(self) -> datetime | None:
        return parse_when(self.cleaned_data["since"], end=False)

    def clean_until(self) -> datetime | None:
        return parse_when(self.cleaned_data["until"], end=True)

    def clean(self):
        data = super().clean()
        since, until = data.get("since"), data.get("until")
        if since and until and until <= since:
            self.add_error("until", "Must be after the start of the range.")
        return data


class ExceptionFilterForm(TimeRangeForm):
    status = forms.ChoiceField(
        choices=[(s, s.capitalize()) for s in EXCEPTION_STATUSES], required=False
    )
    kind = forms.CharField(max_length=64, required=False, validators=[_code])
    source = forms.CharField(max_length=32, required=False, validators=[_code])
    q = forms.CharField(max_length=200, required=False, label="Search")
    since = forms.CharField(required=False, label="Opened from", help_text=WHEN_HELP)
    until = forms.CharField(required=False, label="to", help_text=WHEN_HELP)

    def clean_status(self) -> str:
        return self.cleaned_data["status"] or "all"

    def selector_kwargs(self) -> dict:
        """The cleaned filters as exceptions_list's arguments."""
        data = self.cleaned_data
        return {
            "status": data["status"],
            "kind": data["kind"],
            "source": data["source"],
            "search": data["q"].strip(),
            "since": data["since"],
            "until": data["until"],
        }


class ExceptionResolveForm(forms.Form):
    note = forms.CharField(
        max_length=NOTE_MAX,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="How it was resolved; kept on the audit trail.",
    )


class SecuritySearchQuery(forms.Form):
    q = forms.CharField(required=False, max_length=100, strip=False)
