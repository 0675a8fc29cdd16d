"""The gateway's API: kill switches (the engaged ones, their history, release) and orders held
in the outbox (list, release, cancel). Thin: check the input, make one domain call, shape the
output. Traders and admins act; compliance and operations read."""

from __future__ import annotations

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from oms.api import HasRole
from oms.roles import ADMIN, COMPLIANCE, OPERATIONS, TRADER

from . import selectors, services

DESK = HasRole.of(TRADER, ADMIN)
READERS = HasRole.of(TRADER, ADMIN, COMPLIANCE, OPERATIONS)


class KillSwitchListView(APIView):
    """GET: every engaged kill switch (what the blotter header shows); `?history=1` adds the
    latest released ones."""

    permission_classes = [READERS]

    @extend_schema(request=None, responses=OpenApiTypes.OBJECT)
    def get(self, request):
        history = request.query_params.get("history", "")
        if history not in ("", "0", "1"):
            raise serializers.ValidationError({"history": ["Use 1 or 0."]})
        body = {"engaged": selectors.kill_switch_scopes()}
        if history == "1":
            body["history"] = selectors.kill_switch_history()
        return Response(body)


class KillSwitchReleaseView(APIView):
    permission_classes = [DESK]

    class KillSwitchReleaseInput(serializers.Serializer):
        reason = serializers.CharField(max_length=500)

    @extend_schema(
        request=KillSwitchReleaseInput,
        responses={
            200: OpenApiTypes.OBJECT,
            400: OpenApiResponse(description="no reason"),
            404: OpenApiResponse(description="no such engaged kill switch"),
        },
    )
    def post(self, request, switch_id: int):
        data = self.KillSwitchReleaseInput(data=request.data)
        data.is_valid(raise_exception=True)
        result = services.kill_switch_release(
            switch_id=switch_id,
            reason=data.validated_data["reason"],
            actor=request.user,
            as_of=timezone.now(),
        )
        return Response({"released": True, **result})


class HeldOrderListView(APIView):
    """Orders queued while their broker's session was down, held for a trader's decision."""

    permission_classes = [READERS]

    @extend_schema(request=None, responses=OpenApiTypes.OBJECT)
    def get(self, request):
        return Response({"held": selectors.held_orders()})


class HeldOrderReleaseView(APIView):
    permission_classes = [DESK]

    class HeldOrderReleaseInput(serializers.Serializer):
        note = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")

    @extend_schema(
        request=HeldOrderReleaseInput,
        responses={
            200: OpenApiTypes.OBJECT,
            404: OpenApiResponse(description="no such block"),
            409: OpenApiResponse(description="nothing held, or a kill switch stops it"),
        },
    )
    def post(self, request, block_id: int):
        data = self.HeldOrderReleaseInput(data=request.data)
        data.is_valid(raise_exception=True)
        result = services.held_order_release(
            block_id=block_id,
            note=data.validated_data["note"],
            actor=request.user,
            as_of=timezone.now(),
        )
        return Response({"released": True, **result})


class HeldOrderCancelView(APIView):
    """Cancel a held order: it is withdrawn from the outbox, never sent (the blotter's block
    cancel does the same)."""

    permission_classes = [DESK]

    @extend_schema(
        request=None,
        responses={
            200: OpenApiTypes.OBJECT,
            404: OpenApiResponse(description="no such block"),
            409: OpenApiResponse(description="nothing held"),
        },
    )
    def post(self, request, block_id: int):
        result = services.held_order_cancel(
            block_id=block_id, actor=request.user, as_of=timezone.now()
        )
        return Response({"withdrawn": True, **result})
