"""Query strings, checked by name before any value is read. A module of its own: the REST
settings name StrictFilterBackend, and DRF's generic views read that setting when they are
first imported, so it cannot live in a module that imports them (oms.api)."""

from __future__ import annotations

from django import forms
from django.core.exceptions import BadRequest
from django_filters.rest_framework import DjangoFilterBackend
from rest_framework import serializers

# Query parameters every list takes besides its filters.
PAGING_PARAMS = frozenset({"page", "page_size", "format"})


class NoQuery(forms.Form):
    """The query string of an endpoint that takes no parameter (but the paging ones)."""


def query_problems(form_class, params) -> dict[str, list[str]]:
    """What is wrong with a query string's names, before any value is read: a name the
    endpoint does not know (a misspelt filter once answered every row, as if it had been
    applied), or a single-valued one given twice (the form would silently keep the last).
    A form lists the names it takes more than once in `repeatable`."""
    known = set(form_class.base_fields)
    repeatable = set(getattr(form_class, "repeatable", ()))
    problems: dict[str, list[str]] = {}
    for name in params:
        if name not in known and name not in PAGING_PARAMS:
            problems[name[:60]] = ["Unknown parameter."]
        elif name not in repeatable and len(params.getlist(name)) > 1:
            problems[name[:60]] = ["Give this parameter once."]
    return problems


def problems_text(problems: dict[str, list[str]]) -> str:
    return " ".join(f"{name}: {' '.join(str(m) for m in msgs)}" for name, msgs in problems.items())


class QueryInvalid(BadRequest):
    """A page's query string it cannot take: a 400 page that says why (oms.error_views)."""


def page_query(form_class, params):
    """A page's filter form bound to its query string. An unknown or repeated name raises
    QueryInvalid naming it; a bad value is for the page to show on its form, with status 400
    (page_status)."""
    problems = query_problems(form_class, params)
    if problems:
        raise QueryInvalid(problems_text(problems))
    return form_class(params)


def page_status(form) -> int:
    """A filtered page's status: 400 when its filter is bad (it lists nothing then)."""
    return 400 if form.is_bound and not form.is_valid() else 200


class StrictFilterBackend(DjangoFilterBackend):
    """django-filter's backend, refusing (400) a query parameter its filter set does not
    know, or a repeated one, as query_or_400 does: by itself it ignores them."""

    def filter_queryset(self, request, queryset, view):
        filterset_class = self.get_filterset_class(view, queryset)
        fields = filterset_class.base_filters if filterset_class else {}
        form_class = type("FilterQuery", (forms.Form,), {name: forms.Field() for name in fields})
        problems = query_problems(form_class, request.query_params)
        if problems:
            raise serializers.ValidationError(problems)
        return super().filter_queryset(request, queryset, view)
