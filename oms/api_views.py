from django.contrib.auth import authenticate
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status, viewsets
from rest_framework.authtoken.models import Token
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from audit.services import audit_record

from .models import Security
from .selectors import accounts_visible_to, security_search
from .serializers import AccountSerializer, SecuritySerializer


class TokenLoginSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=256, trim_whitespace=False)


class TokenLoginView(APIView):
    """POST username and password, get the API token (the one endpoint open to anonymous)."""

    permission_classes = [AllowAny]
    authentication_classes: list = []

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


class SecurityViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = SecuritySerializer
    filterset_fields = ["symbol", "sector", "asset_class", "active"]

    def get_queryset(self):
        return Security.objects.select_related("issuer").order_by("symbol")

    @extend_schema(
        parameters=[OpenApiParameter("q", str, description="symbol prefix, name or ISIN")]
    )
    def search(self, request):
        items = security_search(query=request.query_params.get("q", ""))
        return Response(SecuritySerializer(items, many=True).data)


class AccountViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = AccountSerializer
    filterset_fields = ["code", "active"]

    def get_queryset(self):
        return accounts_visible_to(self.request.user).prefetch_related("managers").order_by("code")
