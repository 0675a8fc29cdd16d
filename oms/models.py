"""Reference data every part of the OMS shares: securities, issuers, accounts, custodians."""

from django.conf import settings
from django.db import models
from django.db.models import Q

from .fields import PriceField, QuantityField


class AssetClass(models.TextChoices):
    EQUITY = "EQUITY", "Equity"
    ETF = "ETF", "ETF"
    BOND = "BOND", "Bond"
    CRYPTO = "CRYPTO", "Crypto"
    FUND = "FUND", "Fund"
    OTHER = "OTHER", "Other"


class Issuer(models.Model):
    name = models.CharField(max_length=200, unique=True)
    country = models.CharField(max_length=2, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Security(models.Model):
    symbol = models.CharField(max_length=32, unique=True)
    name = models.CharField(max_length=200)
    asset_class = models.CharField(max_length=16, choices=AssetClass.choices)
    isin = models.CharField(max_length=12, null=True, blank=True, unique=True)
    exchange_mic = models.CharField(max_length=4)
    currency = models.CharField(max_length=3)
    sector = models.CharField(max_length=64, db_index=True)
    industry = models.CharField(max_length=128, blank=True)
    issuer = models.ForeignKey(Issuer, on_delete=models.PROTECT, related_name="securities")
    lot_size = QuantityField(default=1)
    tick_size = PriceField(default="0.01")
    shares_outstanding = QuantityField(default=0)
    avg_daily_volume = QuantityField(default=0)
    reference_price = PriceField(null=True, blank=True)
    reference_price_at = models.DateTimeField(null=True, blank=True)
    settlement_cycle = models.PositiveSmallIntegerField(default=1, help_text="T+n settlement days")
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["symbol"]
        verbose_name_plural = "securities"
        constraints = [
            models.CheckConstraint(condition=Q(lot_size__gt=0), name="security_lot_size_positive"),
            models.CheckConstraint(
                condition=Q(tick_size__gt=0), name="security_tick_size_positive"
            ),
            models.CheckConstraint(
                condition=Q(reference_price__isnull=True) | Q(reference_price__gt=0),
                name="security_reference_price_positive",
            ),
            models.CheckConstraint(
                condition=Q(shares_outstanding__gte=0), name="security_shares_outstanding_nonneg"
            ),
        ]

    def __str__(self) -> str:
        return self.symbol


class Custodian(models.Model):
    code = models.CharField(max_length=32, unique=True)
    name = models.CharField(max_length=200)
    bic = models.CharField(max_length=11, blank=True)

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return self.code


class AccountTag(models.Model):
    """A label compliance rules can scope to (e.g. ERISA, UCITS, CASH_ONLY)."""

    name = models.CharField(max_length=64, unique=True)

    def __str__(self) -> str:
        return self.name


class Account(models.Model):
    """A fund or portfolio the firm manages."""

    code = models.CharField(max_length=32, unique=True)
    name = models.CharField(max_length=200)
    base_currency = models.CharField(max_length=3, default="USD")
    custodian = models.ForeignKey(Custodian, on_delete=models.PROTECT, related_name="accounts")
    custodian_account = models.CharField(max_length=64)
    managers = models.ManyToManyField(
        settings.AUTH_USER_MODEL,
        related_name="managed_accounts",
        blank=True,
        help_text="The portfolio managers who may trade and see this account.",
    )
    tags = models.ManyToManyField(AccountTag, related_name="accounts", blank=True)
    may_short = models.BooleanField(default=False)
    is_cash_account = models.BooleanField(
        default=True, help_text="Cash accounts may not buy beyond available cash."
    )
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return self.code


class UserPreference(models.Model):
    """Per-user UI state the pages remember (grid layouts and the like), keyed by page."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=64)
    value = models.JSONField(default=dict)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "key"], name="userpref_unique")]

    def __str__(self) -> str:
        return f"{self.user_id}:{self.key}"
