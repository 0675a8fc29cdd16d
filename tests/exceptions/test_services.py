"""Opening exceptions (idempotent per kind and ref, also across connections), resolving them
with a note (audited, once), clearing them automatically, and the selectors."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection, transaction

from audit.models import AuditEvent
from oms.errors import Conflict, DomainError, NotFound
from oms.models import OpsException
from oms.selectors import exceptions_list, exceptions_open_counts
from oms.services import exception_resolve, exceptions_resolve_for

from .conftest import T0, open_one

pytestmark = pytest.mark.django_db


def test_open_creates_one_row_and_audits_it():
    exc = open_one(block_id=12, order_id=5, detail={"fee": Decimal("1.50"), "day": T0.date()})
    assert exc.is_open and exc.occurrences == 1
    assert (exc.kind, exc.ref, exc.source) == (
        "booking_failed",
        "block:12:2026-10-09",
        "allocation",
    )
    assert exc.opened_at == exc.last_seen_at == T0
    assert (exc.block_id, exc.order_id, exc.broker_id) == (12, 5, None)
    assert exc.detail == {"fee": "1.50", "day": "2026-10-09"}  # JSON: Decimals and dates as text
    event = AuditEvent.objects.get(action="exception.open")
    assert (event.object_type, event.object_id) == ("oms.opsexception", str(exc.pk))
    assert event.after["kind"] == "booking_failed" and event.actor_id is None


def test_opening_again_counts_an_occurrence_on_the_open_one():
    first = open_one(block_id=12, detail={"attempt": 1})
    again = open_one(
        at=T0 + timedelta(minutes=5), summary="still failing", detail={"attempt": 2}, order_id=7
    )
    assert again.pk == first.pk
    assert again.occurrences == 2
    assert again.opened_at == T0 and again.last_seen_at == T0 + timedelta(minutes=5)
    assert again.summary == "still failing" and again.detail == {"attempt": 2}
    assert (again.block_id, again.order_id) == (12, 7)  # the ids it lacked are filled in
    # A late caller with an earlier clock does not move last_seen_at back.
    late = open_one(at=T0 + timedelta(minutes=1))
    assert late.occurrences == 3 and late.last_seen_at == T0 + timedelta(minutes=5)
    assert OpsException.objects.count() == 1
    assert AuditEvent.objects.filter(action="exception.open").count() == 1


def test_another_ref_or_kind_is_another_exception():
    a = open_one(ref="block:12:2026-10-09")
    b = open_one(ref="block:13:2026-10-09")
    c = open_one(kind="unconfirmed_order", ref="block:12:2026-10-09")
    assert len({a.pk, b.pk, c.pk}) == 3


def test_after_resolution_the_next_occurrence_opens_a_new_row(refdata):
    first = open_one()
    exception_resolve(exception_id=first.pk, note="fixed", actor=refdata.ops, as_of=T0)
    second = open_one(at=T0 + timedelta(hours=1))
    assert second.pk != first.pk and second.occurrences == 1 and second.is_open
    first.refresh_from_db()
    assert not first.is_open and first.occurrences == 1


def test_open_runs_in_the_callers_transaction():
    with pytest.raises(RuntimeError), transaction.atomic():
        open_one()
        open_one()
        raise RuntimeError("the caller fails later")
    assert not OpsException.objects.exists()
    assert not AuditEvent.objects.filter(action="exception.open").exists()


def test_summary_is_one_line_and_bounded():
    exc = open_one(summary="Booking failed:\n  calendar\tmissing " + "x" * 400)
    assert "\n" not in exc.summary and exc.summary.startswith("Booking failed: calendar missing x")
    assert len(exc.summary) == 300 and exc.summary.endswith("\u2026")


@pytest.mark.parametrize(
    "bad",
    [
        {"kind": ""},
        {"kind": "Booking Failed"},
        {"kind": "k" * 65},
        {"source": ""},
        {"ref": "  "},
        {"ref": "r" * 201},
        {"summary": " \n "},
        {"detail": ["not", "a", "dict"]},
    ],
)
def test_open_refuses_what_it_cannot_file(bad):
    values = {
        "kind": "booking_failed",
        "ref": "block:1",
        "summary": "s",
        "source": "allocation",
        **bad,
    }
    with pytest.raises(DomainError):
        open_one(**values)
    assert not OpsException.objects.exists()


def test_resolve_with_a_note_is_audited(refdata):
    exc = open_one()
    resolved = exception_resolve(
        exception_id=exc.pk, note="  rebooked by hand  ", actor=refdata.ops, as_of=T0
    )
    assert not resolved.is_open
    assert (resolved.resolved_at, resolved.resolved_by, resolved.resolution_note) == (
        T0,
        refdata.ops,
        "rebooked by hand",
    )
    event = AuditEvent.objects.get(action="exception.resolve")
    assert event.actor_id == refdata.ops.pk and event.object_id == str(exc.pk)
    assert event.after["note"] == "rebooked by hand" and event.after["automatic"] is False
    assert event.before == {"status": "open", "occurrences": 1}


def test_resolving_twice_is_a_conflict(refdata):
    exc = open_one()
    exception_resolve(exception_id=exc.pk, note="done", actor=refdata.ops, as_of=T0)
    with pytest.raises(Conflict) as raised:
        exception_resolve(exception_id=exc.pk, note="again", actor=refdata.trader, as_of=T0)
    assert raised.value.status_code == 409 and raised.value.code == "already_resolved"
    assert "ops1" in raised.value.message
    exc.refresh_from_db()
    assert exc.resolution_note == "done" and exc.resolved_by == refdata.ops
    assert AuditEvent.objects.filter(action="exception.resolve").count() == 1


@pytest.mark.parametrize("note", ["", "   ", None, "n" * 2001])
def test_resolve_needs_a_note(refdata, note):
    exc = open_one()
    with pytest.raises(DomainError) as raised:
        exception_resolve(exception_id=exc.pk, note=note, actor=refdata.ops, as_of=T0)
    assert raised.value.status_code == 400
    exc.refresh_from_db()
    assert exc.is_open


def test_resolving_a_missing_exception_is_not_found(refdata):
    with pytest.raises(NotFound):
        exception_resolve(exception_id=999_999, note="x", actor=refdata.ops, as_of=T0)


def test_resolve_for_clears_the_open_one_when_the_condition_goes_away():
    open_one()
    with transaction.atomic():  # as a caller's transaction would
        cleared = exceptions_resolve_for(
            kind="booking_failed",
            ref="block:12:2026-10-09",
            note="booked on retry",
            as_of=T0 + timedelta(hours=1),
        )
    assert cleared is not None and not cleared.is_open and cleared.resolved_by is None
    assert cleared.resolution_note == "booked on retry"
    event = AuditEvent.objects.get(action="exception.resolve")
    assert event.actor_id is None and event.after["automatic"] is True
    # Nothing open any more: nothing to do, and no error.
    again = exceptions_resolve_for(
        kind="booking_failed", ref="block:12:2026-10-09", note="x", as_of=T0
    )
    assert again is None
    assert AuditEvent.objects.filter(action="exception.resolve").count() == 1


def test_list_filters_and_order(queue):
    ids = lambda qs: [e.pk for e in qs]  # noqa: E731
    q = queue
    # Open ones first, most recently seen first; then the resolved one.
    assert ids(exceptions_list()) == [
        q["unacked"].pk,
        q["quarantined"].pk,
        q["booking"].pk,
        q["resolved"].pk,
    ]
    assert ids(exceptions_list(status="resolved")) == [q["resolved"].pk]
    assert len(exceptions_list(status="open")) == 3
    assert ids(exceptions_list(kind="booking_failed", status="open")) == [q["booking"].pk]
    assert set(ids(exceptions_list(source="fixgateway"))) == {
        q["quarantined"].pk,
        q["unacked"].pk,
    }
    assert ids(exceptions_list(search="clordid")) == [q["quarantined"].pk]  # summary
    assert ids(exceptions_list(search="BLOCK:9")) == [q["resolved"].pk]  # ref
    assert ids(
        exceptions_list(since=T0 + timedelta(minutes=30), until=T0 + timedelta(hours=2))
    ) == [q["quarantined"].pk]
    with pytest.raises(ValueError):
        exceptions_list(status="closed")


def test_open_counts_by_kind_in_one_query(queue, django_assert_num_queries):
    with django_assert_num_queries(1):
        counts = exceptions_open_counts()
    assert counts == {"booking_failed": 1, "quarantined_report": 1, "unacknowledged_order": 1}


# --- Two connections at once -------------------------------------------------------------------


def _waiting_on_a_lock(pid: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_locks WHERE pid = %s AND NOT granted", [pid])
        return cursor.fetchone()[0] > 0


@pytest.mark.django_db(transaction=True)
def test_two_connections_opening_the_same_exception_end_on_one_row():
    """The first opens it and holds its transaction; the second's open waits on the unique
    index, then counts an occurrence on the same row once the first commits."""
    first_opened, second_ready, release = threading.Event(), threading.Event(), threading.Event()
    results: dict = {}
    errors: list[BaseException] = []

    def first():
        try:
            with transaction.atomic():
                results["first"] = open_one(detail={"from": "first"})
                first_opened.set()
                release.wait(20)
        except BaseException as exc:  # reported to the test thread
            errors.append(exc)
        finally:
            connection.close()

    def second():
        try:
            first_opened.wait(20)
            connection.ensure_connection()
            results["pid"] = connection.connection.info.backend_pid
            second_ready.set()
            results["second"] = open_one(at=T0 + timedelta(seconds=1), detail={"from": "second"})
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    try:
        assert second_ready.wait(20)
        deadline = time.monotonic() + 10
        while not _waiting_on_a_lock(results["pid"]):
            assert time.monotonic() < deadline, "the second open never waited for the first"
            time.sleep(0.02)
        assert "second" not in results
    finally:
        release.set()
        for t in threads:
            t.join(30)
    assert not errors, errors
    assert results["second"].pk == results["first"].pk
    row = OpsException.objects.get()
    assert row.occurrences == 2 and row.detail == {"from": "second"}
    assert AuditEvent.objects.filter(action="exception.open").count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_burst_of_opens_from_several_threads_counts_every_one():
    n = 4
    barrier = threading.Barrier(n)
    errors: list[BaseException] = []

    def worker(i: int):
        try:
            barrier.wait(20)
            open_one(at=T0 + timedelta(seconds=i))
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors
    row = OpsException.objects.get()
    assert row.occurrences == n and row.last_seen_at == T0 + timedelta(seconds=n - 1)
