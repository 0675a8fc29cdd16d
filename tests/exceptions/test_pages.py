"""The /exceptions/ page (list, filters, detail, resolve) and its navigation entry."""

from __future__ import annotations

import pytest
from django.test import Client

from audit.models import AuditEvent

from .conftest import open_one

pytestmark = pytest.mark.django_db


def as_user(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.parametrize(
    "role, status, in_nav",
    [("pm1", 403, False), ("trader", 200, True), ("compliance", 200, True), ("ops", 200, True)],
)
def test_who_sees_the_page_and_the_navigation_entry(refdata, queue, role, status, in_nav):
    client = as_user(getattr(refdata, role))
    assert client.get("/exceptions/").status_code == status
    assert client.get(f"/exceptions/{queue['booking'].pk}/").status_code == status
    assert ('href="/exceptions/"' in client.get("/").content.decode()) is in_nav


def test_the_list_shows_open_ones_first_with_the_open_count(refdata, queue):
    page = as_user(refdata.ops).get("/exceptions/").content.decode()
    assert "<strong>3</strong> open" in page
    order = [
        page.index(f'data-exception-id="{queue[k].pk}"')
        for k in ("unacked", "quarantined", "booking", "resolved")
    ]
    assert order == sorted(order)
    assert "booked by hand" not in page  # notes are on the detail page
    filtered = as_user(refdata.ops).get("/exceptions/?status=resolved").content.decode()
    assert f'data-exception-id="{queue["resolved"].pk}"' in filtered
    assert f'data-exception-id="{queue["booking"].pk}"' not in filtered


def test_a_bad_filter_is_shown_not_a_crash(refdata, queue):
    response = as_user(refdata.ops).get("/exceptions/?since=not-a-date&status=closed&page=zz")
    # A 400 (the filter is wrong), with the page and its form saying what is wrong.
    assert response.status_code == 400
    page = response.content.decode()
    assert 'data-testid="filter-errors"' in page and "Opened from" in page and "Status" in page
    assert "No exceptions match." in page


def test_paging(refdata, db):
    for i in range(55):
        open_one(ref=f"block:{i}:2026-10-09")
    client = as_user(refdata.ops)
    first = client.get("/exceptions/").content.decode()
    assert first.count("data-exception-id=") == 50 and "page 1 of 2" in first
    second = client.get("/exceptions/?status=open&page=2").content.decode()
    assert second.count("data-exception-id=") == 5 and "status=open&amp;page=1" in second


def test_the_detail_is_readable(refdata, queue):
    page = as_user(refdata.compliance).get(f"/exceptions/{queue['quarantined'].pk}/")
    text = page.content.decode()
    assert "Execution report E-77 quarantined: unknown ClOrdID" in text
    assert "<th>exec_id</th><td>E-77</td>" in text
    assert '<pre class="detail">{\n  &quot;17&quot;: &quot;E-77&quot;\n}</pre>' in text
    assert "{&#x27;" not in text and "{'" not in text  # no Python repr
    assert 'data-testid="resolve-form"' not in text  # compliance reads only


def test_ops_resolves_with_a_note(refdata, queue):
    client = as_user(refdata.ops)
    pk = queue["booking"].pk
    detail = client.get(f"/exceptions/{pk}/").content.decode()
    assert 'data-testid="resolve-form"' in detail
    empty = client.post(f"/exceptions/{pk}/resolve/", {"note": "  "})
    assert empty.status_code == 200 and "This field is required." in empty.content.decode()
    done = client.post(
        f"/exceptions/{pk}/resolve/", {"note": "Calendar loaded, rebooked."}, follow=True
    )
    assert done.redirect_chain == [("/exceptions/", 302)]
    assert f"Exception {pk} resolved." in done.content.decode()
    queue["booking"].refresh_from_db()
    assert queue["booking"].resolution_note == "Calendar loaded, rebooked."
    assert (
        AuditEvent.objects.filter(action="exception.resolve", actor_id=refdata.ops.pk).count() == 2
    )
    again = client.post(f"/exceptions/{pk}/resolve/", {"note": "again"}, follow=True)
    assert "already resolved by ops1" in again.content.decode()
    resolved = client.get(f"/exceptions/{pk}/").content.decode()
    assert 'data-testid="resolve-form"' not in resolved and "Calendar loaded, rebooked." in resolved


def test_resolve_refusals(refdata, queue):
    pk = queue["booking"].pk
    assert (
        as_user(refdata.compliance).post(f"/exceptions/{pk}/resolve/", {"note": "x"}).status_code
        == 403
    )
    assert as_user(refdata.pm1).post(f"/exceptions/{pk}/resolve/", {"note": "x"}).status_code == 403
    assert as_user(refdata.trader).get(f"/exceptions/{pk}/resolve/").status_code == 405
    assert (
        as_user(refdata.trader).post("/exceptions/999999/resolve/", {"note": "x"}).status_code
        == 404
    )
    assert as_user(refdata.trader).get("/exceptions/999999/").status_code == 404
    queue["booking"].refresh_from_db()
    assert queue["booking"].is_open
