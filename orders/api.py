"""Order capture API: thin views over orders.entry / selectors / basket_services."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import FormParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from oms import roles
from oms.api import CappedCountPagination, HasRole, NoQuery, PagedRows, query_or_400
from oms.errors import NotFound
from oms.models import Security
from oms.parsers import UploadParser
from oms.schema import form_parameters
from oms.selectors import account_not_found, accounts_visible_to
from positions.selectors import position_quantity

from . import basket_services, entry, selectors
from .forms import OrderListQuery, TicketInfoQuery
from .lifecycle import OrderStatus
from .models import Side
from .order_fields import OrderInputSerializer
from .serializers import (
    BasketPreviewSerializer,
    BasketUploadSerializer,
    OrderAmendSerializer,
    OrderCancelSerializer,
    OrderDetailSerializer,
    OrderSerializer,
    order_row_columns,
    order_rows,
    preview_data,
)

CAPTURE_ROLES = (roles.PM, roles.ADMIN)
IDEMPOTENCY_HEADER = OpenApiParameter(
    "Idempotency-Key",
    str,
    location=OpenApiParameter.HEADER,
    required=False,
    description="A retry with the same key returns the original order and creates nothing.",
)
FILTER_PARAMS = [
    OpenApiParameter(
        "status",
        {"type": "array", "items": {"type": "string", "enum": OrderStatus.values}},
        style="form",
        explode=False,
        description="one status or several, comma-separated (any case)",
    ),
    OpenApiParameter("side", {"type": "string", "enum": Side.values}, description="any case"),
    *[p for p in form_parameters(OrderListQuery) if p.name not in ("status", "side")],
]


def _detail(order, user) -> dict:
    order = selectors.order_with_events(order_id=order.pk)
    context = {
        "compliance": selectors.order_compliance(order_id=order.pk, user=user),
        "fills": selectors.order_fills(order=order),
        "allocations": selectors.order_allocations(order=order),
        "actions": selectors.order_actions(order=order, user=user),
    }
    return OrderDetailSerializer(order, context=context).data


class TicketInfoSerializer(serializers.Serializer):
    """What the order ticket shows next to the entry; decimals as strings, as everywhere."""

    account = serializers.CharField()
    symbol = serializers.CharField()
    name = serializers.CharField()
    currency = serializers.CharField()
    reference_price = serializers.DecimalField(28, 8, allow_null=True)
    lot_size = serializers.DecimalField(28, 8)
    tick_size = serializers.DecimalField(28, 8)
    active = serializers.BooleanField()
    position = serializers.DecimalField(28, 8)
    # How the price becomes money, and with ?quantity= (and ?price=, else the reference
    # price) the order's clean amount, accrued interest and total (orders.selectors.ticket_money).
    price_quotation = serializers.CharField()
    contract_multiplier = serializers.DecimalField(28, 8)
    accrued_per_100 = serializers.DecimalField(28, 8)
    clean_amount = serializers.DecimalField(28, 8, allow_null=True)
    accrued_amount = serializers.DecimalField(28, 8, allow_null=True)
    total_amount = serializers.DecimalField(28, 8, allow_null=True)


def _positive_decimal(text: str, name: str) -> Decimal | None:
    """A query parameter as a positive number (None when empty); anything else is a 400
    naming it."""
    if not text.strip():
        return None
    try:
        value = Decimal(text.strip().replace(",", ""))
    except InvalidOperation:
        value = None
    if value is None or not value.is_finite() or value <= 0:
        raise ValidationError({name: [f"{text!r} is not a positive number."]})
    return value


class OrderViewSet(viewsets.GenericViewSet):
    serializer_class = OrderSerializer
    lookup_value_regex = r"\d+"
    pagination_class = CappedCountPagination
    schema_errors = {"404": "no such order, account or symbol the caller may see"}
    filter_backends: list = []  # order_list applies the filters (one place for API and pages)

    def get_permissions(self):
        if self.action in ("create", "partial_update", "cancel"):
            return [HasRole.of(*CAPTURE_ROLES)()]
        return [IsAuthenticated()]

    def get_queryset(self):
        return selectors.orders_visible_to(self.request.user)

    @extend_schema(parameters=FILTER_PARAMS, responses=OrderSerializer(many=True))
    def list(self, request):
        query = query_or_400(OrderListQuery, request.query_params)
        qs = selectors.order_list(user=request.user, filters=query.cleaned_data)
        page = self.paginate_queryset(PagedRows(qs, qs.values(*order_row_columns())))
        return self.get_paginated_response(order_rows(page))

    @extend_schema(responses=OrderDetailSerializer)
    def retrieve(self, request, pk: str):
        query_or_400(NoQuery, request.query_params)
        order = selectors.order_get(user=request.user, order_id=int(pk))
        return Response(_detail(order, request.user))

    @extend_schema(
        request=OrderInputSerializer,
        parameters=[IDEMPOTENCY_HEADER],
        responses={201: OrderDetailSerializer, 200: OrderDetailSerializer},
    )
    def create(self, request):
        serializer = OrderInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        key = (request.headers.get("Idempotency-Key") or "").strip() or None
        if key and len(key) > 128:
            raise serializers.ValidationError({"Idempotency-Key": ["At most 128 characters."]})
        order, created = entry.order_create(
            pm=request.user, as_of=timezone.now(), idempotency_key=key, **serializer.validated_data
        )
        return Response(
            _detail(order, request.user),
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )

    @extend_schema(request=OrderAmendSerializer, responses=OrderDetailSerializer)
    def partial_update(self, request, pk: str):
        selectors.order_get(user=request.user, order_id=int(pk))
        serializer = OrderAmendSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        order = entry.order_amend(
            order_id=int(pk),
            actor=request.user,
            as_of=timezone.now(),
            changes=serializer.validated_data,
        )
        return Response(_detail(order, request.user))

    @extend_schema(request=OrderCancelSerializer, responses=OrderDetailSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk: str):
        selectors.order_get(user=request.user, order_id=int(pk))
        serializer = OrderCancelSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        order = entry.order_cancel(
            order_id=int(pk),
            actor=request.user,
            as_of=timezone.now(),
            reason=serializer.validated_data["reason"],
        )
        return Response(_detail(order, request.user))

    @extend_schema(parameters=form_parameters(TicketInfoQuery), responses=TicketInfoSerializer)
    @action(detail=False, methods=["get"], url_path="ticket-info")
    def ticket_info(self, request):
        """What the order ticket shows next to the entry: price, lot, tick and the position."""
        query = query_or_400(TicketInfoQuery, request.query_params).cleaned_data
        code = query["account"]
        symbol = query["symbol"].strip().upper()
        account = accounts_visible_to(request.user).filter(code=code).first()
        if account is None:
            raise account_not_found(code)
        security = Security.objects.filter(symbol=symbol).first()
        if security is None:
            raise NotFound(f"Unknown symbol '{symbol}'.")
        amounts = {
            name: _positive_decimal(request.query_params.get(name, ""), name)
            for name in ("quantity", "price")
        }
        money = selectors.ticket_money(
            security=security,
            quantity=amounts["quantity"],
            price=amounts["price"],
            as_of=timezone.now(),
        )
        return Response(
            TicketInfoSerializer(
                {
                    "account": account.code,
                    "symbol": security.symbol,
                    "name": security.name,
                    "currency": security.currency,
                    "reference_price": security.reference_price,
                    "lot_size": security.lot_size,
                    "tick_size": security.tick_size,
                    "active": security.active,
                    "position": position_quantity(account_id=account.pk, security_id=security.pk),
                    **money,
                }
            ).data
        )


class _UploadView(APIView):
    permission_classes = [HasRole.of(*CAPTURE_ROLES)]
    parser_classes = [UploadParser, FormParser]

    def _handle(self, request, preview_fn, confirm_fn):
        serializer = BasketUploadSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        upload = serializer.validated_data["file"]
        if upload.size > basket_services.MAX_CSV_BYTES:
            raise basket_services.CsvRejected(
                f"The file is {upload.size:,} bytes; the limit is "
                f"{basket_services.MAX_CSV_BYTES:,} bytes (2 MB)."
            )
        content = upload.read()
        as_of = timezone.now()
        if not serializer.validated_data["confirm"]:
            preview = preview_fn(pm=request.user, content=content, as_of=as_of)
            return Response(preview_data(preview))
        basket, preview = confirm_fn(
            pm=request.user,
            content=content,
            as_of=as_of,
            filename=upload.name or "",
            name=serializer.validated_data["name"],
            expected_sha256=serializer.validated_data["expected_sha256"],
        )
        return Response(preview_data(preview, basket), status=status.HTTP_201_CREATED)


class BasketUploadView(_UploadView):
    @extend_schema(
        request={"multipart/form-data": BasketUploadSerializer},
        responses={200: BasketPreviewSerializer, 201: BasketPreviewSerializer},
        description="Upload a basket CSV (header: the order API's field names). confirm=false "
        "previews every line; confirm=true creates every valid line as one basket.",
    )
    def post(self, request):
        return self._handle(request, basket_services.basket_preview, basket_services.basket_confirm)


class RebalanceUploadView(_UploadView):
    @extend_schema(
        request={"multipart/form-data": BasketUploadSerializer},
        responses={200: BasketPreviewSerializer, 201: BasketPreviewSerializer},
        description="Upload target weights (account, symbol, target_weight_pct). confirm=false "
        "shows the orders the rebalance comes to; confirm=true creates them as one basket.",
    )
    def post(self, request):
        return self._handle(
            request, basket_services.rebalance_preview, basket_services.rebalance_confirm
        )


class RebalanceDriftView(APIView):
    """The rebalance preview's drift report as CSV: target, current weight and drift per
    account and security, with the order and its compliance verdict. Saves nothing."""

    permission_classes = [HasRole.of(*CAPTURE_ROLES)]
    parser_classes = [UploadParser, FormParser]

    @extend_schema(
        request={"multipart/form-data": BasketUploadSerializer},
        responses={(200, "text/csv"): OpenApiTypes.STR},
    )
    def post(self, request):
        serializer = BasketUploadSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        upload = serializer.validated_data["file"]
        if upload.size > basket_services.MAX_CSV_BYTES:
            raise basket_services.CsvRejected(
                f"The file is {upload.size:,} bytes; the limit is "
                f"{basket_services.MAX_CSV_BYTES:,} bytes (2 MB)."
            )
        preview = basket_services.rebalance_preview(
            pm=request.user, content=upload.read(), as_of=timezone.now()
        )
        response = HttpResponse(
            basket_services.rebalance_drift_csv(preview=preview), content_type="text/csv"
        )
        response["Content-Disposition"] = 'attachment; filename="rebalance-drift.csv"'
        return response
