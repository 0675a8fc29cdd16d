"""The audit chain against anchors kept outside the database: a database superuser who
rewrites an old event and rehashes every later one passes the chain walk, but not the
anchors; an edited anchor fails its signature."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.utils import timezone

from audit.anchors import audit_anchor_write, audit_anchors_verify
from audit.models import AuditEvent
from audit.selectors import audit_chain_verify
from audit.services import GENESIS_HASH, audit_record, event_digest

pytestmark = pytest.mark.django_db(transaction=True)

_DIGESTED = (
    "chain_seq",
    "occurred_at",
    "actor_id",
    "actor_username",
    "action",
    "object_type",
    "object_id",
    "object_repr",
    "before",
    "after",
    "request_id",
    "ip",
)


@pytest.fixture
def anchor_dir(settings, tmp_path):
    settings.OMS_AUDIT_ANCHOR_DIR = str(tmp_path / "anchors")
    return tmp_path / "anchors"


def _record(n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        audit_record(action="test.event", after={"i": i}, occurred_at=timezone.now())


def _rewrite_and_rehash(chain_seq: int) -> None:
    """What the database owner can do: lift the append-only trigger, change one event and
    recompute every later hash so that the chain links again."""
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER USER")
    try:
        prev = GENESIS_HASH
        for event in AuditEvent.objects.order_by("chain_seq"):
            if event.chain_seq == chain_seq:
                event.after = {"i": "rewritten"}
            fields = {name: getattr(event, name) for name in _DIGESTED}
            event.prev_hash = prev
            event.hash = event_digest(**fields, prev_hash=prev)
            AuditEvent.objects.filter(pk=event.pk).update(
                after=event.after, prev_hash=event.prev_hash, hash=event.hash
            )
            prev = event.hash
    finally:
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE audit_auditevent ENABLE TRIGGER USER")


def test_anchors_catch_a_rewrite_the_chain_walk_cannot(anchor_dir):
    _record(5)
    first = audit_anchor_write(as_of=timezone.now())
    assert first is not None and first.chain_seq == AuditEvent.objects.count()
    # Nothing new: no second anchor of the same head.
    assert audit_anchor_write(as_of=timezone.now()) is None
    _record(5, start=5)
    second = audit_anchor_write(as_of=timezone.now())
    assert second.chain_seq > first.chain_seq
    assert audit_anchors_verify() == (2, None)
    call_command("audit_verify")

    _rewrite_and_rehash(chain_seq=2)
    checked, broken = audit_chain_verify()
    assert broken is None  # the chain alone says "intact"
    held, anchor_break = audit_anchors_verify()
    assert held == 0
    assert anchor_break.anchor.chain_seq == first.chain_seq
    assert "rewritten" in anchor_break.reason
    with pytest.raises(CommandError, match=r"anchor anchors-.*:1 .*broken"):
        call_command("audit_verify")


def test_an_edited_anchor_fails_its_signature(anchor_dir):
    _record(3)
    audit_anchor_write(as_of=timezone.now())
    (path,) = anchor_dir.glob("anchors-*.jsonl")
    row = json.loads(path.read_text())
    row["hash"] = "0" * 64
    path.write_text(json.dumps(row) + "\n")
    held, anchor_break = audit_anchors_verify()
    assert held == 0 and "signature" in anchor_break.reason
