from django.db import models
from django.db.models import F, Q

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
    # Ledger rows up to this id are already inside the opening balance (set by a start-of-day
    # load), so a recompute replays only the rows after it.
    opening_ledger_id = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["account", "security"]
        constraints = [
            models.UniqueConstraint(fields=["account", "security"], name="position_unique"),
            models.CheckConstraint(condition=Q(avg_cost__gte=0), name="position_avg_cost_nonneg"),
        ]

    def __str__(self) -> str:
        return f"{self.account_id}/{self.security_id}: {self.quantity}"


class CashBalance(models.Model):
    """Cash of one account in one currency.

    `settled` is cash that has settled (opening plus every movement whose settle date has come);
    `projected` is what it will be once every booked movement settles.
    """

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="cash_balances")
    currency = models.CharField(max_length=3)
    settled = MoneyField(default=0)
    projected = MoneyField(default=0)
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


class PositionFill(models.Model):
    """The ledger: one row per booking of a fill into a position, and one per reversal.

    A booking has quantity > 0; its reversal has the same quantity negated and points at it.
    Replaying the opening balance and the bookings no reversal points at gives the position.
    """

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="+")
    security = models.ForeignKey(Security, on_delete=models.PROTECT, related_name="+")
    fill_ref = models.CharField(max_length=128)
    seq = models.PositiveIntegerField()
    side = models.CharField(max_length=16)
    quantity = QuantityField()
    price = PriceField()
    trade_date = models.DateField()
    settle_date = models.DateField()
    currency = models.CharField(max_length=3)
    net_money = MoneyField(help_text="Cash effect: negative for buys, positive for sells.")
    reverses = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="reversed_by"
    )
    booked_at = models.DateTimeField()

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["account", "security", "fill_ref", "seq"], name="position_fill_unique"
            ),
            models.CheckConstraint(condition=~Q(quantity=0), name="position_fill_qty_nonzero"),
            models.CheckConstraint(condition=Q(price__gt=0), name="position_fill_price_positive"),
            models.CheckConstraint(
                condition=Q(quantity__gt=0, reverses__isnull=True)
                | Q(quantity__lt=0, reverses__isnull=False),
                name="position_fill_reversal_shape",
            ),
            models.CheckConstraint(
                condition=Q(settle_date__gte=F("trade_date")), name="position_fill_settle_after"
            ),
        ]
        indexes = [models.Index(fields=["account", "security", "id"])]

    def __str__(self) -> str:
        return f"{self.fill_ref}#{self.seq} {self.side} {self.quantity}@{self.price}"


class CashMovementKind(models.TextChoices):
    TRADE = "TRADE", "Trade"
    TRADE_REVERSAL = "TRADE_REVERSAL", "Trade reversal"
    ADJUSTMENT = "ADJUSTMENT", "Adjustment"


class CashMovement(models.Model):
    """Money that moves (or moved) an account's cash on a settlement date: the cash ladder."""

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="+")
    currency = models.CharField(max_length=3)
    amount = MoneyField()
    settle_date = models.DateField(db_index=True)
    kind = models.CharField(max_length=16, choices=CashMovementKind.choices)
    reason = models.CharField(max_length=200, blank=True)
    ref = models.CharField(max_length=128)
    fill = models.ForeignKey(
        PositionFill, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    is_settled = models.BooleanField(default=False)
    # Folded into the opening balance by a later start-of-day load (it was settled then).
    in_opening = models.BooleanField(default=False)
    booked_at = models.DateTimeField()

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(currency__regex=r"^[A-Z]{3}$"), name="cash_movement_currency_iso"
            ),
        ]
        indexes = [
            models.Index(fields=["account", "currency", "settle_date"]),
            models.Index(
                fields=["settle_date"], condition=Q(is_settled=False), name="cash_mv_unsettled"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.account_id} {self.currency} {self.amount} on {self.settle_date}"


class FxRate(models.Model):
    """How many units of `quote` one unit of `base` buys, as of a date (latest wins)."""

    base = models.CharField(max_length=3)
    quote = models.CharField(max_length=3)
    rate = PriceField()
    as_of_date = models.DateField()

    class Meta:
        ordering = ["base", "quote", "-as_of_date"]
        constraints = [
            models.UniqueConstraint(fields=["base", "quote", "as_of_date"], name="fx_rate_unique"),
            models.CheckConstraint(condition=Q(rate__gt=0), name="fx_rate_positive"),
            models.CheckConstraint(
                condition=Q(base__regex=r"^[A-Z]{3}$") & Q(quote__regex=r"^[A-Z]{3}$"),
                name="fx_rate_iso",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.base}/{self.quote} {self.rate} ({self.as_of_date})"
