"""audit_record_many: several events appended with one lock, one head read and one INSERT,
linked exactly as audit_record links them."""

from decimal import Decimal

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from audit.models import AuditEvent
from audit.selectors import audit_chain_verify
from audit.services import (
    CHAIN_LOCK_KEY,
    GENESIS_HASH,
    audit_chain_last,
    audit_record,
    audit_record_many,
    digest_of,
)

pytestmark = pytest.mark.django_db


def _bulk(actor, n: int, tag: str = "bulk") -> list[AuditEvent]:
    return audit_record_many(
        [
            {
                "actor": actor,
                "action": f"test.{tag}",
                "object_type": "x",
                "object_id": i,
                "before": {"q": Decimal("1.50")},
                "after": {"q": i, "price": Decimal("101.25")},
            }
            for i in range(n)
        ]
    )


def test_a_chain_mixing_single_and_bulk_writes_links_and_verifies(refdata):
    first = audit_record(actor=refdata.pm1, action="test.single", object_type="x", object_id=1)
    bulk = _bulk(refdata.pm1, 4)
    last = audit_record(actor=refdata.pm1, action="test.single", object_type="x", object_id=2)
    chain = [first, *bulk, last]
    for earlier, later in zip(chain, chain[1:], strict=False):
        assert later.chain_seq == earlier.chain_seq + 1
        assert later.prev_hash == earlier.hash
    stored = {e.pk: e for e in AuditEvent.objects.filter(pk__in=[e.pk for e in chain])}
    assert len(stored) == 6
    for event in chain:
        assert digest_of(stored[event.pk]) == event.hash
    # Values are stored as jsonb gives them back, as audit_record stores them.
    assert stored[bulk[2].pk].after == {"q": 2, "price": "101.25"}
    assert stored[bulk[2].pk].actor_username == "pm1"
    checked, broken = audit_chain_verify()
    assert broken is None and checked >= 6
    call_command("audit_verify")


def test_a_tampered_bulk_row_is_found(refdata):
    events = _bulk(refdata.pm1, 5)
    victim = events[3]
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER audit_event_no_update_delete")
        cursor.execute(
            "UPDATE audit_auditevent SET after = '{\"q\": 999}'::jsonb WHERE id = %s", [victim.pk]
        )
        cursor.execute("ALTER TABLE audit_auditevent ENABLE TRIGGER audit_event_no_update_delete")
    _, broken = audit_chain_verify()
    assert broken is not None
    assert (broken.chain_seq, broken.reason) == (victim.chain_seq, "content does not match hash")
    with pytest.raises(CommandError, match=f"broken at event #{victim.chain_seq}"):
        call_command("audit_verify")


def test_events_of_a_rolled_back_transaction_leave_no_trace_in_the_chain(refdata):
    head = audit_record(actor=refdata.pm1, action="test.single")

    class Boom(Exception):
        pass

    with pytest.raises(Boom), transaction.atomic():
        _bulk(refdata.pm1, 3)
        raise Boom
    after = audit_record(actor=refdata.pm1, action="test.single")
    assert (after.chain_seq, after.prev_hash) == (head.chain_seq + 1, head.hash)
    assert audit_chain_verify()[1] is None


def test_many_events_cost_the_same_few_queries_as_two(refdata):
    with CaptureQueriesContext(connection) as one:
        _bulk(refdata.pm1, 1)
    with CaptureQueriesContext(connection) as two:
        _bulk(refdata.pm1, 2)
    with CaptureQueriesContext(connection) as many:
        events = _bulk(refdata.pm1, 300)
    # The chain lock, the head, the INSERT (one row); or the keys and a COPY (several).
    assert len(one.captured_queries) == 3
    assert len(two.captured_queries) == len(many.captured_queries) == 4
    assert [e.chain_seq for e in events] == list(
        range(events[0].chain_seq, events[0].chain_seq + 300)
    )
    stored = list(AuditEvent.objects.filter(pk__in=[e.pk for e in events]).order_by("pk"))
    assert [e.chain_seq for e in stored] == [e.chain_seq for e in events]
    assert audit_record_many([]) == []


def _chain_lock_held() -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_locks WHERE pid = pg_backend_pid() AND locktype = 'advisory'"
            " AND ((classid::bigint << 32) | objid::bigint) = %s",
            [CHAIN_LOCK_KEY],
        )
        return cursor.fetchone()[0] > 0


def test_a_chain_last_scope_links_its_events_at_its_end_under_the_lock_taken_last(refdata):
    prior = AuditEvent.objects.order_by("-chain_seq").first()
    assert not _chain_lock_held()
    with transaction.atomic(), audit_chain_last():
        one = audit_record(actor=refdata.pm1, action="test.held", object_id=1)
        many = _bulk(refdata.pm1, 3, tag="held")
        try:
            with transaction.atomic():
                audit_record(actor=refdata.pm1, action="test.undone")
                _bulk(refdata.pm1, 2, tag="undone")
                raise ValueError
        except ValueError:
            pass
        last = audit_record(actor=refdata.pm1, action="test.held", object_id=2)
        # Held, not linked: no chain position yet, and the chain is not locked.
        assert one.pk is None and one.chain_seq is None and many == []
        assert not _chain_lock_held()
    assert _chain_lock_held()  # taken at the end, held to the transaction's end
    chain = [one, *many, last]
    assert [e.action for e in chain] == ["test.held"] * 5
    assert one.chain_seq == (prior.chain_seq + 1 if prior else 1)
    assert one.prev_hash == (prior.hash if prior else GENESIS_HASH)
    for earlier, later in zip(chain, chain[1:], strict=False):
        assert later.chain_seq == earlier.chain_seq + 1
        assert later.prev_hash == earlier.hash
    stored = {e.pk: e for e in AuditEvent.objects.filter(pk__in=[e.pk for e in chain])}
    assert all(digest_of(stored[e.pk]) == e.hash for e in chain)
    assert not AuditEvent.objects.filter(action="test.undone").exists()
    assert audit_chain_verify()[1] is None


def test_a_chain_last_scope_that_fails_links_nothing(refdata):
    head = audit_record(actor=refdata.pm1, action="test.single")
    with pytest.raises(ValueError), transaction.atomic(), audit_chain_last():
        audit_record(actor=refdata.pm1, action="test.lost")
        raise ValueError
    after = audit_record(actor=refdata.pm1, action="test.single")
    assert after.chain_seq == head.chain_seq + 1 and after.prev_hash == head.hash
