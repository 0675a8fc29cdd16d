"""The order list counts at most COUNT_CAP matches (a year of orders is a million): beyond it
`count` says the cap and `count_exact` false, and every page is still reachable."""

import pytest

from oms import api
from tests.blotter.helpers import staged_order

pytestmark = pytest.mark.django_db


def test_the_order_list_count_is_capped_and_every_page_reachable(client, refdata, monkeypatch):
    for _ in range(12):
        staged_order(refdata.acct1, refdata.aapl)
    staged_order(refdata.acct2, refdata.msft)
    client.force_login(refdata.pm1)
    exact = client.get("/api/orders/?page_size=5").json()
    assert (exact["count"], exact["count_exact"], len(exact["results"])) == (12, True, 5)

    monkeypatch.setattr(api, "COUNT_CAP", 5)
    first = client.get("/api/orders/?page_size=5").json()
    assert (first["count"], first["count_exact"]) == (5, False)
    assert first["next"].endswith("page=2&page_size=5") or "page=2" in first["next"]
    last = client.get("/api/orders/?page_size=5&page=3").json()
    assert len(last["results"]) == 2 and last["next"] is None and "page=2" in last["previous"]
    ids = {
        o["id"]
        for p in (1, 2, 3)
        for o in client.get(f"/api/orders/?page_size=5&page={p}").json()["results"]
    }
    assert len(ids) == 12  # the PM's own, each once
    assert client.get("/api/orders/?page_size=5&page=4").status_code == 404
    assert client.get("/api/orders/?page=abc").status_code == 400  # names the parameter
    assert client.get("/api/orders/?page=-1").status_code == 400


def test_days_are_whole_utc_days(client, refdata):
    from datetime import UTC, datetime, timedelta

    from orders.models import Order

    late = staged_order(refdata.acct1, refdata.aapl)
    next_day = staged_order(refdata.acct1, refdata.aapl)
    end = datetime(2026, 5, 4, tzinfo=UTC) + timedelta(days=1)
    Order.objects.filter(pk=late.pk).update(received_at=end - timedelta(microseconds=1))
    Order.objects.filter(pk=next_day.pk).update(received_at=end)
    client.force_login(refdata.pm1)

    def ids(query):
        return {o["id"] for o in client.get(f"/api/orders/?{query}").json()["results"]}

    assert ids("date=2026-05-04") == {late.pk}
    assert ids("date_to=2026-05-04") == {late.pk}
    assert ids("date_from=2026-05-05") >= {next_day.pk} and late.pk not in ids(
        "date_from=2026-05-05"
    )
