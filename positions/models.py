from django.db import models
from django.db.models import Q

from oms.fields import MoneyField, PriceField, QuantityField
from oms.models import Account, Security


class Position(models.Model):
    """What one account holds of one security, kept current by every fill."""

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="positions")
    security = models.ForeignKey(Security, on_delete=models.PROTECT, related_name="positions")
    quantity = QuantityField(default=0)
    avg_cost = PriceField(default=0)
    cost_basis = MoneyField(default=0)
    realized_pnl = MoneyField(default=0)
    opening_quantity = QuantityField(default=0)
    opening_avg_cost = PriceField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["account", "security"]
        constraints = [
            models.UniqueConstraint(fields=["account", "security"], name="position_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.account_id}/{self.security_id}: {self.quantity}"


class CashBalance(models.Model):
    """Cash of one account in one currency: settled now, and the opening balance of the day."""

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="cash_balances")
    currency = models.CharField(max_length=3)
    settled = MoneyField(default=0)
    opening_settled = MoneyField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["account", "currency"]
        constraints = [
            models.UniqueConstraint(fields=["account", "currency"], name="cash_balance_unique"),
            models.CheckConstraint(
                condition=Q(currency__regex=r"^[A-Z]{3}$"), name="cash_currency_iso"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.account_id} {self.currency} {self.settled}"
