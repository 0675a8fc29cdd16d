from django.db import models

from oms.fields import MoneyField


class Broker(models.Model):
    """An executing broker and the FIX session the OMS keeps with it."""

    class FixVersion(models.TextChoices):
        FIX42 = "FIX.4.2", "FIX 4.2"
        FIX44 = "FIX.4.4", "FIX 4.4"

    code = models.CharField(max_length=32, unique=True)
    name = models.CharField(max_length=200)
    host = models.CharField(max_length=255, default="127.0.0.1")
    port = models.PositiveIntegerField()
    fix_version = models.CharField(
        max_length=8, choices=FixVersion.choices, default=FixVersion.FIX44
    )
    sender_comp_id = models.CharField(max_length=64)
    target_comp_id = models.CharField(max_length=64)
    heartbeat_seconds = models.PositiveIntegerField(default=30)
    active = models.BooleanField(default=True)
    commission_bps = MoneyField(default=0, help_text="Commission in basis points of gross")
    commission_per_share = MoneyField(default=0)
    # Per-broker extras: e.g. {"strategy_tags": {"participation": 6403}}.
    extra_config = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["code"]
        constraints = [
            models.UniqueConstraint(
                fields=["sender_comp_id", "target_comp_id"], name="broker_session_unique"
            ),
        ]

    def __str__(self) -> str:
        return self.code
