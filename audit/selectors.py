from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Q, QuerySet

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
        qs = qs.filter(_action_matches(action))
    if object_type:
        qs = qs.filter(object_type=object_type)
    if object_id:
        qs = qs.filter(object_id=object_id)
    if since:
        qs = qs.filter(occurred_at__gte=since)
    if until:
        qs = qs.filter(occurred_at__lt=until)
    # Newest first by time, the chain's order breaking ties (the two agree but for events
    # committed within the same moments): every filter then reads its page from an index
    # ending in (occurred_at, chain_seq) in order, a month of a year's trail included, where
    # the chain's order alone had to skip every newer event first (bench/scale_bench.py).
    return qs.order_by("-occurred_at", "-chain_seq")


def _action_matches(action: str) -> Q:
    """ "order." (or "order.*") is a prefix; "order" matches itself and every "order.<verb>"."""
    stem = action.rstrip("*")
    if stem.endswith("."):
        return Q(action__startswith=stem)
    return Q(action=stem) | Q(action__startswith=stem + ".")


# Long values are cut in the table; the cell's title carries the value up to this length.
_SHOWN_CHARS = 120
_TITLE_CHARS = 4000


def _shown(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, default=str)


@dataclass(frozen=True)
class FieldChange:
    field: str
    before: str
    after: str
    before_full: str
    after_full: str


def audit_changes(*, before: Any, after: Any) -> list[FieldChange]:
    """An event's before/after as the fields that changed, each as readable text: a created
    object lists every field under "after", a deleted one under "before"."""
    if not isinstance(before, dict | None) or not isinstance(after, dict | None):
        pairs = [("", before, after)]
    else:
        old, new = before or {}, after or {}
        pairs = [
            (key, old.get(key), new.get(key))
            for key in sorted(old.keys() | new.keys())
            if key not in old or key not in new or old[key] != new[key]
        ]
    changes = []
    for key, old_value, new_value in pairs:
        old_text, new_text = _shown(old_value), _shown(new_value)
        changes.append(
            FieldChange(
                field=str(key),
                before=_cut(old_text),
                after=_cut(new_text),
                before_full=old_text[:_TITLE_CHARS],
                after_full=new_text[:_TITLE_CHARS],
            )
        )
    return changes


def _cut(text: str) -> str:
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 1] + "…"


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
