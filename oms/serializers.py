from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from .models import Account, OpsException, Security
from .services import NOTE_MAX


class SecuritySerializer(serializers.ModelSerializer):
    issuer = serializers.CharField(source="issuer.name", read_only=True)

    class Meta:
        model = Security
        fields = [
            "id",
            "symbol",
            "name",
            "asset_class",
            "isin",
            "exchange_mic",
            "currency",
            "sector",
            "industry",
            "issuer",
            "lot_size",
            "tick_size",
            "shares_outstanding",
            "avg_daily_volume",
            "reference_price",
            "reference_price_at",
            "settlement_cycle",
            "active",
        ]


class AccountSerializer(serializers.ModelSerializer):
    custodian = serializers.CharField(source="custodian.code", read_only=True)
    managers = serializers.SlugRelatedField(many=True, read_only=True, slug_field="username")

    class Meta:
        model = Account
        fields = [
            "id",
            "code",
            "name",
            "base_currency",
            "custodian",
            "custodian_account",
            "managers",
            "may_short",
            "is_cash_account",
            "active",
        ]


class OpsExceptionSerializer(serializers.ModelSerializer):
    status = serializers.SerializerMethodField()
    resolved_by = serializers.CharField(
        source="resolved_by.username", read_only=True, allow_null=True, default=None
    )

    class Meta:
        model = OpsException
        fields = [
            "id",
            "kind",
            "source",
            "ref",
            "summary",
            "detail",
            "block_id",
            "order_id",
            "broker_id",
            "status",
            "opened_at",
            "last_seen_at",
            "occurrences",
            "resolved_at",
            "resolved_by",
            "resolution_note",
        ]

    @extend_schema_field(serializers.ChoiceField(choices=["open", "resolved"]))
    def get_status(self, obj: OpsException) -> str:
        return "open" if obj.is_open else "resolved"


class ExceptionResolveSerializer(serializers.Serializer):
    note = serializers.CharField(max_length=NOTE_MAX, help_text="How it was resolved (required).")
