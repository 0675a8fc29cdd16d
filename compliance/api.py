"""Compliance API: the order ticket's what-if check and overrides (thin views over services)."""

from __future__ import annotations

from django.utils import timezone
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from oms.api import HasRole
from oms.roles import ADMIN, COMPLIANCE, PM
from orders.selectors import order_get

from . import services

RESULT_FIELDS = {
    "rule": serializers.CharField(),
    "rule_id": serializers.IntegerField(),
    "version": serializers.IntegerField(),
    "kind": serializers.CharField(),
    "severity": serializers.CharField(),
    "outcome": serializers.CharField(),
    "message": serializers.CharField(),
    "value_before": serializers.CharField(allow_null=True),
    "value_after": serializers.CharField(allow_null=True),
    "limit": serializers.CharField(allow_null=True),
    "headroom": serializers.CharField(allow_null=True),
    "max_passing_quantity": serializers.CharField(allow_null=True),
}


class CheckInput(serializers.Serializer):
    account = serializers.CharField()
    symbol = serializers.CharField()
    side = serializers.CharField()
    quantity = serializers.CharField()
    order_type = serializers.CharField(required=False, default="MARKET")
    limit_price = serializers.CharField(required=False, allow_null=True, allow_blank=True)
    stop_price = serializers.CharField(required=False, allow_null=True, allow_blank=True)
    time_in_force = serializers.CharField(required=False, default="DAY")
    expire_date = serializers.CharField(required=False, allow_null=True, allow_blank=True)
    instructions = serializers.CharField(required=False, allow_blank=True)


class ComplianceCheckView(APIView):
    """What would this order get? Runs every rule as a what-if; saves nothing."""

    permission_classes = [IsAuthenticated]
    schema_errors = {"404": "no such account the caller may trade, or no such symbol"}

    @extend_schema(
        request=CheckInput,
        responses=inline_serializer(
            "ComplianceCheck",
            {
                "verdict": serializers.CharField(),
                "results": inline_serializer("ComplianceResult", RESULT_FIELDS, many=True),
                "review": inline_serializer(
                    "TicketReview",
                    {
                        "security_currency": serializers.CharField(),
                        "price": serializers.CharField(allow_null=True),
                        "price_source": serializers.CharField(help_text="limit or reference"),
                        "notional_security": serializers.CharField(allow_null=True),
                        "currency": serializers.CharField(help_text="the account's currency"),
                        "notional": serializers.CharField(allow_null=True),
                        "nav": serializers.CharField(allow_null=True),
                        "pct_nav": serializers.CharField(allow_null=True),
                        "fx_error": serializers.CharField(required=False),
                    },
                ),
            },
        ),
    )
    def post(self, request):
        data = CheckInput(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        fields.pop("instructions", None)
        result = services.compliance_ticket_check(
            actor=request.user, as_of=timezone.now(), **fields
        )
        return Response(result)


class OverrideInput(serializers.Serializer):
    order_id = serializers.IntegerField()
    reason = serializers.CharField(max_length=2000)


class OverrideView(APIView):
    """Lift a warning (the order's PM) or a block (Compliance, not the order's PM)."""

    # Trader and Operations have no override right; a PM only on orders they may see.
    permission_classes = [HasRole.of(PM, COMPLIANCE, ADMIN)]
    schema_errors = {
        "404": "no such order (or not the caller's)",
        "409": "the order is not waiting for an override",
    }

    @extend_schema(
        request=OverrideInput,
        responses={
            201: inline_serializer(
                "ComplianceOverride",
                {
                    "id": serializers.IntegerField(),
                    "order_id": serializers.IntegerField(),
                    "verdict": serializers.CharField(),
                    "reason": serializers.CharField(),
                    "status": serializers.CharField(),
                },
            )
        },
    )
    def post(self, request):
        data = OverrideInput(data=request.data)
        data.is_valid(raise_exception=True)
        # Another PM's order is a 404 before anything about its state is said.
        order_get(user=request.user, order_id=data.validated_data["order_id"])
        override = services.compliance_override(
            order_id=data.validated_data["order_id"],
            reason=data.validated_data["reason"],
            actor=request.user,
            as_of=timezone.now(),
        )
        override.order.refresh_from_db(fields=["status"])
        return Response(
            {
                "id": override.pk,
                "order_id": override.order_id,
                "verdict": override.verdict,
                "reason": override.reason,
                "status": override.order.status,
            },
            status=201,
        )
