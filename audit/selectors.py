from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from django.db.models import QuerySet

from .models import AuditEvent
from .services import GENESIS_HASH, digest_of


@dataclass(frozen=True)
class ChainBreak:
    chain_seq: int
    event_id: int
    reason: str


def audit_events(
    *,
    username: str = "",
    action: str = "",
    object_type: str = "",
    object_id: str = "",
    since: datetime | None = None,
    until: datetime | None = None,
) -> QuerySet[AuditEvent]:
    qs = AuditEvent.objects.all()
    if username:
        qs = qs.filter(actor_username=username)
    if action:
        qs = qs.filter(action=action)
    if object_type:
        qs = qs.filter(object_type=object_type)
    if object_id:
        qs = qs.filter(object_id=object_id)
    if since:
        qs = qs.filter(occurred_at__gte=since)
    if until:
        qs = qs.filter(occurred_at__lt=until)
    return qs.order_by("-chain_seq")


def audit_chain_verify(*, batch_size: int = 5000) -> tuple[int, ChainBreak | None]:
    """Walk the chain from the first event; return how many verified and the first break."""
    expected_prev = GENESIS_HASH
    expected_seq = 1
    checked = 0
    events: Iterator[AuditEvent] = AuditEvent.objects.order_by("chain_seq").iterator(
        chunk_size=batch_size
    )
    for event in events:
        if event.chain_seq != expected_seq:
            return checked, ChainBreak(event.chain_seq, event.pk, f"missing event #{expected_seq}")
        if event.prev_hash != expected_prev:
            return checked, ChainBreak(event.chain_seq, event.pk, "prev_hash does not link")
        if digest_of(event) != event.hash:
            return checked, ChainBreak(event.chain_seq, event.pk, "content does not match hash")
        expected_prev = event.hash
        expected_seq += 1
        checked += 1
    return checked, None
