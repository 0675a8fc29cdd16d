from rest_framework import serializers

from .models import Account, Security


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
