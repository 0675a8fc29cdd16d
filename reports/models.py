"""End-of-day reports, kept immutable: each generation is a new row with the SHA-256 of its
content; a trigger refuses UPDATE and DELETE (reports/migrations/0002)."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class ReportKind(models.TextChoices):
    TRADES = "trades_by_account", "Trades by account"
    COMMISSIONS = "commissions_by_broker", "Commissions and fees by broker"
    COMPLIANCE = "compliance_overrides_breaches", "Compliance overrides and breaches"
    EXCEPTIONS = "exceptions", "Exceptions opened and resolved"
    POSITIONS = "positions_cash", "Positions and cash by account"
    TCA = "tca_summary", "TCA summary"


class Report(models.Model):
    kind = models.CharField(max_length=40, choices=ReportKind.choices)
    report_date = models.DateField()
    version = models.PositiveIntegerField(default=1)
    # {"columns": [...], "rows": [[...], ...]}: every value a string (decimals exact).
    content = models.JSONField()
    content_hash = models.CharField(max_length=64)
    # The column that names an account, if any: a PM sees only the rows of their accounts,
    # and not at all a report without one (it may name any account's business).
    account_column = models.CharField(max_length=32, blank=True)
    generated_at = models.DateTimeField()
    generated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        ordering = ["-report_date", "kind", "-version"]
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "report_date", "version"], name="report_version_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.report_date} v{self.version}"
