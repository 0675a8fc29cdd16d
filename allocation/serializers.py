"""What the back-office API reads and writes: the inputs (query parameters and bodies, each
checked: a parameter nobody knows is refused, not ignored) and the outputs (decimals as
strings, dates ISO 8601)."""

from __future__ import annotations

from collections.abc import Mapping

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from oms.api import StandardPagination
from oms.selectors import accounts_visible_to

from . import selectors
from .models import Allocation, BlockDay, OrderShare, SettlementFile

BIGINT_MAX = 2**63 - 1  # ids are bigint: a larger number names nothing
ISO_DATE = ["iso-8601"]


# --- inputs ------------------------------------------------------------------------------------


class StrictInput(serializers.Serializer):
    """An input that refuses names it does not know (a misspelt filter would otherwise widen
    the answer without a word)."""

    refuses_unknown_fields = True  # the schema says additionalProperties: false (oms.schema)

    def to_internal_value(self, data):
        if isinstance(data, Mapping):
            unknown = sorted(str(k) for k in data if k not in self.fields)
            if unknown:
                allowed = ", ".join(self.fields) or "none"
                raise serializers.ValidationError(
                    {k[:60]: [f"Unknown parameter (allowed: {allowed})."] for k in unknown}
                )
        return super().to_internal_value(data)


class PageParams(StrictInput):
    page = serializers.IntegerField(min_value=1, max_value=BIGINT_MAX, required=False)
    page_size = serializers.IntegerField(
        min_value=1, max_value=StandardPagination.max_page_size, required=False
    )


class NoParams(StrictInput):
    """Endpoints that take no query parameters at all."""


class AllocationFilter(PageParams):
    block = serializers.IntegerField(
        min_value=1, max_value=BIGINT_MAX, required=False, help_text="block id"
    )
    account = serializers.CharField(max_length=32, required=False, help_text="account code")
    trade_date = serializers.DateField(
        input_formats=ISO_DATE, required=False, help_text="YYYY-MM-DD"
    )
    include_replaced = serializers.ChoiceField(
        choices=["true", "false"],
        required=False,
        help_text="true: also the versions a rebooking replaced (default false)",
    )

    def validate_block(self, value: int) -> int:
        if not selectors.block_exists(block_id=value):
            raise serializers.ValidationError(f"No block {value}.")
        return value

    def validate_account(self, value: str) -> str:
        user = self.context["request"].user
        if not accounts_visible_to(user).filter(code=value).exists():
            raise serializers.ValidationError(f"No account {value!r}.")
        return value

    def validate_include_replaced(self, value: str) -> bool:
        return value == "true"


class SettlementFileFilter(PageParams):
    trade_date = serializers.DateField(
        input_formats=ISO_DATE, required=False, help_text="YYYY-MM-DD"
    )
    custodian = serializers.CharField(max_length=32, required=False, help_text="custodian code")

    def validate_custodian(self, value: str) -> str:
        if not selectors.custodian_exists(code=value):
            raise serializers.ValidationError(f"No custodian {value!r}.")
        return value


class GenerateInput(StrictInput):
    trade_date = serializers.DateField(input_formats=ISO_DATE, help_text="YYYY-MM-DD")


class FinaliseInput(StrictInput):
    """No body is needed (an empty object will do); the block and date are in the path."""


# --- outputs -----------------------------------------------------------------------------------


@extend_schema_field(
    {
        "type": "object",
        "additionalProperties": {"type": "string", "format": "decimal"},
        "description": 'each fee\'s code and amount, e.g. {"SEC_FEE": "0.42"}',
    }
)
class FeeBreakdownField(serializers.JSONField):
    pass


class DifferencesOut(serializers.Serializer):
    """How a file version differs from the one it replaces (empty for a first version)."""

    added = serializers.ListField(child=serializers.CharField(), required=False)
    removed = serializers.ListField(child=serializers.CharField(), required=False)
    changed = serializers.DictField(
        child=serializers.DictField(
            child=serializers.ListField(child=serializers.CharField(allow_null=True))
        ),
        required=False,
        help_text="trade id -> column -> [before, after]",
    )
    replaces = serializers.CharField(required=False, help_text="the previous version's filename")


@extend_schema_field(DifferencesOut)
class DifferencesField(serializers.JSONField):
    pass


class AllocationOut(serializers.ModelSerializer):
    account = serializers.CharField(source="account.code", help_text="account code")
    symbol = serializers.CharField(source="block.security.symbol")
    fee_breakdown = FeeBreakdownField()

    class Meta:
        model = Allocation
        fields = [
            "id",
            "block",
            "account",
            "trade_date",
            "settle_date",
            "side",
            "symbol",
            "quantity",
            "avg_price",
            "gross_amount",
            "accrued_interest",
            "commission",
            "fees",
            "fee_breakdown",
            "net_amount",
            "currency",
            "version",
            "finalised_at",
            "replaced_at",
        ]
        read_only_fields = fields


class OrderShareOut(serializers.ModelSerializer):
    account = serializers.CharField(source="account.code", help_text="account code")

    class Meta:
        model = OrderShare
        fields = ["order", "account", "quantity"]
        read_only_fields = fields


class BlockDayOut(serializers.ModelSerializer):
    shares = OrderShareOut(many=True, help_text="each order's share of the day")

    class Meta:
        model = BlockDay
        fields = [
            "block",
            "trade_date",
            "settle_date",
            "status",
            "executed",
            "avg_price",
            "street_gross",
            "version",
            "finalised_at",
            "shares",
        ]
        read_only_fields = fields


class SettlementFileOut(serializers.ModelSerializer):
    custodian = serializers.CharField(source="custodian.code", help_text="custodian code")
    differences = DifferencesField()

    class Meta:
        model = SettlementFile
        fields = [
            "id",
            "custodian",
            "trade_date",
            "version",
            "previous",
            "filename",
            "checksum",
            "row_count",
            "differences",
            "created_at",
        ]
        read_only_fields = fields
        extra_kwargs = {"previous": {"help_text": "id of the version this one replaces"}}


class SettlementFileGeneratedOut(SettlementFileOut):
    created = serializers.BooleanField(
        help_text="false: the latest version already says this, and is returned as it is"
    )

    class Meta(SettlementFileOut.Meta):
        fields = [*SettlementFileOut.Meta.fields, "created"]
        read_only_fields = fields
