import django_filters
from django.contrib.auth import authenticate
from django.utils import timezone
from drf_spectacular.utils import (
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    inline_serializer,
)
from rest_framework import serializers, status, viewsets
from rest_framework.authtoken.models import Token
from rest_framework.decorators import action
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from audit.services import audit_record

from . import services
from .api import HasRole, query_or_400
from .errors import NotFound
from .forms import ExceptionFilterForm, SecuritySearchQuery
from .models import Account, OpsException, Security
from .roles import EXCEPTION_READERS, EXCEPTION_RESOLVERS
from .schema import form_parameters
from .selectors import accounts_visible_to, exception_get, exceptions_list, security_search
from .serializers import (
    AccountSerializer,
    ExceptionResolveSerializer,
    OpsExceptionSerializer,
    SecuritySerializer,
)


class TokenLoginSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=256, trim_whitespace=False)


class TokenLoginView(APIView):
    """POST username and password, get the API token (the one endpoint open to anonymous)."""

    permission_classes = [AllowAny]
    authentication_classes: list = []
    schema_errors = {"429": "too many failed logins for this username and address: wait"}

    @extend_schema(
        request=TokenLoginSerializer,
        responses={200: inline_serializer("TokenResponse", {"token": serializers.CharField()})},
    )
    def post(self, request):
        credentials = TokenLoginSerializer(data=request.data)
        credentials.is_valid(raise_exception=True)
        username = credentials.validated_data["username"]
        password = credentials.validated_data["password"]
        user = authenticate(request=request, username=username, password=password)
        # django-axes counts failures per username and address and refuses while locked out.
        if getattr(request, "axes_locked_out", False) or getattr(
            request._request, "axes_locked_out", False
        ):
            return Response(
                {
                    "error": {
                        "code": "locked_out",
                        "message": "Too many failed logins; try again later.",
                    }
                },
                status=status.HTTP_429_TOO_MANY_REQUESTS,
            )
        if user is None or not user.is_active:
            return Response(
                {
                    "error": {
                        "code": "authentication_failed",
                        "message": "Invalid username or password.",
                    }
                },
                status=status.HTTP_400_BAD_REQUEST,
            )
        token, _ = Token.objects.get_or_create(user=user)
        audit_record(actor=user, action="auth.token", obj=user)
        return Response({"token": token.key})


@extend_schema_field({"type": "string", "enum": ["true", "false"]})
class YesNoFilter(django_filters.ChoiceFilter):
    """true or false, anything else a 400: django-filter's BooleanFilter reads "AAA" as "not
    given" and answers every row."""

    def __init__(self, **kwargs):
        super().__init__(choices=[("true", "true"), ("false", "false")], **kwargs)

    def filter(self, qs, value):
        return qs.filter(**{self.field_name: value == "true"}) if value else qs


def _yes_no() -> YesNoFilter:
    return YesNoFilter()


class SecurityFilter(django_filters.FilterSet):
    active = _yes_no()

    class Meta:
        model = Security
        fields = ["symbol", "sector", "asset_class", "active"]


class AccountFilter(django_filters.FilterSet):
    active = _yes_no()

    class Meta:
        model = Account
        fields = ["code", "active"]


class SecurityViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = SecuritySerializer
    filterset_class = SecurityFilter

    def get_queryset(self):
        return Security.objects.select_related("issuer").order_by("symbol")

    @extend_schema(
        parameters=form_parameters(SecuritySearchQuery, q="symbol prefix, name or ISIN"),
        responses=SecuritySerializer(many=True),
        filters=False,
    )
    def search(self, request):
        query = query_or_400(SecuritySearchQuery, request.query_params).cleaned_data
        items = security_search(query=query["q"])
        return Response(SecuritySerializer(items, many=True).data)


class AccountViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = AccountSerializer
    filterset_class = AccountFilter

    def get_queryset(self):
        return accounts_visible_to(self.request.user).prefetch_related("managers").order_by("code")


EXCEPTION_FILTERS = form_parameters(
    ExceptionFilterForm,
    status="default all (open first)",
    kind="e.g. booking_failed, quarantined_report",
    source="the app that opened it, e.g. allocation",
    q="text in the summary or the ref",
    since="opened at or after (a date: its midnight UTC)",
    until="opened before (a date: the whole day counts)",
)


class ExceptionViewSet(viewsets.GenericViewSet):
    """The exceptions queue: Operations, traders and compliance read it; Operations, traders
    and admins resolve with a note. PMs have no access (an exception may name any account)."""

    serializer_class = OpsExceptionSerializer
    # Only for the schema (the id is the model's integer key); the views read through selectors.
    queryset = OpsException.objects.none()
    filter_backends: list = []  # ExceptionFilterForm reads and checks the query parameters

    @staticmethod
    def exception_id(pk: str) -> int:
        """Any id in the path reaches the view, so one that is not a number is the same JSON
        404 as a number no exception has."""
        if not pk.isascii() or not pk.isdigit():
            raise NotFound(f"Exception {pk[:40]!r} not found.")
        return int(pk)

    def get_permissions(self):
        allowed = EXCEPTION_RESOLVERS if self.action == "resolve" else EXCEPTION_READERS
        return [HasRole.of(*sorted(allowed))()]

    @extend_schema(parameters=EXCEPTION_FILTERS, responses=OpsExceptionSerializer(many=True))
    def list(self, request):
        form = query_or_400(ExceptionFilterForm, request.query_params)
        page = self.paginate_queryset(exceptions_list(**form.selector_kwargs()))
        return self.get_paginated_response(OpsExceptionSerializer(page, many=True).data)

    @extend_schema(
        responses={
            200: OpsExceptionSerializer,
            404: OpenApiResponse(description="no such exception"),
        }
    )
    def retrieve(self, request, pk: str):
        return Response(
            OpsExceptionSerializer(exception_get(exception_id=self.exception_id(pk))).data
        )

    @extend_schema(
        request=ExceptionResolveSerializer,
        responses={
            200: OpsExceptionSerializer,
            400: OpenApiResponse(description="no note"),
            404: OpenApiResponse(description="no such exception"),
            409: OpenApiResponse(description="already resolved"),
        },
    )
    @action(detail=True, methods=["post"])
    def resolve(self, request, pk: str):
        body = ExceptionResolveSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        exception = services.exception_resolve(
            exception_id=self.exception_id(pk),
            note=body.validated_data["note"],
            actor=request.user,
            as_of=timezone.now(),
        )
        return Response(OpsExceptionSerializer(exception).data)
