"""An order request's fields typed: text, choices, decimals and dates parsed and checked one by
one, with the messages a caller shows per field. The order API's serializer and every basket
CSV line parse with it; the rules across fields and reference data are
orders.services.order_input_validate, which both call next."""

from __future__ import annotations

from collections.abc import Mapping

from rest_framework import serializers

from oms.fields import DECIMAL_PLACES, MAX_DIGITS

from .models import OrderType, Side, TimeInForce

_UPPER = ("account", "symbol", "side", "order_type", "time_in_force")


def decimal_field(**kwargs) -> serializers.DecimalField:
    return serializers.DecimalField(max_digits=MAX_DIGITS, decimal_places=DECIMAL_PLACES, **kwargs)


class OrderInputSerializer(serializers.Serializer):
    """One order request, as the API and every basket CSV line send it."""

    account = serializers.CharField(max_length=32, help_text="Account code")
    symbol = serializers.CharField(max_length=32)
    side = serializers.ChoiceField(choices=Side.choices)
    quantity = decimal_field()
    order_type = serializers.ChoiceField(choices=OrderType.choices)
    limit_price = decimal_field(required=False, allow_null=True)
    stop_price = decimal_field(required=False, allow_null=True)
    time_in_force = serializers.ChoiceField(choices=TimeInForce.choices, default=TimeInForce.DAY)
    expire_date = serializers.DateField(required=False, allow_null=True)
    instructions = serializers.CharField(
        required=False, allow_blank=True, max_length=2000, default=""
    )

    def to_internal_value(self, data):
        # Only a mapping is normalised; anything else gets DRF's "expected a dictionary" 400.
        if isinstance(data, Mapping):
            data = data.copy()
            for name in _UPPER:
                value = data.get(name)
                if isinstance(value, str):
                    # Codes are upper case; "buy" and " aapl " mean BUY and AAPL.
                    data[name] = value.strip().upper() if name != "account" else value.strip()
        return super().to_internal_value(data)
