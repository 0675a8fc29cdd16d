"""/healthz reports the open exceptions by kind (one query) and stays green with them."""

import pytest

from oms.health import PROBES

from .conftest import open_one

pytestmark = pytest.mark.django_db


def test_healthz_reports_open_exceptions_by_kind_and_stays_green(client, queue):
    open_one("booking_failed", "block:13:2026-10-09")
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["exceptions"] == {
        "ok": True,
        "open": 4,
        "by_kind": {"booking_failed": 2, "quarantined_report": 1, "unacknowledged_order": 1},
    }


def test_the_healthz_figure_costs_one_query(queue, django_assert_num_queries):
    with django_assert_num_queries(1):
        figure = PROBES["exceptions"]()
    assert figure["open"] == 3


def test_healthz_with_no_exceptions(client, db):
    assert client.get("/healthz").json()["exceptions"] == {"ok": True, "open": 0, "by_kind": {}}
