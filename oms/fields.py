"""One project-wide precision for quantities, prices and money: Decimal, never float."""

from decimal import Decimal

from django.db import models

MAX_DIGITS = 28
DECIMAL_PLACES = 8
ZERO = Decimal("0")


def DecimalAmountField(**kwargs) -> models.DecimalField:  # noqa: N802  (reads as a field class)
    kwargs.setdefault("max_digits", MAX_DIGITS)
    kwargs.setdefault("decimal_places", DECIMAL_PLACES)
    return models.DecimalField(**kwargs)


QuantityField = DecimalAmountField
PriceField = DecimalAmountField
MoneyField = DecimalAmountField
