from django.conf import settings
from django.db import models
from django.db.models import F, Q

from oms.fields import MoneyField, PriceField, QuantityField
from oms.models import Account, Security

from .lifecycle import OrderStatus


class Side(models.TextChoices):
    BUY = "BUY", "Buy"
    SELL = "SELL", "Sell"
    SELL_SHORT = "SELL_SHORT", "Sell short"
    BUY_TO_COVER = "BUY_TO_COVER", "Buy to cover"


BUY_SIDES = frozenset({Side.BUY, Side.BUY_TO_COVER})
SELL_SIDES = frozenset({Side.SELL, Side.SELL_SHORT})


class OrderType(models.TextChoices):
    MARKET = "MARKET", "Market"
    LIMIT = "LIMIT", "Limit"
    STOP = "STOP", "Stop"
    STOP_LIMIT = "STOP_LIMIT", "Stop limit"


class TimeInForce(models.TextChoices):
    DAY = "DAY", "Day"
    GTC = "GTC", "Good till cancel"
    IOC = "IOC", "Immediate or cancel"
    FOK = "FOK", "Fill or kill"
    GTD = "GTD", "Good till date"
    OPG = "OPG", "At the open"
    CLS = "CLS", "At the close"


class Basket(models.Model):
    """Orders a PM created together (an uploaded basket or a model rebalance)."""

    class Kind(models.TextChoices):
        UPLOAD = "UPLOAD", "Uploaded basket"
        REBALANCE = "REBALANCE", "Model rebalance"

    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.UPLOAD)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField()
    source_filename = models.CharField(max_length=255, blank=True)
    source_sha256 = models.CharField(max_length=64, blank=True)
    line_count = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"Basket {self.pk} {self.name}"


class Block(models.Model):
    """Orders in one security and side that the desk works, and routes, as one."""

    class Status(models.TextChoices):
        OPEN = "OPEN", "Open"
        ROUTED = "ROUTED", "Routed"
        WORKING = "WORKING", "Working"
        PARTIALLY_FILLED = "PARTIALLY_FILLED", "Partially filled"
        FILLED = "FILLED", "Filled"
        PENDING_CANCEL = "PENDING_CANCEL", "Pending cancel"
        PENDING_REPLACE = "PENDING_REPLACE", "Pending replace"
        CANCELLED = "CANCELLED", "Cancelled"
        REJECTED = "REJECTED", "Rejected"
        DONE_FOR_DAY = "DONE_FOR_DAY", "Done for day"
        EXPIRED = "EXPIRED", "Expired"

    security = models.ForeignKey(Security, on_delete=models.PROTECT, related_name="blocks")
    side = models.CharField(max_length=16, choices=Side.choices)
    quantity = QuantityField()
    status = models.CharField(
        max_length=20, choices=Status.choices, default=Status.OPEN, db_index=True
    )
    order_type = models.CharField(
        max_length=16, choices=OrderType.choices, default=OrderType.MARKET
    )
    limit_price = PriceField(null=True, blank=True)
    stop_price = PriceField(null=True, blank=True)
    time_in_force = models.CharField(
        max_length=8, choices=TimeInForce.choices, default=TimeInForce.DAY
    )
    expire_date = models.DateField(null=True, blank=True)
    broker = models.ForeignKey(
        "fixgateway.Broker", null=True, blank=True, on_delete=models.PROTECT, related_name="blocks"
    )
    strategy = models.CharField(max_length=16, blank=True, help_text="DMA, VWAP, TWAP, POV")
    strategy_params = models.JSONField(default=dict, blank=True)
    cum_qty = QuantityField(default=0)
    avg_price = PriceField(null=True, blank=True)
    allocation_plan = models.JSONField(default=list, blank=True)
    allocation_plan_hash = models.CharField(max_length=64, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField()
    routed_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(quantity__gt=0), name="block_quantity_positive"),
            models.CheckConstraint(condition=Q(cum_qty__gte=0), name="block_cum_qty_nonneg"),
        ]

    def __str__(self) -> str:
        return f"Block {self.pk} {self.side} {self.quantity} {self.security_id}"


class Order(models.Model):
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="orders")
    security = models.ForeignKey(Security, on_delete=models.PROTECT, related_name="orders")
    side = models.CharField(max_length=16, choices=Side.choices)
    quantity = QuantityField()
    order_type = models.CharField(max_length=16, choices=OrderType.choices)
    limit_price = PriceField(null=True, blank=True)
    stop_price = PriceField(null=True, blank=True)
    time_in_force = models.CharField(
        max_length=8, choices=TimeInForce.choices, default=TimeInForce.DAY
    )
    expire_date = models.DateField(null=True, blank=True)
    instructions = models.TextField(blank=True, max_length=2000)
    status = models.CharField(
        max_length=20,
        choices=OrderStatus.choices,
        default=OrderStatus.PENDING_COMPLIANCE,
        db_index=True,
    )
    pm = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="orders"
    )
    received_at = models.DateTimeField(db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    basket = models.ForeignKey(
        Basket, null=True, blank=True, on_delete=models.PROTECT, related_name="orders"
    )
    block = models.ForeignKey(
        Block, null=True, blank=True, on_delete=models.SET_NULL, related_name="orders"
    )
    # Execution figures, kept by the FIX gateway (and internal crosses).
    cum_qty = QuantityField(default=0)
    leaves_qty = QuantityField(default=0)
    avg_price = PriceField(null=True, blank=True)
    # What the fills cost, sum of quantity x price to the last digit (eight places times eight):
    # the average is taken from it, so it never drifts through rounding fill after fill.
    filled_value = MoneyField(default=0, max_digits=40, decimal_places=16)
    # The compliance engine's verdict, summarised (details in compliance results).
    compliance_status = models.CharField(max_length=8, blank=True)
    reference_price_at_entry = PriceField(null=True, blank=True)
    estimated_notional = MoneyField(null=True, blank=True)
    # NULL, not "", when absent: the unique constraint applies only to keys that were sent.
    idempotency_key = models.CharField(max_length=128, null=True, blank=True)  # noqa: DJ001
    # What the keyed request asked for, so a retry with a different body is refused, not replayed.
    idempotency_fingerprint = models.CharField(max_length=64, blank=True)
    # Bumped on every change, so pushed updates can be ordered and stale writes detected.
    version = models.PositiveIntegerField(default=1)

    class Meta:
        ordering = ["-received_at", "-id"]
        indexes = [
            models.Index(fields=["account", "status"]),
            models.Index(fields=["security", "status"]),
            # The blotter takes what was touched today and post-trade what traded since the
            # last run: without it both read every order of the history (bench/scale_bench.py).
            models.Index(fields=["updated_at"], name="order_updated_at_idx"),
            # One account's newest orders first (a PM's list filtered by account) without
            # reading and sorting all of the account's history (bench/scale_bench.py).
            models.Index(
                fields=["account", "received_at", "id"], name="order_account_received_idx"
            ),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(quantity__gt=0), name="order_quantity_positive"),
            models.CheckConstraint(condition=Q(cum_qty__gte=0), name="order_cum_qty_nonneg"),
            models.CheckConstraint(condition=Q(leaves_qty__gte=0), name="order_leaves_nonneg"),
            models.CheckConstraint(
                condition=Q(cum_qty__lte=F("quantity")), name="order_not_overfilled"
            ),
            models.CheckConstraint(
                condition=~Q(order_type__in=["LIMIT", "STOP_LIMIT"]) | Q(limit_price__isnull=False),
                name="order_limit_has_price",
            ),
            models.CheckConstraint(
                condition=~Q(order_type__in=["STOP", "STOP_LIMIT"]) | Q(stop_price__isnull=False),
                name="order_stop_has_price",
            ),
            models.CheckConstraint(
                condition=~Q(time_in_force="GTD") | Q(expire_date__isnull=False),
                name="order_gtd_has_date",
            ),
            models.UniqueConstraint(
                fields=["pm", "idempotency_key"],
                name="order_idempotency_key_unique",
                condition=Q(idempotency_key__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"Order {self.pk} {self.side} {self.quantity} {self.security_id}"


class OrderEvent(models.Model):
    """The order's own history: what happened to it, in the order it happened."""

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="events")
    at = models.DateTimeField()
    kind = models.CharField(max_length=32)
    from_status = models.CharField(max_length=20, blank=True)
    to_status = models.CharField(max_length=20, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.order_id} {self.kind} {self.to_status}"
