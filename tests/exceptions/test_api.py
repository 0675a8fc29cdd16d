"""GET /api/exceptions/, /api/exceptions/{id}/, POST /api/exceptions/{id}/resolve/: who may,
the filters (each checked: a bad value is a 400 naming the parameter), 404s and 409s."""

from __future__ import annotations

import pytest
from django.test import Client

from oms.models import OpsException

from .conftest import open_one

pytestmark = pytest.mark.django_db


def as_user(user) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def resolve(client, pk, body):
    return client.post(f"/api/exceptions/{pk}/resolve/", body, content_type="application/json")


@pytest.mark.parametrize(
    "role, read, resolve_status",
    [
        ("pm1", 403, 403),
        ("trader", 200, 200),
        ("compliance", 200, 403),
        ("ops", 200, 200),
        ("admin", 200, 200),
        (None, 401, 401),
    ],
)
def test_who_may_read_and_resolve(refdata, role, read, resolve_status):
    exc = open_one()
    client = as_user(getattr(refdata, role) if role else None)
    assert client.get("/api/exceptions/").status_code == read
    assert client.get(f"/api/exceptions/{exc.pk}/").status_code == read
    response = resolve(client, exc.pk, {"note": "looked at it"})
    assert response.status_code == resolve_status
    exc.refresh_from_db()
    assert exc.is_open == (resolve_status != 200)
    if resolve_status == 200:
        assert response.json()["resolved_by"] == getattr(refdata, role).username


def test_list_is_paginated_open_first_with_every_field(refdata, queue):
    body = as_user(refdata.compliance).get("/api/exceptions/").json()
    assert body["count"] == 4 and body["next"] is None
    rows = body["results"]
    assert [r["status"] for r in rows] == ["open", "open", "open", "resolved"]
    assert rows[0]["id"] == queue["unacked"].pk
    quarantined = next(r for r in rows if r["kind"] == "quarantined_report")
    assert quarantined == {
        "id": queue["quarantined"].pk,
        "kind": "quarantined_report",
        "source": "fixgateway",
        "ref": "BRKA:exec:E-77",
        "summary": "Execution report E-77 quarantined: unknown ClOrdID",
        "detail": {"exec_id": "E-77", "reason": "unknown ClOrdID", "fields": {"17": "E-77"}},
        "block_id": None,
        "order_id": None,
        "broker_id": 3,
        "status": "open",
        "opened_at": "2026-10-09T22:30:00Z",
        "last_seen_at": "2026-10-09T22:30:00Z",
        "occurrences": 1,
        "resolved_at": None,
        "resolved_by": None,
        "resolution_note": "",
    }
    resolved = rows[-1]
    assert resolved["resolved_by"] == "ops1" and resolved["resolution_note"] == "booked by hand"
    page = as_user(refdata.ops).get("/api/exceptions/?page_size=2&page=2").json()
    assert [r["id"] for r in page["results"]] == [queue["booking"].pk, queue["resolved"].pk]


@pytest.mark.parametrize(
    "query, expected",
    [
        ("status=open", ["unacked", "quarantined", "booking"]),
        ("status=resolved", ["resolved"]),
        ("status=all", ["unacked", "quarantined", "booking", "resolved"]),
        ("status=", ["unacked", "quarantined", "booking", "resolved"]),
        ("kind=booking_failed", ["booking", "resolved"]),
        ("kind=booking_failed&status=open", ["booking"]),
        ("kind=no_such_kind", []),  # kinds are an open set: an unknown one matches nothing
        ("source=fixgateway", ["unacked", "quarantined"]),
        ("q=clordid", ["quarantined"]),
        ("q=order:41", ["unacked"]),
        ("since=2026-10-09", ["unacked", "quarantined", "booking"]),
        ("until=2026-10-08", ["resolved"]),  # a date as the end covers that whole day
        ("since=0001-01-01&until=9999-12-31", ["unacked", "quarantined", "booking", "resolved"]),
        ("since=2026-10-09T22:00:00Z&until=2026-10-09T23:30:00%2B00:00", ["quarantined"]),
        ("since=2026-10-09T23:00:00%2B01:00&until=2026-10-09T22:31", ["quarantined"]),
        # An offset Python reads and Postgres would not: compared in UTC.
        ("since=2026-10-10T15:00-16:43", []),
        ("until=2026-10-09T05:00-16:43", ["booking", "resolved"]),
    ],
)
def test_filters(refdata, queue, query, expected):
    response = as_user(refdata.trader).get(f"/api/exceptions/?{query}")
    assert response.status_code == 200, response.json()
    assert [r["id"] for r in response.json()["results"]] == [queue[k].pk for k in expected]


@pytest.mark.parametrize(
    "query, parameter",
    [
        ("status=closed", "status"),
        ("kind=Booking%20Failed", "kind"),
        ("kind=" + "k" * 65, "kind"),
        ("source=ALLOCATION!", "source"),
        ("q=" + "x" * 201, "q"),
        ("since=yesterday", "since"),
        ("since=2026-02-30", "since"),
        ("until=2026-13-01T00:00:00", "until"),
        ("until=10000-01-01", "until"),
        ("since=0001-01-01T00:00:00%2B05:00", "since"),
        ("since=2026-10-09T25:00", "since"),
        ("since=2026-10-10&until=2026-10-09", "until"),
    ],
)
def test_a_bad_filter_value_is_a_400_naming_the_parameter(refdata, queue, query, parameter):
    response = as_user(refdata.ops).get(f"/api/exceptions/?{query}")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid" and list(error["fields"]) == [parameter]


def test_a_missing_exception_is_a_json_404(refdata):
    client = as_user(refdata.ops)
    for pk in (999_999, 99_999_999_999_999_999_999, 0, -1, "abc", "%C2%B2"):
        response = client.get(f"/api/exceptions/{pk}/")
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"
        response = resolve(client, pk, {"note": "x"})
        assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


def test_resolve_needs_a_note_and_happens_once(refdata):
    exc = open_one()
    ops = as_user(refdata.ops)
    for body in ({}, {"note": ""}, {"note": "   "}, {"note": "n" * 2001}, ["note"], {"note": None}):
        response = resolve(ops, exc.pk, body)
        assert response.status_code == 400, body
        fields = response.json()["error"]["fields"]
        assert "note" in fields or "non_field_errors" in fields
    exc.refresh_from_db()
    assert exc.is_open
    done = resolve(ops, exc.pk, {"note": "Rebooked after the calendar was loaded."})
    assert done.status_code == 200
    assert done.json()["status"] == "resolved"
    assert done.json()["resolution_note"] == "Rebooked after the calendar was loaded."
    again = resolve(as_user(refdata.trader), exc.pk, {"note": "me too"})
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "already_resolved"
    assert OpsException.objects.get().resolved_by == refdata.ops


def test_the_schema_describes_the_endpoints(client, refdata):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    listing = schema["paths"]["/api/exceptions/"]["get"]
    assert {p["name"] for p in listing["parameters"]} >= {
        "status",
        "kind",
        "source",
        "q",
        "since",
        "until",
        "page",
        "page_size",
    }
    assert "post" in schema["paths"]["/api/exceptions/{id}/resolve/"]
    assert "get" in schema["paths"]["/api/exceptions/{id}/"]
