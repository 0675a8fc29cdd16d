"""What every API endpoint shares: one error format, pagination, role permissions."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.paginator import EmptyPage, Page, PageNotAnInteger, Paginator
from django.db.models import QuerySet
from django.http import Http404
from django.utils.functional import cached_property
from rest_framework import exceptions, permissions, serializers
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from .error_views import busy_response, database_busy
from .errors import DomainError
from .query import PAGING_PARAMS, NoQuery, query_problems  # noqa: F401 (re-exported)
from .roles import has_role

# Primary keys are bigint: a larger number is a 400 at the edge, not a database error.
ID_MAX = 2**63 - 1


def id_field(**kwargs) -> serializers.IntegerField:
    """An input field holding a row's id."""
    return serializers.IntegerField(min_value=1, max_value=ID_MAX, **kwargs)


class StrictSerializer(serializers.Serializer):
    """An input that names every field it does not take (400), rather than dropping it: a
    client that sends a field it believes is applied must hear that it is not."""

    refuses_unknown_fields = True  # the schema says additionalProperties: false (oms.schema)

    def to_internal_value(self, data):
        if hasattr(data, "keys"):
            unknown = sorted(set(data.keys()) - set(self.fields))
            if unknown:
                raise serializers.ValidationError(
                    {name: ["This field cannot be set here."] for name in unknown}
                )
        return super().to_internal_value(data)


class StrictCharField(serializers.CharField):
    """Text that is text: DRF's CharField takes 0 or true for "0" and "True"."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


def form_or_400(form):
    """A Django form reading query parameters, checked: a bad value is a 400 naming the
    parameter, in the API's error format."""
    if not form.is_valid():
        raise serializers.ValidationError(
            {
                field: [e["message"] for e in errors]
                for field, errors in form.errors.get_json_data().items()
            }
        )
    return form


def query_or_400(form_class, params):
    """form_or_400 for a query string, where an unknown or repeated name is a 400 too."""
    problems = query_problems(form_class, params)
    if problems:
        raise serializers.ValidationError(problems)
    return form_or_400(form_class(params))


def _whole_number(params, name: str, maximum: int) -> int | None:
    """A paging parameter: absent or empty, or a whole number from 1 to `maximum` (a 400 naming
    it otherwise: DRF would quietly use its default page size for page_size=abc)."""
    raw = params.get(name, "")
    if raw == "":
        return None
    if not (raw.isascii() and raw.isdigit() and 1 <= int(raw) <= maximum):
        raise serializers.ValidationError({name: [f"A whole number from 1 to {maximum}."]})
    return int(raw)


class StandardPagination(PageNumberPagination):
    page_size_query_param = "page_size"
    max_page_size = 1000

    def get_page_size(self, request):
        size = _whole_number(request.query_params, self.page_size_query_param, self.max_page_size)
        return size or self.page_size

    def get_page_number(self, request, paginator):
        # Past the last page is still a 404 (the paginator's own check).
        return _whole_number(request.query_params, self.page_query_param, ID_MAX) or 1

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            maximum = self.max_page_size if parameter["name"] == "page_size" else ID_MAX
            parameter["schema"].update({"minimum": 1, "maximum": maximum})
        return parameters


COUNT_CAP = 10_000


class _CappedPage(Page):
    def __init__(self, object_list, number, paginator, *, more: bool) -> None:
        super().__init__(object_list, number, paginator)
        self.more = more

    def has_next(self) -> bool:
        return self.more

    def next_page_number(self) -> int:
        return self.number + 1


class PagedRows:
    """A list paged as rows (`rows`, e.g. a values() queryset) and counted on the model
    queryset it came from (`counted`): a count of values() would carry their joins into the
    counting subquery (a PM's order list counted 10,001 rows through three joins, 80 ms,
    where the ids alone take a few)."""

    ordered = True  # for Paginator's check: `rows` keeps the queryset's order

    def __init__(self, counted: QuerySet, rows: QuerySet) -> None:
        self.counted, self.rows = counted, rows

    def __getitem__(self, index):
        return self.rows[index]


class _CappedCountPaginator(Paginator):
    """Counts at most COUNT_CAP + 1 rows; a page reads one row more than it shows to know
    whether another follows, so every page stays reachable whatever the count says."""

    @cached_property
    def count(self) -> int:
        counted = getattr(self.object_list, "counted", self.object_list)
        return counted.order_by()[: COUNT_CAP + 1].count()

    def page(self, number):
        try:
            number = int(number)
        except (TypeError, ValueError) as exc:
            raise PageNotAnInteger("That page number is not an integer") from exc
        if number < 1:
            raise EmptyPage("That page number is less than 1")
        bottom = (number - 1) * self.per_page
        rows = list(self.object_list[bottom : bottom + self.per_page + 1])
        if not rows and number > 1:
            raise EmptyPage("That page contains no results")
        return _CappedPage(rows[: self.per_page], number, self, more=len(rows) > self.per_page)


class CappedCountPagination(StandardPagination):
    """StandardPagination for lists that grow without bound (a year of orders): `count` is
    exact up to COUNT_CAP matches and COUNT_CAP beyond, with `count_exact` false. Counting a
    million rows cost more than the page itself on every request (bench/scale_bench.py)."""

    django_paginator_class = _CappedCountPaginator

    def get_paginated_response(self, data):
        count = self.page.paginator.count
        return Response(
            {
                "count": min(count, COUNT_CAP),
                "count_exact": count <= COUNT_CAP,
                "next": self.get_next_link(),
                "previous": self.get_previous_link(),
                "results": data,
            }
        )

    def get_paginated_response_schema(self, schema):
        out = super().get_paginated_response_schema(schema)
        out["properties"]["count_exact"] = {
            "type": "boolean",
            "description": f"false when more than {COUNT_CAP:,} match (count is then {COUNT_CAP:,})",
        }
        return out


def _error_body(code: str, message: str, fields: dict | None = None, details: dict | None = None):
    body: dict = {"error": {"code": code, "message": message}}
    if fields:
        body["error"]["fields"] = fields
    if details:
        body["error"]["details"] = details
    return body


def exception_handler(exc, context):
    """Every error leaves the API as {"error": {"code", "message", "fields"?, "details"?}}."""
    if database_busy(exc):
        # A deadlock that outlived its retries (oms.db), a busy pool: 503, never a 500.
        return busy_response(context["request"])
    if isinstance(exc, DomainError):
        return Response(
            _error_body(exc.code, exc.message, details=exc.details), status=exc.status_code
        )
    if isinstance(exc, DjangoValidationError):
        fields = exc.message_dict if hasattr(exc, "error_dict") else None
        exc = exceptions.ValidationError(fields or {"non_field_errors": exc.messages})
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    if isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        data = exc.detail
        if isinstance(data, dict):
            response.data = _error_body("invalid", "Invalid input.", fields=data)
        else:
            response.data = _error_body(
                "invalid", "Invalid input.", fields={"non_field_errors": data}
            )
    else:
        detail = exc.detail if isinstance(exc, exceptions.APIException) else str(exc)
        code = getattr(detail, "code", None) or getattr(exc, "default_code", "error")
        response.data = _error_body(str(code), str(detail))
    return response


class HasRole(permissions.BasePermission):
    """Use as HasRole.of("Trader", "Admin")."""

    roles: tuple[str, ...] = ()

    @classmethod
    def of(cls, *roles: str):
        return type(f"HasRole_{'_'.join(roles)}", (cls,), {"roles": roles})

    def has_permission(self, request, view) -> bool:
        return bool(
            request.user and request.user.is_authenticated and has_role(request.user, *self.roles)
        )
