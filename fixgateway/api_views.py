"""The gateway's API: kill switches (the engaged ones, their history, release), orders held
in the outbox (list, release, cancel), the FIX message monitor, FIX sessions (status,
reset of sequence numbers) and orders unconfirmed at their broker (list, cancel locally,
resend, confirm). Thin: check the input, make one domain call, shape the
output. Traders and admins act; compliance and operations read."""

from __future__ import annotations

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import generics, serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from oms.api import HasRole, NoQuery, query_or_400
from oms.roles import ADMIN, COMPLIANCE, OPERATIONS, TRADER
from oms.schema import form_parameters

from . import killswitch, selectors, sending, sessions, unconfirmed
from .forms import FixMessageFilterForm, KillSwitchQuery
from .models import FixMessage

DESK = HasRole.of(TRADER, ADMIN)
READERS = HasRole.of(TRADER, ADMIN, COMPLIANCE, OPERATIONS)


class KillSwitchListView(APIView):
    """GET: every engaged kill switch (what the blotter header shows); `?history=1` adds the
    latest released ones."""

    permission_classes = [READERS]

    @extend_schema(
        request=None, responses=OpenApiTypes.OBJECT, parameters=form_parameters(KillSwitchQuery)
    )
    def get(self, request):
        history = query_or_400(KillSwitchQuery, request.query_params).cleaned_data["history"]
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
        result = killswitch.kill_switch_release(
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
        query_or_400(NoQuery, request.query_params)
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
        result = sending.held_order_release(
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
        result = sending.held_order_cancel(
            block_id=block_id, actor=request.user, as_of=timezone.now()
        )
        return Response({"withdrawn": True, **result})


MESSAGE_FILTERS = form_parameters(
    FixMessageFilterForm,
    broker="the broker's code (one FIX session)",
    direction="default both",
    msg_type="MsgType (35): D, F, G, H, Q, 8, 9, 3, j",
    cl_ord_id="ClOrdID (11) or OrigClOrdID (41)",
    order_id="the broker's OrderID (37)",
    exec_id="ExecID (17)",
    since="at or after (a date: its midnight UTC)",
    until="before (a date: the whole day counts)",
)


class FixFieldSerializer(serializers.Serializer):
    tag = serializers.IntegerField()
    name = serializers.CharField(help_text="from the QuickFIX data dictionary; empty if unknown")
    value = serializers.CharField()
    meaning = serializers.CharField(help_text="an enumerated value's name, else empty")


class FixMessageSerializer(serializers.Serializer):
    """A message as sent or received (`selectors.fix_message_row`)."""

    id = serializers.IntegerField()
    broker = serializers.CharField()
    direction = serializers.ChoiceField(choices=FixMessage.Direction.choices)
    msg_type = serializers.CharField()
    msg_type_name = serializers.CharField()
    seq_num = serializers.IntegerField(allow_null=True)
    cl_ord_id = serializers.CharField()
    orig_cl_ord_id = serializers.CharField()
    order_id = serializers.CharField()
    exec_id = serializers.CharField()
    at = serializers.DateTimeField()
    raw = serializers.CharField(help_text="the message, SOH shown as |")
    fields = FixFieldSerializer(many=True)

    def to_representation(self, instance):
        return selectors.fix_message_row(instance)


class FixMessageListView(generics.ListAPIView):
    """The FIX message monitor: application messages sent and received, newest first, paged,
    each field named. A bad filter is a 400 naming the parameter."""

    permission_classes = [READERS]
    serializer_class = FixMessageSerializer
    filter_backends: list = []  # FixMessageFilterForm reads and checks the query parameters

    def get_queryset(self):
        form = query_or_400(FixMessageFilterForm, self.request.query_params)
        return selectors.fix_messages(**form.selector_kwargs())

    @extend_schema(parameters=MESSAGE_FILTERS)
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class SessionListView(APIView):
    """GET: every active broker's FIX session: "up", "down" (within seconds of its gateway
    dying) or "sequence_reset_required", why, and its sequence numbers."""

    permission_classes = [READERS]

    @extend_schema(request=None, responses=OpenApiTypes.OBJECT)
    def get(self, request):
        query_or_400(NoQuery, request.query_params)
        return Response({"sessions": selectors.session_statuses()})


class SessionSequenceResetView(APIView):
    """Reset a session's sequence numbers (agreed with the broker): a new store, both numbers
    at 1 unless given, and logons again. Audited."""

    permission_classes = [DESK]

    class SessionSequenceResetInput(serializers.Serializer):
        reason = serializers.CharField(max_length=500)
        next_sender_seq_num = serializers.IntegerField(
            min_value=1, max_value=2_147_483_647, required=False
        )
        next_target_seq_num = serializers.IntegerField(
            min_value=1, max_value=2_147_483_647, required=False
        )

    @extend_schema(
        request=SessionSequenceResetInput,
        responses={
            202: OpenApiTypes.OBJECT,
            400: OpenApiResponse(description="no reason, or a number below 1"),
            404: OpenApiResponse(description="no such broker"),
        },
    )
    def post(self, request, broker_id: int):
        data = self.SessionSequenceResetInput(data=request.data)
        data.is_valid(raise_exception=True)
        result = sessions.session_sequence_reset_request(
            broker_id=broker_id, actor=request.user, as_of=timezone.now(), **data.validated_data
        )
        return Response({"requested": True, **result}, status=202)


class UnconfirmedOrderListView(APIView):
    """Orders the broker cannot confirm (it reset its session, or refused a status request)."""

    permission_classes = [READERS]

    @extend_schema(request=None, responses=OpenApiTypes.OBJECT)
    def get(self, request):
        query_or_400(NoQuery, request.query_params)
        return Response({"unconfirmed": selectors.unconfirmed_orders()})


class UnconfirmedCancelView(APIView):
    """Cancel an unconfirmed order here only (nothing is sent): the block ends CANCELLED."""

    permission_classes = [DESK]

    class UnconfirmedCancelInput(serializers.Serializer):
        reason = serializers.CharField(max_length=500)

    @extend_schema(
        request=UnconfirmedCancelInput,
        responses={
            200: OpenApiTypes.OBJECT,
            400: OpenApiResponse(description="no reason"),
            404: OpenApiResponse(description="no such block"),
            409: OpenApiResponse(description="not unconfirmed"),
        },
    )
    def post(self, request, block_id: int):
        data = self.UnconfirmedCancelInput(data=request.data)
        data.is_valid(raise_exception=True)
        result = unconfirmed.unconfirmed_cancel_locally(
            block_id=block_id,
            reason=data.validated_data["reason"],
            actor=request.user,
            as_of=timezone.now(),
        )
        return Response({"cancelled": True, **result})


class UnconfirmedResendView(APIView):
    """Send an unconfirmed order again as a new order (new ClOrdID, for what is left)."""

    permission_classes = [DESK]

    class UnconfirmedResendInput(serializers.Serializer):
        note = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")

    @extend_schema(
        request=UnconfirmedResendInput,
        responses={
            200: OpenApiTypes.OBJECT,
            404: OpenApiResponse(description="no such block"),
            409: OpenApiResponse(
                description="not unconfirmed, nothing left, or a kill switch stops it"
            ),
        },
    )
    def post(self, request, block_id: int):
        data = self.UnconfirmedResendInput(data=request.data)
        data.is_valid(raise_exception=True)
        result = unconfirmed.unconfirmed_resend(
            block_id=block_id,
            note=data.validated_data["note"],
            actor=request.user,
            as_of=timezone.now(),
        )
        return Response({"resent": True, **result})


class UnconfirmedConfirmView(APIView):
    """The broker confirmed the order another way: it stays as it is, the flag goes."""

    permission_classes = [DESK]

    class UnconfirmedConfirmInput(serializers.Serializer):
        note = serializers.CharField(max_length=500)

    @extend_schema(
        request=UnconfirmedConfirmInput,
        responses={
            200: OpenApiTypes.OBJECT,
            400: OpenApiResponse(description="no note"),
            404: OpenApiResponse(description="no such block"),
            409: OpenApiResponse(description="not unconfirmed"),
        },
    )
    def post(self, request, block_id: int):
        data = self.UnconfirmedConfirmInput(data=request.data)
        data.is_valid(raise_exception=True)
        result = unconfirmed.unconfirmed_confirm(
            block_id=block_id,
            note=data.validated_data["note"],
            actor=request.user,
            as_of=timezone.now(),
        )
        return Response({"confirmed": True, **result})
