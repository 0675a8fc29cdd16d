"""The order API's shapes. Input serializers only type the fields; the rules live in
orders.services.order_input_validate. An order request's fields (OrderInputSerializer) are
typed in orders.order_fields, which the basket CSV parses with too."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from oms.api import StrictSerializer, id_field

from .lifecycle import OrderStatus
from .models import Basket, Order, OrderEvent, TimeInForce
from .order_fields import decimal_field


class OrderAmendSerializer(StrictSerializer):
    """What an amend may change; any other field (side, account, symbol...) is a 400."""

    quantity = decimal_field(required=False)
    limit_price = decimal_field(required=False, allow_null=True)
    stop_price = decimal_field(required=False, allow_null=True)
    time_in_force = serializers.ChoiceField(choices=TimeInForce.choices, required=False)
    expire_date = serializers.DateField(required=False, allow_null=True)

    def validate(self, attrs):
        if not attrs:
            raise serializers.ValidationError(
                "Send at least one of quantity, limit_price, stop_price, time_in_force, "
                "expire_date."
            )
        return attrs


class OrderCancelSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, max_length=500, default="")


class OrderSerializer(serializers.ModelSerializer):
    account = serializers.CharField(source="account.code", read_only=True)
    symbol = serializers.CharField(source="security.symbol", read_only=True)
    pm = serializers.CharField(source="pm.username", read_only=True)
    status = serializers.ChoiceField(choices=OrderStatus.choices, read_only=True)

    class Meta:
        model = Order
        fields = [
            "id",
            "account",
            "symbol",
            "side",
            "quantity",
            "order_type",
            "limit_price",
            "stop_price",
            "time_in_force",
            "expire_date",
            "instructions",
            "status",
            "cum_qty",
            "leaves_qty",
            "avg_price",
            "pm",
            "received_at",
            "updated_at",
            "basket",
            "block",
            "compliance_status",
            "reference_price_at_entry",
            "estimated_notional",
            "version",
        ]
        read_only_fields = fields


# The order list reads rows, not model instances: OrderSerializer's output from values()
# (order_rows). Each field's column is derived from the serializer itself: its source with
# "__" for ".", a relation's key column for a relation given as its primary key.


@functools.cache
def _row_fields() -> list[tuple[str, str, serializers.Field | None]]:
    """(name, values() column, field formatting it or None for a key given as it is)."""
    return [
        (name, f"{field.source}_id", None)
        if isinstance(field, serializers.RelatedField)
        else (name, field.source.replace(".", "__"), field)
        for name, field in OrderSerializer().fields.items()
    ]


def order_row_columns() -> list[str]:
    """The values() columns order_rows formats, in OrderSerializer's field order."""
    return [column for _, column, _ in _row_fields()]


def order_rows(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """OrderSerializer(orders, many=True).data for the same orders read as
    values(*order_row_columns()): the same JSON through each field's own to_representation,
    without a model instance per row, its related rows, or the serializer's attribute walk
    (half of a 100-row page's time on a million-order firm: bench/scale_bench.py)."""
    fields = _row_fields()
    return [
        {
            name: value if value is None or field is None else field.to_representation(value)
            for name, column, field in fields
            for value in (row[column],)
        }
        for row in rows
    ]


class OrderEventSerializer(serializers.ModelSerializer):
    actor = serializers.CharField(source="actor.username", read_only=True, default=None)

    class Meta:
        model = OrderEvent
        fields = ["id", "at", "kind", "from_status", "to_status", "actor", "details"]
        read_only_fields = fields


class OrderComplianceResultSerializer(serializers.Serializer):
    rule = serializers.CharField()
    rule_id = serializers.IntegerField(allow_null=True)
    version = serializers.IntegerField(allow_null=True)
    kind = serializers.CharField()
    severity = serializers.CharField()
    outcome = serializers.CharField()
    message = serializers.CharField()
    value_before = serializers.CharField(allow_null=True)
    value_after = serializers.CharField(allow_null=True)
    limit = serializers.CharField(allow_null=True)
    headroom = serializers.CharField(allow_null=True)
    max_passing_quantity = serializers.CharField(allow_null=True)


class OrderComplianceSummarySerializer(serializers.Serializer):
    verdict = serializers.ChoiceField(choices=["PASS", "WARN", "BLOCK"])
    results = OrderComplianceResultSerializer(many=True)


class OrderFillSerializer(serializers.Serializer):
    at = serializers.DateTimeField()
    quantity = serializers.CharField(help_text="Negative for a bust taken back")
    price = serializers.CharField()


class OrderAllocationSerializer(serializers.Serializer):
    trade_date = serializers.DateField()
    settle_date = serializers.DateField()
    quantity = decimal_field()
    avg_price = decimal_field()
    gross_amount = decimal_field()
    accrued_interest = decimal_field()
    commission = decimal_field()
    fees = decimal_field()
    net_amount = decimal_field()
    currency = serializers.CharField()
    version = serializers.IntegerField()


class OrderActionsSerializer(serializers.Serializer):
    cancel = serializers.BooleanField()
    amend = serializers.BooleanField()
    amend_fields = serializers.ListField(child=serializers.CharField())
    override = serializers.BooleanField(help_text="The PM may acknowledge the warning")


class OrderDetailSerializer(OrderSerializer):
    events = OrderEventSerializer(many=True, read_only=True)
    compliance = serializers.SerializerMethodField()
    security_name = serializers.CharField(source="security.name", read_only=True)
    currency = serializers.CharField(source="security.currency", read_only=True)
    tick_size = decimal_field(source="security.tick_size", read_only=True)
    fills = serializers.SerializerMethodField()
    allocations = serializers.SerializerMethodField()
    actions = serializers.SerializerMethodField()

    class Meta(OrderSerializer.Meta):
        fields = [
            *OrderSerializer.Meta.fields,
            "security_name",
            "currency",
            "tick_size",
            "events",
            "compliance",
            "fills",
            "allocations",
            "actions",
        ]
        read_only_fields = fields

    @extend_schema_field(OrderComplianceSummarySerializer(allow_null=True))
    def get_compliance(self, order):
        return self.context.get("compliance")

    @extend_schema_field(OrderFillSerializer(many=True))
    def get_fills(self, order):
        return OrderFillSerializer(self.context.get("fills", []), many=True).data

    @extend_schema_field(OrderAllocationSerializer(many=True))
    def get_allocations(self, order):
        return OrderAllocationSerializer(self.context.get("allocations", []), many=True).data

    @extend_schema_field(OrderActionsSerializer)
    def get_actions(self, order):
        return self.context.get("actions")


class BasketUploadSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="CSV, UTF-8, header = the order API's field names")
    confirm = serializers.BooleanField(
        default=False, help_text="false: preview only; true: create every valid line"
    )
    name = serializers.CharField(required=False, allow_blank=True, max_length=200, default="")
    expected_sha256 = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=64,
        default="",
        help_text="The preview's sha256: confirm refuses a file that changed since",
    )


class LineErrorSerializer(serializers.Serializer):
    column = serializers.CharField(help_text="The CSV column, empty for the whole line")
    reason = serializers.CharField()


class BasketLineSerializer(serializers.Serializer):
    line = serializers.IntegerField()
    valid = serializers.BooleanField()
    data = serializers.DictField(child=serializers.CharField())
    errors = LineErrorSerializer(many=True)


class BasketSerializer(serializers.ModelSerializer):
    class Meta:
        model = Basket
        fields = ["id", "name", "kind", "created_at", "source_filename", "line_count"]
        read_only_fields = fields


class BasketPreviewSerializer(serializers.Serializer):
    sha256 = serializers.CharField()
    line_count = serializers.IntegerField()
    valid_count = serializers.IntegerField(help_text="Orders that confirm creates")
    error_count = serializers.IntegerField()
    lines = BasketLineSerializer(many=True)
    orders = BasketLineSerializer(many=True, required=False, help_text="Rebalance only")
    compliance = serializers.DictField(
        child=serializers.IntegerField(),
        required=False,
        help_text="Rebalance only: how many orders compliance would PASS, WARN and BLOCK",
    )
    basket = BasketSerializer(required=False, allow_null=True)
    order_ids = serializers.ListField(child=id_field(), required=False)


def preview_data(preview, basket=None) -> dict:
    def line(r) -> dict:
        return {"line": r.line, "valid": r.valid, "data": r.data, "errors": r.errors}

    body = {
        "sha256": preview.sha256,
        "line_count": len(preview.lines),
        "valid_count": len(preview.valid_items),
        "error_count": preview.error_count,
        "lines": [line(r) for r in preview.lines],
    }
    if preview.is_rebalance:
        body["orders"] = [line(r) for r in preview.orders]
        body["compliance"] = preview.verdict_counts
    if basket is not None:
        body["basket"] = BasketSerializer(basket).data
        body["order_ids"] = list(basket.orders.order_by("pk").values_list("pk", flat=True))
    return body
