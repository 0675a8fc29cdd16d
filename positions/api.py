"""GET /api/positions/, /api/cash/, /api/exposure/: thin shells over the selectors; a PM
sees only the accounts they manage."""

from __future__ import annotations

from dataclasses import asdict

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.views import APIView

from oms.api import ID_MAX, StandardPagination, query_or_400
from oms.errors import NotFound
from oms.roles import sees_all_accounts
from oms.schema import form_parameters
from oms.selectors import accounts_visible_to

from . import selectors
from .forms import CashQuery, ExposureQuery, HoldingsQuery

MONEY = {"max_digits": 28, "decimal_places": 8}


def visible_account_ids(request) -> list[int]:
    """The accounts the caller may see, narrowed by ?account= (id or code, comma-separated).
    Asking for an account one may not see is a 404, as for the account pages."""
    visible = accounts_visible_to(request.user)
    wanted = [v for item in request.query_params.getlist("account") for v in item.split(",") if v]
    if not wanted:
        return list(visible.values_list("pk", flat=True))
    # An id past a bigint names no account (it once reached the database: a 500).
    is_id = [v.isascii() and v.isdigit() and 0 < int(v) <= ID_MAX for v in wanted]
    ids = [int(v) for v, numeric in zip(wanted, is_id, strict=True) if numeric]
    codes = [v for v, numeric in zip(wanted, is_id, strict=True) if not numeric]
    found = list(visible.filter(pk__in=ids).values_list("pk", flat=True)) + list(
        visible.filter(code__in=codes).values_list("pk", flat=True)
    )
    if len(set(found)) < len(set(wanted)):
        raise NotFound("No such account.")
    return sorted(set(found))


class HoldingOut(serializers.Serializer):
    account_id = serializers.IntegerField()
    account_code = serializers.CharField()
    base_currency = serializers.CharField()
    security_id = serializers.IntegerField()
    symbol = serializers.CharField()
    name = serializers.CharField()
    sector = serializers.CharField()
    issuer = serializers.CharField()
    currency = serializers.CharField()
    quantity = serializers.DecimalField(**MONEY)
    avg_cost = serializers.DecimalField(**MONEY)
    cost_basis = serializers.DecimalField(**MONEY)
    realized_pnl = serializers.DecimalField(**MONEY)
    price = serializers.DecimalField(**MONEY, allow_null=True)
    market_value = serializers.DecimalField(**MONEY, allow_null=True)
    unrealized_pnl = serializers.DecimalField(**MONEY, allow_null=True)
    pct_nav = serializers.DecimalField(**MONEY, allow_null=True)
    fx_error = serializers.CharField(
        allow_null=True, help_text="why pct_nav is missing: a rate the FX rates table lacks"
    )


class LadderStepOut(serializers.Serializer):
    settle_date = serializers.DateField()
    amount = serializers.DecimalField(**MONEY)
    projected = serializers.DecimalField(**MONEY)


class CashOut(serializers.Serializer):
    account_id = serializers.IntegerField()
    account_code = serializers.CharField()
    currency = serializers.CharField()
    settled = serializers.DecimalField(**MONEY)
    projected = serializers.DecimalField(**MONEY)
    steps = LadderStepOut(many=True)


class ExposureOut(serializers.Serializer):
    key = serializers.CharField()
    label = serializers.CharField()
    long_value = serializers.DecimalField(**MONEY)
    short_value = serializers.DecimalField(**MONEY)
    net_value = serializers.DecimalField(**MONEY)
    gross_value = serializers.DecimalField(**MONEY)


ACCOUNT = "account id or code (repeatable, or comma-separated)"


class _ListView(APIView):
    pagination_class = StandardPagination  # read by the schema too: the answer is a page
    schema_errors = {"404": "an account asked for that does not exist or is not the caller's"}

    def paginate(self, request, items, serializer):
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(items, request, view=self)
        return paginator.get_paginated_response(serializer(page, many=True).data)


class PositionListView(_ListView):
    @extend_schema(
        parameters=form_parameters(
            HoldingsQuery, account=ACCOUNT, security="symbol prefix or name"
        ),
        responses=HoldingOut(many=True),
    )
    def get(self, request):
        query = query_or_400(HoldingsQuery, request.query_params).cleaned_data
        rows = selectors.holdings(
            account_ids=visible_account_ids(request),
            security_query=query["security"].strip(),
            sector=query["sector"].strip(),
        )
        return self.paginate(request, [asdict(r) for r in rows], HoldingOut)


class CashListView(_ListView):
    @extend_schema(
        parameters=form_parameters(CashQuery, account=ACCOUNT), responses=CashOut(many=True)
    )
    def get(self, request):
        query_or_400(CashQuery, request.query_params)
        ladders = selectors.cash_ladders(account_ids=visible_account_ids(request))
        return self.paginate(request, [asdict(c) for c in ladders], CashOut)


class ExposureListView(_ListView):
    @extend_schema(
        parameters=form_parameters(ExposureQuery, account=ACCOUNT),
        responses=ExposureOut(many=True),
    )
    def get(self, request):
        by = query_or_400(ExposureQuery, request.query_params).cleaned_data["by"] or "security"
        firm = sees_all_accounts(request.user) and not request.query_params.get("account")
        fx_errors: list[str] = []
        rows = selectors.exposure(
            account_ids=None if firm else visible_account_ids(request), by=by, fx_errors=fx_errors
        )
        response = self.paginate(request, rows, ExposureOut)
        # What was left out for a missing FX rate, said (never valued at a rate of 1).
        response.data["fx_errors"] = fx_errors
        return response
