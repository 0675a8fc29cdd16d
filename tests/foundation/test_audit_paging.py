"""The audit page pages without counting: newest first by time, the chain's order breaking
ties; a further page is offered only when one more row exists; any page number is a page."""

from datetime import UTC, datetime, timedelta

import pytest

from audit.services import audit_record_many

pytestmark = pytest.mark.django_db


def test_audit_pages_without_counting(client, refdata):
    start = datetime(2026, 3, 2, 9, tzinfo=UTC)
    # Two events at the same moment: the later link of the chain shows first.
    audit_record_many(
        [
            {"action": "test.thing", "object_type": "x", "object_id": i, "occurred_at": when}
            for i, when in enumerate(
                [start + timedelta(minutes=i) for i in range(104)] + [start + timedelta(days=1)] * 2
            )
        ]
    )
    client.force_login(refdata.compliance)
    first = client.get("/audit/", {"action": "test.thing"})
    body = first.content.decode()
    assert first.status_code == 200 and body.count('<tr data-event-seq="') == 100
    assert "older »" in body and "« newer" not in body and "page 1<" in body
    seqs = [int(s.split('"')[0]) for s in body.split('data-event-seq="')[1:]]
    assert seqs[0] > seqs[1] and seqs[2:] == sorted(seqs[2:], reverse=True)
    second = client.get("/audit/", {"action": "test.thing", "page": "2"}).content.decode()
    assert second.count('<tr data-event-seq="') == 6
    assert "« newer" in second and "older »" not in second
    # A day's events, "until" that day included.
    march = client.get("/audit/", {"since": "2026-03-02", "until": "2026-03-02"})
    assert march.content.decode().count('<tr data-event-seq="') == 100
    for page in ("abc", "-3", "99999999999999999999"):
        assert client.get("/audit/", {"page": page}).status_code == 200
