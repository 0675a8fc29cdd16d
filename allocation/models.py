"""Allocation plans, per-account allocations and the slices each execution booked; the
settlement files written from them."""

from django.conf import settings
from django.db import models
from django.db.models import Q

from oms.fields import MoneyField, PriceField, QuantityField


class AllocationPlan(models.Model):
    """Which orders (accounts) share a block and in what proportion, fixed when it is routed."""

    class Status(models.TextChoices):
        OPEN = "OPEN", "Open"
        FINALISED = "FINALISED", "Finalised"

    block = models.OneToOneField(
        "orders.Block", on_delete=models.PROTECT, related_name="allocation_plan_record"
    )
    lines = models.JSONField(default=list)
    plan_hash = models.CharField(max_length=64)
    # Where tie-breaking starts for this block (from AllocationRotation), kept so every fill of
    # the block breaks ties the same way.
    rotation = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.OPEN)
    adjusted = models.BooleanField(
        default=False, help_text="Operations changed the split by hand; finalising keeps it."
    )
    avg_price = PriceField(null=True, blank=True)
    fixed_at = models.DateTimeField()
    fixed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    finalised_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"Plan for block {self.block_id}"


class AllocationRotation(models.Model):
    """A counter per security: each new block starts its tie-breaking one place further on."""

    security = models.OneToOneField("oms.Security", on_delete=models.CASCADE, related_name="+")
    counter = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"Rotation {self.security_id}: {self.counter}"


class Allocation(models.Model):
    """What one order (account) of a block has been given, and at finalisation its money."""

    plan = models.ForeignKey(AllocationPlan, on_delete=models.PROTECT, related_name="allocations")
    block = models.ForeignKey("orders.Block", on_delete=models.PROTECT, related_name="allocations")
    order = models.ForeignKey("orders.Order", on_delete=models.PROTECT, related_name="allocations")
    account = models.ForeignKey("oms.Account", on_delete=models.PROTECT, related_name="+")
    plan_quantity = QuantityField()
    quantity = QuantityField(default=0)
    avg_price = PriceField(null=True, blank=True)
    trade_date = models.DateField(null=True, blank=True)
    settle_date = models.DateField(null=True, blank=True)
    gross_amount = MoneyField(default=0)
    commission = MoneyField(default=0)
    fees = MoneyField(default=0)
    net_amount = MoneyField(default=0)
    currency = models.CharField(max_length=3, blank=True)
    finalised_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["block", "order"]
        constraints = [
            models.UniqueConstraint(
                fields=["block", "order"], name="allocation_block_order_unique"
            ),
            models.CheckConstraint(condition=Q(quantity__gte=0), name="allocation_quantity_nonneg"),
            models.CheckConstraint(
                condition=Q(quantity__lte=models.F("plan_quantity")),
                name="allocation_not_over_plan",
            ),
        ]

    def __str__(self) -> str:
        return f"Allocation {self.pk}: block {self.block_id} order {self.order_id} {self.quantity}"


class AllocationExecution(models.Model):
    """An execution of the block as allocation saw it: the block's average price is made of
    these, and a replayed or busted execution is recognised by its reference."""

    plan = models.ForeignKey(AllocationPlan, on_delete=models.PROTECT, related_name="executions")
    execution_ref = models.CharField(max_length=128)
    quantity = QuantityField()
    price = PriceField()
    trade_date = models.DateField()
    booked_at = models.DateTimeField()
    busted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["plan", "execution_ref"], name="allocation_execution_once"
            ),
            models.CheckConstraint(
                condition=Q(quantity__gt=0), name="allocation_execution_quantity_positive"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.execution_ref} {self.quantity}@{self.price}"


class AllocationSlice(models.Model):
    """One booking on one order and its position (quantity > 0), or the exact reversal of an
    earlier one (quantity < 0, `reverses` set): the position keeper reverses only whole
    bookings, so taking shares back means reversing bookings and re-booking the excess."""

    class Kind(models.TextChoices):
        FILL = "FILL", "Fill"
        BUST = "BUST", "Bust"
        ADJUST = "ADJUST", "Manual adjustment"
        FINAL = "FINAL", "Finalisation"

    allocation = models.ForeignKey(Allocation, on_delete=models.PROTECT, related_name="slices")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    execution_ref = models.CharField(max_length=128, db_index=True)
    fill_ref = models.CharField(max_length=200, help_text="The position booking's reference")
    quantity = QuantityField()
    price = PriceField()
    trade_date = models.DateField()
    settle_date = models.DateField()
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
                name="allocation_slice_booking_or_reversal",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.execution_ref} {self.quantity}@{self.price}"


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
