"""Market data kept by the OMS: the latest quote per security, one-minute bars for the day, and
the arrival prices captured for transaction cost analysis (TCA)."""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from oms.fields import MoneyField, PriceField, QuantityField


class Quote(models.Model):
    """The latest market of a security, as the feed last said it (one row per security,
    overwritten in place: history lives in the bars)."""

    security = models.OneToOneField(
        "oms.Security", on_delete=models.CASCADE, primary_key=True, related_name="quote"
    )
    bid = PriceField(null=True, blank=True)
    ask = PriceField(null=True, blank=True)
    last = PriceField(null=True, blank=True)
    day_volume = QuantityField(default=0)
    day_vwap = PriceField(null=True, blank=True)
    trade_date = models.DateField()
    source = models.CharField(max_length=32, help_text="the broker code of the feed")
    # When the OMS received the latest update (staleness is measured from this).
    updated_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"{self.security_id} {self.bid}/{self.ask}"


class MinuteBar(models.Model):
    """Trades of one security in one minute (UTC): OHLC, volume and traded value, so a
    VWAP over any interval is sum(value) / sum(volume) of its bars."""

    security = models.ForeignKey("oms.Security", on_delete=models.CASCADE, related_name="+")
    start = models.DateTimeField()
    open = PriceField()
    high = PriceField()
    low = PriceField()
    close = PriceField()
    volume = QuantityField(default=0)
    value = MoneyField(default=0, max_digits=40, decimal_places=16)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["security", "start"], name="minute_bar_unique"),
            models.CheckConstraint(condition=Q(volume__gte=0), name="minute_bar_volume_nonneg"),
        ]

    def __str__(self) -> str:
        return f"{self.security_id} {self.start:%H:%M} {self.close}"


class ArrivalPrice(models.Model):
    """The market when an order reached the desk (kind "desk") or a block was routed
    (kind "route"): the benchmark of implementation shortfall."""

    class Kind(models.TextChoices):
        DESK = "desk", "Order reached the desk"
        ROUTE = "route", "Block routed"

    class Source(models.TextChoices):
        FEED = "feed", "Live feed"
        STALE = "stale", "Feed (stale)"
        REFERENCE = "reference", "Reference price (no feed)"

    kind = models.CharField(max_length=8, choices=Kind.choices)
    order = models.ForeignKey(
        "orders.Order", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    block = models.ForeignKey(
        "orders.Block", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    security = models.ForeignKey("oms.Security", on_delete=models.CASCADE, related_name="+")
    at = models.DateTimeField()
    bid = PriceField(null=True, blank=True)
    ask = PriceField(null=True, blank=True)
    mid = PriceField(null=True, blank=True)
    source = models.CharField(max_length=10, choices=Source.choices)

    class Meta:
        constraints = [
            # The first arrival counts: an order staged again keeps its first benchmark.
            models.UniqueConstraint(
                fields=["kind", "order"], condition=Q(order__isnull=False), name="arrival_order"
            ),
            models.UniqueConstraint(
                fields=["kind", "block"], condition=Q(block__isnull=False), name="arrival_block"
            ),
            models.CheckConstraint(
                condition=Q(order__isnull=False) | Q(block__isnull=False),
                name="arrival_has_subject",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.order_id or self.block_id} {self.mid}"
