"""The booking ledger: a block's plan, its trading days, the street fills and each order's
share of them, the account allocations per trade date, every booking into positions and cash,
and the settlement files written from the allocations."""

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q

from oms.fields import DecimalAmountField, MoneyField, PriceField, QuantityField
from oms.models import AssetClass


class AllocationPlan(models.Model):
    """Which orders share a block, and where its tie-breaking starts. The weights are not
    fixed here: every booking reads the orders' current quantities (an acknowledged replace or
    cancel changes them), with what is already booked as a floor."""

    block = models.OneToOneField(
        "orders.Block", on_delete=models.PROTECT, related_name="allocation_plan_record"
    )
    lines = models.JSONField(default=list)
    plan_hash = models.CharField(max_length=64)
    # Where tie-breaking starts for this block (from AllocationRotation), kept so every fill of
    # the block breaks ties the same way.
    rotation = models.PositiveIntegerField(default=0)
    adjusted = models.BooleanField(
        default=False, help_text="Operations changed the split by hand; finalising keeps it."
    )
    fixed_at = models.DateTimeField()
    fixed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    def __str__(self) -> str:
        return f"Plan for block {self.block_id}"


class AllocationRotation(models.Model):
    """A counter per security: each new block starts its tie-breaking one place further on."""

    security = models.OneToOneField("oms.Security", on_delete=models.CASCADE, related_name="+")
    counter = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"Rotation {self.security_id}: {self.counter}"


class BlockDay(models.Model):
    """A block's trading on one trade date: what the street executed (exact value, so the
    average never drifts) and whether the day's allocations are final. A late bust or
    correction reopens a final day and books it again under the next version."""

    class Status(models.TextChoices):
        OPEN = "OPEN", "Open"
        FINALISED = "FINALISED", "Finalised"

    plan = models.ForeignKey(AllocationPlan, on_delete=models.PROTECT, related_name="days")
    block = models.ForeignKey("orders.Block", on_delete=models.PROTECT, related_name="days")
    trade_date = models.DateField()
    settle_date = models.DateField()
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.OPEN)
    executed = QuantityField(default=0)
    value = MoneyField(default=0, max_digits=40, decimal_places=16)
    avg_price = PriceField(null=True, blank=True)
    street_gross = MoneyField(default=0)
    version = models.PositiveIntegerField(default=1)
    finalised_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["block", "trade_date"]
        constraints = [
            models.UniqueConstraint(fields=["block", "trade_date"], name="block_day_unique"),
            models.CheckConstraint(condition=Q(executed__gte=0), name="block_day_executed_nonneg"),
            models.CheckConstraint(
                condition=Q(settle_date__gte=models.F("trade_date")), name="block_day_settle_after"
            ),
        ]
        indexes = [
            models.Index(fields=["trade_date"], condition=Q(status="OPEN"), name="block_day_open"),
        ]

    def __str__(self) -> str:
        return f"Block {self.block_id} on {self.trade_date}"


class StreetFill(models.Model):
    """An execution of the block as the booking ledger saw it: the day's executed quantity and
    value are made of these, and a replayed or busted execution is recognised by its
    reference."""

    day = models.ForeignKey(BlockDay, on_delete=models.PROTECT, related_name="fills")
    block = models.ForeignKey("orders.Block", on_delete=models.PROTECT, related_name="+")
    execution_ref = models.CharField(max_length=128)
    quantity = QuantityField()
    price = PriceField()
    booked_at = models.DateTimeField()
    busted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["block", "execution_ref"], name="street_fill_once"),
            models.CheckConstraint(condition=Q(quantity__gt=0), name="street_fill_qty_positive"),
            models.CheckConstraint(condition=Q(price__gt=0), name="street_fill_price_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.execution_ref} {self.quantity}@{self.price}"


class OrderShare(models.Model):
    """What one order of a block has been given on one trade date: quantity and the exact
    value it was booked at. The orders' cum and average follow these."""

    day = models.ForeignKey(BlockDay, on_delete=models.PROTECT, related_name="shares")
    order = models.ForeignKey("orders.Order", on_delete=models.PROTECT, related_name="shares")
    account = models.ForeignKey("oms.Account", on_delete=models.PROTECT, related_name="+")
    quantity = QuantityField(default=0)
    value = MoneyField(default=0, max_digits=40, decimal_places=16)

    class Meta:
        ordering = ["day", "order"]
        constraints = [
            models.UniqueConstraint(fields=["day", "order"], name="order_share_unique"),
            models.CheckConstraint(condition=Q(quantity__gte=0), name="order_share_qty_nonneg"),
        ]

    def __str__(self) -> str:
        return f"Order {self.order_id} on {self.day_id}: {self.quantity}"


class Allocation(models.Model):
    """One account's allocation of a block on one trade date, at that day's average price,
    with its money in the currency's minor unit: what the custodian file says. A rebooking
    after a late change writes the next version and marks this one replaced."""

    day = models.ForeignKey(BlockDay, on_delete=models.PROTECT, related_name="allocations")
    block = models.ForeignKey("orders.Block", on_delete=models.PROTECT, related_name="allocations")
    account = models.ForeignKey("oms.Account", on_delete=models.PROTECT, related_name="+")
    version = models.PositiveIntegerField(default=1)
    trade_date = models.DateField()
    settle_date = models.DateField()
    side = models.CharField(max_length=16)
    quantity = QuantityField()
    avg_price = PriceField()
    # The clean amount (quantity x price, per 100 of face for a bond, times the multiplier of
    # a contract), then a bond's accrued interest to the settlement date: net is their total
    # plus the charges on a buy, less them on a sell.
    gross_amount = MoneyField()
    accrued_interest = MoneyField(default=0)
    commission = MoneyField(default=0)
    fees = MoneyField(default=0)
    fee_breakdown = models.JSONField(default=dict, blank=True)
    net_amount = MoneyField()
    currency = models.CharField(max_length=3)
    finalised_at = models.DateTimeField()
    replaced_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["block", "trade_date", "account"]
        constraints = [
            models.UniqueConstraint(
                fields=["day", "account", "version"], name="allocation_day_account_version"
            ),
            models.CheckConstraint(condition=Q(quantity__gt=0), name="allocation_qty_positive"),
        ]
        indexes = [models.Index(fields=["trade_date", "account"])]

    def __str__(self) -> str:
        return f"Allocation {self.pk}: block {self.block_id} {self.account_id} {self.quantity}"


class Booking(models.Model):
    """The booking ledger: every booking of a block's shares into an account's position (and
    its cash), and the exact reversal of one. Intraday bookings follow the fills; the final
    booking of a day puts each account at the day's average price with its money to the
    cent; a late change reverses and books again."""

    class Kind(models.TextChoices):
        FILL = "FILL", "Fill"
        FINAL = "FINAL", "Final (day average)"
        REVERSAL = "REVERSAL", "Reversal"

    day = models.ForeignKey(BlockDay, on_delete=models.PROTECT, related_name="bookings")
    account = models.ForeignKey("oms.Account", on_delete=models.PROTECT, related_name="+")
    order = models.ForeignKey(
        "orders.Order", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    kind = models.CharField(max_length=8, choices=Kind.choices)
    fill_ref = models.CharField(max_length=200, help_text="The position booking's reference")
    quantity = QuantityField()
    price = PriceField()
    net_money = MoneyField()
    reverses = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="reversed_by"
    )
    booked_at = models.DateTimeField()

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(quantity__gt=0) & Q(reverses__isnull=True))
                | (Q(quantity__lt=0) & Q(reverses__isnull=False)),
                name="booking_or_reversal",
            ),
        ]
        indexes = [models.Index(fields=["day", "account"])]

    def __str__(self) -> str:
        return f"{self.kind} {self.fill_ref} {self.quantity}@{self.price}"


class SettlementFile(models.Model):
    """One version of a custodian's file for a trade date. Never updated once written (a
    database trigger refuses it); generating again writes the next version."""

    custodian = models.ForeignKey(
        "oms.Custodian", on_delete=models.PROTECT, related_name="settlement_files"
    )
    trade_date = models.DateField()
    version = models.PositiveIntegerField()
    filename = models.CharField(max_length=200)
    content = models.TextField()
    checksum = models.CharField(max_length=64, help_text="SHA-256 of the content")
    row_count = models.PositiveIntegerField()
    differences = models.JSONField(
        default=dict, blank=True, help_text="Trades added, removed and changed since the previous"
    )
    previous = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        ordering = ["-trade_date", "custodian", "-version"]
        constraints = [
            models.UniqueConstraint(
                fields=["custodian", "trade_date", "version"], name="settlement_file_version_unique"
            ),
        ]

    def __str__(self) -> str:
        return self.filename


class FeeRule(models.Model):
    """A regulatory fee or transaction tax charged on an allocation, kept as data: Operations
    edits the rows in the admin (audited), and a rate change is a new row from its date.

    A rule applies to a trade when the trade date is in [valid_from, valid_to), the side is
    on the rule's side, the security's asset class is listed, and its exchange and ISIN
    country match the market scope (an empty list matches any; at least one is given).
    Periods of one code never overlap (a database trigger refuses it)."""

    class Side(models.TextChoices):
        BUY = "BUY", "Buys (buy, buy to cover)"
        SELL = "SELL", "Sells (sell, sell short)"

    class Basis(models.TextChoices):
        BPS = "BPS", "Basis points of gross"
        PER_UNIT = "PER_UNIT", "Per share or unit"

    code = models.CharField(
        max_length=32,
        db_index=True,
        validators=[RegexValidator(r"^[A-Z][A-Z0-9_]*$", "Capitals, digits and _ (SEC_FEE).")],
        help_text="The fee's name in breakdowns, e.g. SEC_FEE, UK_SDRT",
    )
    name = models.CharField(max_length=200)
    side = models.CharField(max_length=4, choices=Side.choices)
    exchange_mics = ArrayField(
        models.CharField(
            max_length=4, validators=[RegexValidator(r"^[A-Z0-9]{4}$", "A 4-character MIC.")]
        ),
        default=list,
        blank=True,
        help_text="Exchange MICs, comma-separated (XNYS,XNAS); empty: any exchange",
    )
    isin_countries = ArrayField(
        models.CharField(
            max_length=2, validators=[RegexValidator(r"^[A-Z]{2}$", "A 2-letter country code.")]
        ),
        default=list,
        blank=True,
        help_text="ISIN country prefixes, comma-separated (GB); empty: any ISIN",
    )
    asset_classes = ArrayField(
        models.CharField(max_length=16, choices=AssetClass.choices),
        help_text="Asset classes charged (never crypto)",
    )
    basis = models.CharField(max_length=8, choices=Basis.choices)
    rate = DecimalAmountField(
        help_text="Basis points of gross (0.278 is $27.80 per million), or currency per unit"
    )
    minimum = MoneyField(null=True, blank=True, help_text="Per allocation, in the currency")
    maximum = MoneyField(null=True, blank=True, help_text="Per allocation, in the currency")
    currency = models.CharField(
        max_length=3,
        validators=[RegexValidator(r"^[A-Z]{3}$", "An ISO 4217 code.")],
        help_text="Currency of a per-unit rate, the minimum and the maximum",
    )
    valid_from = models.DateField(help_text="First trade date the rule applies to")
    valid_to = models.DateField(
        null=True,
        blank=True,
        help_text="First trade date it no longer applies to; empty: until further notice",
    )
    source = models.CharField(
        max_length=300, blank=True, help_text="Where the figure comes from (notice, law, date)"
    )

    class Meta:
        ordering = ["code", "-valid_from"]
        constraints = [
            models.CheckConstraint(condition=Q(rate__gte=0), name="fee_rule_rate_nonneg"),
            models.CheckConstraint(
                condition=Q(valid_to__isnull=True) | Q(valid_to__gt=models.F("valid_from")),
                name="fee_rule_valid_to_after_from",
            ),
            models.CheckConstraint(
                condition=(Q(minimum__isnull=True) | Q(minimum__gte=0))
                & (Q(maximum__isnull=True) | Q(maximum__gte=0))
                & (
                    Q(minimum__isnull=True)
                    | Q(maximum__isnull=True)
                    | Q(maximum__gte=models.F("minimum"))
                ),
                name="fee_rule_min_max",
            ),
            models.CheckConstraint(
                condition=~Q(asset_classes=[]) & ~Q(asset_classes__contains=[AssetClass.CRYPTO]),
                name="fee_rule_asset_classes_not_crypto",
            ),
            models.CheckConstraint(
                condition=~(Q(exchange_mics=[]) & Q(isin_countries=[])),
                name="fee_rule_has_market",
            ),
        ]

    def __str__(self) -> str:
        until = self.valid_to.isoformat() if self.valid_to else "open"
        return f"{self.code} {self.valid_from.isoformat()} to {until}"

    def clean(self) -> None:
        """The overlap the database trigger refuses, as a form error the admin can show."""
        super().clean()
        if not self.code or not self.valid_from:
            return
        if self.valid_to is not None and self.valid_to <= self.valid_from:
            return  # the check constraint reports it
        clash = FeeRule.objects.filter(code=self.code).exclude(pk=self.pk)
        clash = clash.filter(Q(valid_to__isnull=True) | Q(valid_to__gt=self.valid_from))
        if self.valid_to is not None:
            clash = clash.filter(valid_from__lt=self.valid_to)
        other = clash.order_by("valid_from").first()
        if other is not None:
            raise ValidationError(
                f"{other} is in force for part of this period: end it first (set its valid to)."
            )
