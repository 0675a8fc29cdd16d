from django.conf import settings
from django.db import models


class AuditEvent(models.Model):
    """One append-only, hash-chained record of something a person or the system did.

    UPDATE and DELETE are refused by a database trigger (migration 0002); `hash` covers this
    row's content and `prev_hash`, so an edit made behind the trigger's back breaks the chain.
    """

    chain_seq = models.BigIntegerField(unique=True)
    occurred_at = models.DateTimeField()
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    actor_username = models.CharField(max_length=150, blank=True)
    action = models.CharField(max_length=64, db_index=True)
    object_type = models.CharField(max_length=64, blank=True, db_index=True)
    object_id = models.CharField(max_length=64, blank=True, db_index=True)
    object_repr = models.CharField(max_length=200, blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    request_id = models.CharField(max_length=64, blank=True, db_index=True)
    ip = models.CharField(max_length=64, blank=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)

    class Meta:
        ordering = ["-chain_seq"]
        indexes = [
            models.Index(fields=["object_type", "object_id"]),
            # The audit page's order (audit.selectors.audit_events), alone and per user.
            models.Index(fields=["occurred_at", "chain_seq"], name="audit_occurred_seq_idx"),
            models.Index(
                fields=["actor_username", "occurred_at", "chain_seq"],
                name="audit_user_occurred_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.chain_seq} {self.action} {self.object_type}:{self.object_id}"
