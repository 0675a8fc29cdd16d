"""The blotter page and its API. Thin: validate the input, make one domain call, shape the output."""

from __future__ import annotations

import json
from decimal import Decimal

from django import forms
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.shortcuts import render
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from fixgateway.killswitch import kill_switch_engage
from oms.api import (
    HasRole,
    NoQuery,
    StrictCharField,
    StrictSerializer,
    id_field,
    query_or_400,
)
from oms.errors import NotFound
from oms.money import decimal_text
from oms.roles import ADMIN, COMPLIANCE, OPERATIONS, TRADER
from oms.schema import form_parameters

from . import block_services, blotter_selectors
from .feed_history import sequence_position
from .models import OrderType, TimeInForce

DESK = HasRole.of(TRADER, ADMIN)
PRICE = {"max_digits": 28, "decimal_places": 8}


@login_required
def blotter_page(request):
    if not blotter_selectors.may_work_orders(request.user):
        raise PermissionDenied
    return render(request, "orders/blotter.html", {"may_work": True})


class SnapshotQuery(forms.Form):
    scope = forms.ChoiceField(choices=[("blotter", "blotter"), ("mine", "mine")], required=False)
    form = forms.ChoiceField(
        choices=[(f, f) for f in blotter_selectors.SNAPSHOT_FORMS], required=False
    )


class SnapshotView(APIView):
    """Rows plus the sequence number (and its epoch) they are current to: apply only later
    messages. `?form=columns` gives {"seq", "epoch", "columns": [names], "rows": [[values in
    that order]]}."""

    permission_classes = [IsAuthenticated]
    schema_errors = {"404": "no such feed for the caller's role"}

    @extend_schema(
        request=None, responses=OpenApiTypes.OBJECT, parameters=form_parameters(SnapshotQuery)
    )
    def get(self, request):
        query = query_or_400(SnapshotQuery, request.query_params).cleaned_data
        scope = query["scope"] or "blotter"
        form = query["form"] or "objects"
        group = blotter_selectors.feed_for(request.user, scope=scope)
        if group is None:
            raise NotFound("No such feed for you.")
        # Read the sequence number before the rows: anything committed after the query gets a
        # higher number (orders.broadcast), so the page loses nothing between the two.
        # The epoch names the numbering, for a later reconnect's resume (orders.feed_history).
        seq, epoch = sequence_position(group)
        rows = blotter_selectors.blotter_snapshot_json(
            user=request.user, scope=scope, as_of=timezone.now(), form=form
        )
        # Postgres wrote the rows' JSON; it goes out as it is, not parsed and encoded again.
        columns = json.dumps(list(blotter_selectors.ROW_FIELDS)) if form == "columns" else None
        head = f'{{"seq":{int(seq)},"epoch":{json.dumps(epoch)},' + (
            f'"columns":{columns},' if columns else ""
        )
        return HttpResponse(f'{head}"rows":{rows}}}', content_type="application/json")


class LayoutInput(StrictSerializer):
    """What the grid remembers; the blotter's own script reads the values."""

    columns = serializers.JSONField(required=False)
    filters = serializers.JSONField(required=False)
    group_by = serializers.JSONField(required=False)


class LayoutView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(request=None, responses=OpenApiTypes.OBJECT)
    def get(self, request):
        query_or_400(NoQuery, request.query_params)
        return Response(blotter_selectors.blotter_layout(user=request.user))

    @extend_schema(request=LayoutInput, responses=OpenApiTypes.OBJECT)
    def put(self, request):
        return Response(block_services.blotter_layout_save(user=request.user, layout=request.data))


class SessionsView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(request=None, responses=OpenApiTypes.OBJECT)
    def get(self, request):
        query_or_400(NoQuery, request.query_params)
        return Response({"sessions": blotter_selectors.broker_sessions()})


class HeaderView(APIView):
    """The blotter header: engaged kill switches, open exceptions, FIX sessions."""

    permission_classes = [HasRole.of(TRADER, ADMIN, COMPLIANCE, OPERATIONS)]

    @extend_schema(request=None, responses=OpenApiTypes.OBJECT)
    def get(self, request):
        query_or_400(NoQuery, request.query_params)
        return Response(blotter_selectors.blotter_header())


class BrokersView(APIView):
    permission_classes = [DESK]

    @extend_schema(request=None, responses=OpenApiTypes.OBJECT)
    def get(self, request):
        query_or_400(NoQuery, request.query_params)
        return Response({"brokers": blotter_selectors.brokers_routable()})


def _exact(value):
    if isinstance(value, dict):
        return {k: _exact(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_exact(v) for v in value]
    if isinstance(value, Decimal):
        return decimal_text(value)
    return value


def _block_out(block_id: int) -> dict:
    return blotter_selectors.block_detail(block_id=block_id)


class BlockCreateView(APIView):
    permission_classes = [DESK]
    schema_errors = {"404": "an order named does not exist", "409": "an order cannot join"}

    class BlockCreateInput(serializers.Serializer):
        order_ids = serializers.ListField(child=id_field(), min_length=1, max_length=5000)

    @extend_schema(request=BlockCreateInput, responses={201: OpenApiTypes.OBJECT})
    def post(self, request):
        data = self.BlockCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        block = block_services.block_create(
            order_ids=data.validated_data["order_ids"], actor=request.user, as_of=timezone.now()
        )
        return Response(_block_out(block.pk), status=201)


class BlockDetailView(APIView):
    permission_classes = [DESK]

    @extend_schema(request=None, responses=OpenApiTypes.OBJECT)
    def get(self, request, block_id: int):
        query_or_400(NoQuery, request.query_params)
        block = _block_out(block_id)
        if block is None:
            raise NotFound(f"Block {block_id} does not exist.")
        return Response(block)


class BlockHistoryView(APIView):
    """A block with its executions, ClOrdIDs, broker OrderID, last reject and FIX messages.
    A PM reads only blocks holding their accounts' orders (any other is a 404)."""

    permission_classes = [IsAuthenticated]

    @extend_schema(
        request=None,
        responses={200: OpenApiTypes.OBJECT, 404: OpenApiResponse(description="no such block")},
    )
    def get(self, request, block_id: int):
        query_or_400(NoQuery, request.query_params)
        detail = blotter_selectors.block_history(user=request.user, block_id=block_id)
        return Response(_exact(detail))


class BlockRouteView(APIView):
    permission_classes = [DESK]

    class BlockRouteInput(serializers.Serializer):
        broker_id = id_field()
        order_type = serializers.ChoiceField(choices=OrderType.choices)
        limit_price = serializers.DecimalField(required=False, allow_null=True, **PRICE)
        stop_price = serializers.DecimalField(required=False, allow_null=True, **PRICE)
        time_in_force = serializers.ChoiceField(
            choices=TimeInForce.choices, default=TimeInForce.DAY
        )
        expire_date = serializers.DateField(required=False, allow_null=True)
        strategy = serializers.ChoiceField(choices=block_services.STRATEGIES, default="DMA")
        strategy_params = serializers.DictField(required=False, default=dict)

    @extend_schema(request=BlockRouteInput, responses=OpenApiTypes.OBJECT)
    def post(self, request, block_id: int):
        data = self.BlockRouteInput(data=request.data)
        data.is_valid(raise_exception=True)
        block = block_services.block_route(
            block_id=block_id, **data.validated_data, actor=request.user, as_of=timezone.now()
        )
        return Response(_block_out(block.pk))


class BlockCancelView(APIView):
    permission_classes = [DESK]

    @extend_schema(request=None, responses=OpenApiTypes.OBJECT)
    def post(self, request, block_id: int):
        block = block_services.block_cancel(
            block_id=block_id, actor=request.user, as_of=timezone.now()
        )
        return Response(_block_out(block.pk))


class BlockReplaceView(APIView):
    permission_classes = [DESK]

    class BlockReplaceInput(serializers.Serializer):
        quantity = serializers.DecimalField(required=False, allow_null=True, **PRICE)
        limit_price = serializers.DecimalField(required=False, allow_null=True, **PRICE)

    @extend_schema(request=BlockReplaceInput, responses=OpenApiTypes.OBJECT)
    def post(self, request, block_id: int):
        data = self.BlockReplaceInput(data=request.data)
        data.is_valid(raise_exception=True)
        block = block_services.block_replace(
            block_id=block_id, **data.validated_data, actor=request.user, as_of=timezone.now()
        )
        return Response(_block_out(block.pk))


class BlockDissolveView(APIView):
    permission_classes = [DESK]

    @extend_schema(request=None, responses=OpenApiTypes.OBJECT)
    def post(self, request, block_id: int):
        block_services.block_dissolve(block_id=block_id, actor=request.user, as_of=timezone.now())
        return Response(_block_out(block_id))


class CrossView(APIView):
    permission_classes = [DESK]
    schema_errors = {"404": "an order named does not exist", "409": "the orders cannot cross"}

    class CrossInput(serializers.Serializer):
        buy_order_id = id_field()
        sell_order_id = id_field()

    @extend_schema(request=CrossInput, responses={201: OpenApiTypes.OBJECT})
    def post(self, request):
        data = self.CrossInput(data=request.data)
        data.is_valid(raise_exception=True)
        result = block_services.orders_cross(
            **data.validated_data, actor=request.user, as_of=timezone.now()
        )
        # Quantities and prices leave as exact decimal strings, never JSON floats.
        return Response(_exact(result), status=201)


class KillSwitchView(APIView):
    permission_classes = [DESK]

    class KillSwitchInput(serializers.Serializer):
        scope = serializers.ChoiceField(choices=["all", "broker", "account", "trader"])
        value = StrictCharField(required=False, allow_blank=True, default="")

    @extend_schema(request=KillSwitchInput, responses=OpenApiTypes.OBJECT)
    def post(self, request):
        data = self.KillSwitchInput(data=request.data)
        data.is_valid(raise_exception=True)
        result = kill_switch_engage(**data.validated_data, actor=request.user, as_of=timezone.now())
        return Response({"engaged": True, "result": result if isinstance(result, dict) else None})
