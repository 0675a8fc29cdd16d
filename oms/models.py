"""Reference data every part of the OMS shares: securities, issuers, accounts, custodians."""

from django.conf import settings
from django.db import models
from django.db.models import Q

from .fields import PriceField, QuantityField
from .money import DayCount, Quotation


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
    # How a price becomes money (oms.money.notional): per unit, per 100 of face (bonds, whose
    # quantity is face), or per contract of `contract_multiplier` units.
    price_quotation = models.CharField(
        max_length=8, choices=Quotation.CHOICES, default=Quotation.UNIT
    )
    contract_multiplier = QuantityField(default=1)
    # A bond's coupon: accrued interest (oms.money.Terms.accrued_per_unit) counts in notional,
    # NAV, cash and compliance (the dirty amount).
    coupon_rate = PriceField(null=True, blank=True, help_text="Percent of face per year")
    coupon_frequency = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        choices=[(1, "Annual"), (2, "Semiannual"), (4, "Quarterly"), (12, "Monthly")],
    )
    day_count = models.CharField(max_length=8, choices=DayCount.CHOICES, blank=True)
    maturity_date = models.DateField(null=True, blank=True)
    dated_date = models.DateField(
        null=True, blank=True, help_text="Interest accrues from here until the first coupon"
    )

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
            models.CheckConstraint(
                condition=Q(contract_multiplier__gt=0), name="security_multiplier_positive"
            ),
            # A coupon is accrued only with everything accrual needs.
            models.CheckConstraint(
                condition=Q(coupon_rate__isnull=True)
                | (
                    Q(
                        coupon_rate__gte=0,
                        coupon_frequency__in=[1, 2, 4, 12],
                        maturity_date__isnull=False,
                    )
                    & ~Q(day_count="")
                ),
                name="security_coupon_complete",
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


class ExceptionKind:
    """The kinds of OpsException in use so far. OpsException.kind is an open set: an app adds
    a kind by opening an exception with it (a short lower-case code)."""

    BOOKING_FAILED = "booking_failed"
    QUARANTINED_REPORT = "quarantined_report"
    UNMATCHED_REJECT = "unmatched_reject"
    UNCONFIRMED_ORDER = "unconfirmed_order"
    UNACKNOWLEDGED_ORDER = "unacknowledged_order"
    # A working order the broker cannot confirm (it reset its session, or a status request
    # failed): the trader cancels it locally or resends it.
    UNCONFIRMED_AT_BROKER = "unconfirmed_at_broker"
    # The counterparty's sequence numbers do not fit ours: logons stopped until reset.
    SESSION_SEQUENCE = "session_sequence"
    STATUS_REQUEST_REFUSED = "status_request_refused"
    KNOWN = (
        BOOKING_FAILED,
        QUARANTINED_REPORT,
        UNMATCHED_REJECT,
        UNCONFIRMED_ORDER,
        UNACKNOWLEDGED_ORDER,
        UNCONFIRMED_AT_BROKER,
        SESSION_SEQUENCE,
        STATUS_REQUEST_REFUSED,
    )


class OpsException(models.Model):
    """Something a person in Operations or on the desk must look at: a booking that failed
    after the close, a quarantined report, an order the broker never acknowledged. Apps open
    them through oms.services.exception_open; a person resolves them with a note.

    At most one is open per (kind, ref): the same condition seen again counts an occurrence on
    the open one; once resolved, the next occurrence opens a new row."""

    kind = models.CharField(
        max_length=64,
        help_text=(
            "Short code of what went wrong, e.g. booking_failed, quarantined_report, "
            "unmatched_reject, unconfirmed_order, unacknowledged_order. An open set: apps "
            "add their own."
        ),
    )
    source = models.CharField(max_length=32, help_text="The app that opened it, e.g. allocation.")
    ref = models.CharField(
        max_length=200,
        help_text="What it is about, unique per kind while open, e.g. block:12:2026-10-09.",
    )
    summary = models.CharField(max_length=300, help_text="One line a person reads.")
    detail = models.JSONField(default=dict, blank=True)
    # Plain ids, not foreign keys: the core app does not depend on the apps above it.
    block_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    order_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    broker_id = models.BigIntegerField(null=True, blank=True)
    opened_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()
    occurrences = models.PositiveIntegerField(default=1)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Empty when resolved automatically (the condition went away).",
    )
    resolution_note = models.TextField(blank=True)

    class Meta:
        verbose_name = "operations exception"
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "ref"],
                condition=Q(resolved_at__isnull=True),
                name="opsexception_one_open_per_kind_ref",
            ),
            models.CheckConstraint(
                condition=Q(occurrences__gte=1), name="opsexception_occurrences_positive"
            ),
            models.CheckConstraint(
                condition=Q(last_seen_at__gte=models.F("opened_at")),
                name="opsexception_seen_after_opened",
            ),
            models.CheckConstraint(
                condition=Q(resolved_at__isnull=True, resolved_by__isnull=True)
                | (Q(resolved_at__isnull=False) & ~Q(resolution_note="")),
                name="opsexception_resolved_with_note",
            ),
        ]
        indexes = [models.Index(fields=["-last_seen_at", "-id"], name="opsexception_recent")]

    def __str__(self) -> str:
        return f"{self.kind} {self.ref}"

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None
