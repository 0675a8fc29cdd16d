"""Market data and TCA over the API: quotes with their staleness, and the TCA figures the page
shows. Thin: parameters are checked here, the figures come from the selectors.

TCA: Traders, Compliance and Admin see every account; a PM sees only the accounts they manage
(TCA by PM included). Every query parameter is checked: an unknown one, one given twice or a
bad value is a 400 naming it."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from oms.api import HasRole
from oms.errors import NotFound
from oms.roles import ADMIN, COMPLIANCE, OPERATIONS, PM, TRADER

from . import selectors, tca_selectors

TCA_READERS = HasRole.of(TRADER, COMPLIANCE, ADMIN, PM)
QUOTE_READERS = HasRole.of(PM, TRADER, COMPLIANCE, OPERATIONS, ADMIN)


class TcaParams(serializers.Serializer):
    date_from = serializers.DateField(required=False)
    date_to = serializers.DateField(required=False)
    broker = serializers.CharField(required=False, max_length=32)
    pm = serializers.CharField(required=False, max_length=150)
    strategy = serializers.CharField(required=False, max_length=16)
    by = serializers.ChoiceField(choices=tca_selectors.DIMENSIONS, required=False)

    def validate(self, data):
        if data.get("date_from") and data.get("date_to") and data["date_from"] > data["date_to"]:
            raise ValidationError({"date_to": ["Must not be before date_from."]})
        return data


class QuoteParams(serializers.Serializer):
    security = serializers.ListField(child=serializers.IntegerField(min_value=1), required=False)
    mine = serializers.BooleanField(required=False)


def checked(request, params: type[serializers.Serializer]) -> dict:
    """The query string against `params`: every name known, given once, valid."""
    fields = params().fields
    given = request.query_params
    errors = {}
    for name in given:
        if name not in fields:
            errors[name[:60]] = ["Unknown parameter."]
        elif len(given.getlist(name)) > 1 and not isinstance(fields[name], serializers.ListField):
            errors[name[:60]] = ["Give this parameter once."]
    if errors:
        raise ValidationError(errors)
    data = {}
    for name, field in fields.items():
        if isinstance(field, serializers.ListField):
            values = [v for item in given.getlist(name) for v in item.split(",") if v]
            if values:
                data[name] = values
        elif given.get(name, "") != "":
            data[name] = given[name]
    s = params(data=data)
    s.is_valid(raise_exception=True)
    return s.validated_data


def jsonable(value):
    """Decimals as strings, as everywhere in the API (no float rounding of prices)."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def tca_filter(request) -> tuple[tca_selectors.TcaFilter, str]:
    p = checked(request, TcaParams)
    today = timezone.now().date()
    date_to = p.get("date_to") or today
    date_from = p.get("date_from") or date_to - timedelta(days=30)
    flt = tca_selectors.TcaFilter(
        date_from=date_from,
        date_to=date_to,
        broker=p.get("broker", ""),
        pm=p.get("pm", ""),
        strategy=p.get("strategy", ""),
    )
    return flt, p.get("by", "broker")


class QuotesView(APIView):
    """GET /api/marketdata/quotes/?security=1,2 (or ?mine=1: the securities of the user's
    open orders and positions): the latest market per security (the feed's,
    flagged stale after OMS_MD_STALE_SECONDS, or the reference price), and the feed's status."""

    permission_classes = [QUOTE_READERS]

    @extend_schema(parameters=[QuoteParams], responses=OpenApiTypes.OBJECT)
    def get(self, request):
        p = checked(request, QuoteParams)
        now = timezone.now()
        ids = p.get("security")
        if p.get("mine"):
            ids = selectors.securities_of_interest(user=request.user)
        return Response(
            jsonable(
                {
                    "status": selectors.market_status(as_of=now),
                    "quotes": selectors.quotes_list(as_of=now, security_ids=ids),
                }
            )
        )


class TcaView(APIView):
    """GET /api/tca/?date_from=&date_to=&broker=&pm=&strategy=&by=broker: the summary per
    `by` (order, block, broker, trader, pm, strategy), the distribution of shortfall against
    arrival, and the orders' figures."""

    permission_classes = [TCA_READERS]

    @extend_schema(parameters=[TcaParams], responses=OpenApiTypes.OBJECT)
    def get(self, request):
        flt, by = tca_filter(request)
        rows = tca_selectors.tca_orders(user=request.user, flt=flt, as_of=timezone.now())
        return Response(
            jsonable(
                {
                    "date_from": flt.date_from,
                    "date_to": flt.date_to,
                    "by": by,
                    "summary": tca_selectors.tca_summary(rows, by=by),
                    "distribution": tca_selectors.tca_distribution(rows),
                    "orders": rows,
                }
            )
        )


class TcaFillsView(APIView):
    """GET /api/tca/blocks/{id}/fills/: a block's fills over time against the market."""

    permission_classes = [TCA_READERS]

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request, block_id: str):
        if not block_id.isdigit() or int(block_id) > 2**63 - 1:
            raise NotFound(f"Block {block_id[:40]} does not exist.")
        timeline = tca_selectors.tca_fills_timeline(user=request.user, block_id=int(block_id))
        if timeline is None:
            raise NotFound(f"Block {block_id} does not exist.")
        return Response(jsonable(timeline))
