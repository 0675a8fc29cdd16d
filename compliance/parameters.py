"""What each rule kind's parameters look like, validated with clear errors (admin form and
services both go through rule_parameters_clean)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from rest_framework import serializers

from oms.money import decimal_text

from .models import RuleKind

PCT = {"max_digits": 12, "decimal_places": 6, "min_value": Decimal("0")}
AMOUNT = {"max_digits": 28, "decimal_places": 8, "min_value": Decimal("0")}


class _Strict(serializers.Serializer):
    """Unknown keys are an error, not silently ignored: a typo must not disable a limit."""

    def unknown(self) -> str | None:
        unknown = sorted(set(self.initial_data) - set(self.fields))
        if not unknown:
            return None
        allowed = ", ".join(self.fields) or "none"
        return f"Unknown parameter(s) {', '.join(unknown)} (allowed: {allowed})"


class NoParameters(_Strict):
    pass


class RestrictedListParameters(_Strict):
    sides = serializers.ListField(
        child=serializers.ChoiceField(["BUY", "SELL", "SELL_SHORT", "BUY_TO_COVER"]),
        required=False,
        allow_empty=False,
        help_text="Sides the restriction applies to (default: all).",
    )


class MaxPctParameters(_Strict):
    max_pct = serializers.DecimalField(max_value=Decimal("100"), **PCT)


class SectorParameters(MaxPctParameters):
    sectors = serializers.ListField(
        child=serializers.CharField(), required=False, allow_empty=False
    )


class OrderSizeParameters(_Strict):
    max_quantity = serializers.DecimalField(required=False, **AMOUNT)
    max_notional = serializers.DecimalField(required=False, **AMOUNT)

    def validate(self, attrs):
        if "max_quantity" not in attrs and "max_notional" not in attrs:
            raise serializers.ValidationError("Give max_quantity, max_notional or both.")
        return attrs


class PriceBandParameters(_Strict):
    max_deviation_pct = serializers.DecimalField(max_value=Decimal("1000"), **PCT)


class DuplicateParameters(_Strict):
    window_minutes = serializers.IntegerField(min_value=1, max_value=7 * 24 * 60)


SCHEMAS: dict[str, type[_Strict]] = {
    RuleKind.RESTRICTED_LIST: RestrictedListParameters,
    RuleKind.ISSUER_CONCENTRATION: MaxPctParameters,
    RuleKind.SECTOR_CONCENTRATION: SectorParameters,
    RuleKind.FIRM_OWNERSHIP: MaxPctParameters,
    RuleKind.ORDER_SIZE: OrderSizeParameters,
    RuleKind.PRICE_BAND: PriceBandParameters,
    RuleKind.ADV_PARTICIPATION: MaxPctParameters,
    RuleKind.NO_SHORT: NoParameters,
    RuleKind.CASH: NoParameters,
    RuleKind.OPPOSITE_SIDE: NoParameters,
    RuleKind.DUPLICATE_ORDER: DuplicateParameters,
}

EXAMPLES: dict[str, dict[str, Any]] = {
    RuleKind.RESTRICTED_LIST: {},
    RuleKind.ISSUER_CONCENTRATION: {"max_pct": "10"},
    RuleKind.SECTOR_CONCENTRATION: {"max_pct": "25"},
    RuleKind.FIRM_OWNERSHIP: {"max_pct": "5"},
    RuleKind.ORDER_SIZE: {"max_quantity": "100000", "max_notional": "5000000"},
    RuleKind.PRICE_BAND: {"max_deviation_pct": "5"},
    RuleKind.ADV_PARTICIPATION: {"max_pct": "10"},
    RuleKind.NO_SHORT: {},
    RuleKind.CASH: {},
    RuleKind.OPPOSITE_SIDE: {},
    RuleKind.DUPLICATE_ORDER: {"window_minutes": 5},
}


def _flatten(detail, prefix: str = "") -> list[str]:
    if isinstance(detail, dict):
        out = []
        for key, value in detail.items():
            label = "" if key == "non_field_errors" else f"{key}: "
            out.extend(_flatten(value, prefix + label))
        return out
    if isinstance(detail, list):
        return [m for item in detail for m in _flatten(item, prefix)]
    return [f"{prefix}{detail}"]


def rule_parameters_clean(*, kind: str, parameters: Any) -> dict[str, Any]:
    """The parameters in canonical form (decimals as strings), or ValidationError naming each
    problem and showing an example."""
    schema = SCHEMAS.get(kind)
    if schema is None:
        raise ValidationError(f"Unknown rule kind {kind!r}.")
    if not isinstance(parameters, dict):
        raise ValidationError(f"Parameters must be a JSON object, e.g. {EXAMPLES[kind]}.")
    serializer = schema(data=parameters)
    problems = [] if serializer.is_valid() else _flatten(serializer.errors)
    unknown = serializer.unknown()
    if unknown:
        problems.insert(0, unknown)
    if problems:
        problems = "; ".join(p.rstrip(".") for p in problems)
        raise ValidationError(
            f"Invalid parameters for {RuleKind(kind).label}: {problems}. Example: {EXAMPLES[kind]}"
        )
    return {
        # 10, 10.0 and 1E+1 are one limit: store the plain form.
        key: decimal_text(value) if isinstance(value, Decimal) else value
        for key, value in serializer.validated_data.items()
    }
