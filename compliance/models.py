"""Compliance rules and their immutable versions, the restricted list, and what checks found."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from oms.fields import DecimalAmountField
from oms.models import Account, AccountTag, Issuer, Security


class RuleKind(models.TextChoices):
    RESTRICTED_LIST = "RESTRICTED_LIST", "Restricted list"
    ISSUER_CONCENTRATION = "ISSUER_CONCENTRATION", "Max % of NAV in one issuer"
    SECTOR_CONCENTRATION = "SECTOR_CONCENTRATION", "Max % of NAV in one sector"
    FIRM_OWNERSHIP = "FIRM_OWNERSHIP", "Max % of shares outstanding held by the firm"
    ORDER_SIZE = "ORDER_SIZE", "Max order quantity / notional (fat finger)"
    PRICE_BAND = "PRICE_BAND", "Limit price within X% of reference"
    ADV_PARTICIPATION = "ADV_PARTICIPATION", "Max % of average daily volume"
    NO_SHORT = "NO_SHORT", "No short sales"
    CASH = "CASH", "Cash available for buys"
    OPPOSITE_SIDE = "OPPOSITE_SIDE", "Opposite-side conflict"
    DUPLICATE_ORDER = "DUPLICATE_ORDER", "Duplicate order"


class Severity(models.TextChoices):
    BLOCK = "BLOCK", "Block"
    WARN = "WARN", "Warn"


class Scope(models.TextChoices):
    ALL = "ALL", "All accounts"
    ACCOUNTS = "ACCOUNTS", "Listed accounts"
    TAG = "TAG", "Accounts with a tag"


class Verdict(models.TextChoices):
    PASS = "PASS", "Pass"
    WARN = "WARN", "Warn"
    BLOCK = "BLOCK", "Block"


class Rule(models.Model):
    """The editable rule. What checks evaluate is its current (immutable) RuleVersion."""

    name = models.CharField(max_length=200, unique=True)
    kind = models.CharField(max_length=32, choices=RuleKind.choices)
    parameters = models.JSONField(default=dict, blank=True)
    scope = models.CharField(max_length=16, choices=Scope.choices, default=Scope.ALL)
    accounts = models.ManyToManyField(Account, blank=True, related_name="compliance_rules")
    tag = models.ForeignKey(
        AccountTag, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    severity = models.CharField(max_length=8, choices=Severity.choices, default=Severity.BLOCK)
    active = models.BooleanField(default=True)
    effective_from = models.DateField(null=True, blank=True)
    effective_to = models.DateField(null=True, blank=True)
    mandate = models.TextField(
        blank=True, help_text="The mandate clause or regulation this rule implements."
    )
    current_version = models.ForeignKey(
        "RuleVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(effective_from__isnull=True)
                | Q(effective_to__isnull=True)
                | Q(effective_from__lte=models.F("effective_to")),
                name="rule_effective_dates_ordered",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class RuleVersion(models.Model):
    """One saved state of a rule. Never changed after it is written; checks cite it."""

    rule = models.ForeignKey(Rule, on_delete=models.PROTECT, related_name="versions")
    number = models.PositiveIntegerField()
    snapshot = models.JSONField()
    created_at = models.DateTimeField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        ordering = ["rule", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["rule", "number"], name="rule_version_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.rule_id} v{self.number}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise ValueError("Rule versions are immutable; edit the rule to make a new version.")
        super().save(*args, **kwargs)


class RestrictedEntry(models.Model):
    """A security, or every security of an issuer, that may not be traded between two dates."""

    security = models.ForeignKey(
        Security, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    issuer = models.ForeignKey(
        Issuer, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    reason = models.CharField(max_length=200)
    start_date = models.DateField()
    end_date = models.DateField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-start_date", "id"]
        verbose_name_plural = "restricted entries"
        constraints = [
            models.CheckConstraint(
                condition=Q(security__isnull=False, issuer__isnull=True)
                | Q(security__isnull=True, issuer__isnull=False),
                name="restricted_security_xor_issuer",
            ),
            models.CheckConstraint(
                condition=Q(end_date__isnull=True) | Q(start_date__lte=models.F("end_date")),
                name="restricted_dates_ordered",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.security or self.issuer}: {self.reason}"


class CheckRun(models.Model):
    """One pre-trade check of a set of orders, or one post-trade sweep of portfolios."""

    class Kind(models.TextChoices):
        PRE_TRADE = "PRE_TRADE", "Pre-trade"
        POST_TRADE = "POST_TRADE", "Post-trade"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    as_of = models.DateTimeField(db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    order_count = models.PositiveIntegerField(default=0)
    breach_count = models.PositiveIntegerField(default=0)
    rule = models.ForeignKey(
        Rule,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The one rule a post-trade run was limited to (empty: every active rule).",
    )

    class Meta:
        ordering = ["-as_of", "-id"]

    def __str__(self) -> str:
        return f"{self.kind} {self.as_of:%Y-%m-%d %H:%M}"


class OrderCheck(models.Model):
    """One order's verdict in a run, with one result per rule evaluated (`results`, as the API
    shows them). Hits (warn/block results) are also rows of RuleHit, to list them per rule."""

    run = models.ForeignKey(CheckRun, on_delete=models.PROTECT, related_name="order_checks")
    order = models.ForeignKey(
        "orders.Order", on_delete=models.PROTECT, related_name="compliance_checks"
    )
    verdict = models.CharField(max_length=8, choices=Verdict.choices)
    results = models.JSONField(default=list)
    checked_at = models.DateTimeField()

    class Meta:
        ordering = ["-checked_at", "-id"]
        indexes = [models.Index(fields=["order", "-id"])]

    def __str__(self) -> str:
        return f"{self.order_id}: {self.verdict}"


class RuleHit(models.Model):
    order_check = models.ForeignKey(OrderCheck, on_delete=models.CASCADE, related_name="hits")
    order = models.ForeignKey("orders.Order", on_delete=models.PROTECT, related_name="+")
    rule = models.ForeignKey(Rule, on_delete=models.PROTECT, related_name="hits")
    rule_version = models.ForeignKey(RuleVersion, on_delete=models.PROTECT, related_name="+")
    outcome = models.CharField(max_length=8, choices=Verdict.choices)
    message = models.TextField()
    checked_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-checked_at", "-id"]

    def __str__(self) -> str:
        return f"{self.rule_id} hit {self.order_id}"


class Breach(models.Model):
    """A rule a portfolio breaches as it stands (found by a post-trade run)."""

    class Cause(models.TextChoices):
        PRICE_MOVE = "PRICE_MOVE", "Price move"
        TRADING = "TRADING", "Trading since the last run"
        CARRIED = "CARRIED", "Already breached at the last run"

    run = models.ForeignKey(CheckRun, on_delete=models.CASCADE, related_name="breaches")
    rule = models.ForeignKey(Rule, on_delete=models.PROTECT, related_name="breaches")
    rule_version = models.ForeignKey(RuleVersion, on_delete=models.PROTECT, related_name="+")
    account = models.ForeignKey(
        Account,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Empty for firm-wide rules (ownership of an issuer).",
    )
    key = models.CharField(max_length=200, help_text="The issuer, sector or security breached.")
    value = DecimalAmountField(null=True, blank=True)
    limit = DecimalAmountField(null=True, blank=True)
    message = models.TextField()
    cause = models.CharField(max_length=16, choices=Cause.choices)

    class Meta:
        ordering = ["rule", "account", "key"]
        verbose_name_plural = "breaches"

    def __str__(self) -> str:
        return self.message


class Override(models.Model):
    """A person lifting a warning or a block, with the reason they gave."""

    order = models.ForeignKey("orders.Order", on_delete=models.PROTECT, related_name="overrides")
    order_check = models.ForeignKey(
        OrderCheck, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    verdict = models.CharField(max_length=8, choices=Verdict.choices)
    reason = models.TextField()
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    at = models.DateTimeField()

    class Meta:
        ordering = ["-at", "-id"]
        constraints = [
            models.CheckConstraint(condition=~Q(reason=""), name="override_reason_required"),
        ]

    def __str__(self) -> str:
        return f"override {self.order_id} ({self.verdict})"
