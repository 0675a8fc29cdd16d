"""Inputs that used to answer 500 (or were silently dropped): each is now a 4xx that says
what is wrong, in JSON under /api/ and as a page elsewhere."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.django_db


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def test_json_nested_a_thousand_deep_is_a_400_even_anonymously(world):
    response = world.client("anon").post(
        "/api/auth/token/", data=_nested(1000), content_type="application/json"
    )
    assert response.status_code == 400
    assert "nested deeper" in response.json()["error"]["message"]


def test_json_deeper_than_the_limit_is_a_400_on_an_order(world):
    body = json.dumps({"account": "ACCT1", "symbol": "AAPL", "notes": json.loads(_nested(40))})
    response = world.client("pm").post("/api/orders/", data=body, content_type="application/json")
    assert response.status_code == 400
    assert "nested deeper" in response.json()["error"]["message"]


@pytest.mark.parametrize("since", ["2026-13-45", "yesterday", "2026-02-30T10:00"])
def test_an_impossible_audit_date_is_a_400_page_naming_it(world, since):
    response = world.client("compliance").get("/audit/", {"since": since})
    assert response.status_code == 400
    assert since in response.content.decode()


def test_a_settlement_file_that_does_not_exist_is_a_404_page_and_json(world):
    page = world.client("ops").get("/operations/settlement-files/987654/download/")
    assert page.status_code == 404
    assert "There is nothing" in page.content.decode() or "does not exist" in page.content.decode()
    api = world.client("ops").get("/api/settlement-files/987654/download/")
    assert api.status_code == 404
    assert api.json()["error"]["code"] == "not_found"


def test_an_amend_naming_a_field_it_cannot_change_is_a_400_naming_it(world):
    response = world.client("pm").patch(
        f"/api/orders/{world.order1.pk}/",
        data=json.dumps({"quantity": "90", "side": "SELL", "account": "ACCT2"}),
        content_type="application/json",
    )
    assert response.status_code == 400
    fields = response.json()["error"]["fields"]
    assert set(fields) == {"side", "account"}
    world.order1.refresh_from_db()
    assert world.order1.side == "BUY"


def test_ticket_info_gives_decimals_as_strings(world):
    response = world.client("pm").get(
        "/api/orders/ticket-info/", {"account": "ACCT1", "symbol": "AAPL"}
    )
    assert response.status_code == 200
    body = response.json()
    for name in ("reference_price", "lot_size", "tick_size", "position"):
        assert body[name] is None or isinstance(body[name], str), (name, body[name])


def test_missing_credentials_are_a_401_with_a_challenge(world):
    response = world.client("anon").get("/api/orders/")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Token")
    # A known user without the right is a 403.
    assert world.client("pm").get("/api/settlement-files/").status_code == 403


def test_an_unknown_address_is_a_404_page_or_json_never_a_debug_page(world):
    page = world.client("pm").get("/no-such-page/")
    assert page.status_code == 404
    assert "Page not found" not in page.content.decode()  # Django's own page
    api = world.client("pm").get("/api/no-such-thing/")
    assert api.status_code == 404


@pytest.mark.parametrize(
    "params, named",
    [
        ({"date": "2026-99-99"}, "date"),
        ({"date_from": "yesterday"}, "date_from"),
        ({"status": "WORKING,NOPE"}, "status"),
        ({"side": "SIDEWAYS"}, "side"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_a_bad_or_unknown_order_filter_is_a_400_naming_it(world, params, named):
    response = world.client("pm").get("/api/orders/", params)
    assert response.status_code == 400
    assert named in response.json()["error"]["fields"]


def test_good_order_filters_still_filter(world):
    client = world.client("pm")
    body = client.get("/api/orders/", {"side": "buy", "status": "staged,working", "page": 1}).json()
    assert [o["id"] for o in body["results"]] == [world.order1.pk]
    assert client.get("/api/orders/", {"side": "SELL"}).json()["results"] == []


@pytest.mark.parametrize(
    "path, query, named",
    [
        ("/api/positions/", "colour=red", "colour"),
        ("/api/cash/", "sector=x", "sector"),
        ("/api/exposure/", "by=colour", "by"),
        ("/api/exceptions/", "since=2026-01-01&since=2026-02-01", "since"),
        ("/api/fix/messages/", "direction=IN&extra=1", "extra"),
        ("/api/kill-switches/", "history=maybe", "history"),
        ("/api/blotter/snapshot/", "scope=everything", "scope"),
        ("/api/securities/", "active=AAA", "active"),
        ("/api/accounts/", "colour=red", "colour"),
        ("/api/securities/search/", "q=a&limit=5", "limit"),
        ("/api/held-orders/", "block=1", "block"),
        ("/api/orders/", "page_size=abc", "page_size"),
        ("/api/orders/ticket-info/", "account=ACCT1", "symbol"),
    ],
)
def test_every_api_query_string_is_checked_by_name_and_value(world, path, query, named):
    response = world.client("admin").get(f"{path}?{query}")
    assert response.status_code == 400, response.content
    assert named in response.json()["error"]["fields"]


@pytest.mark.parametrize(
    "path, query, named",
    [
        ("/orders/mine/", "colour=red", "colour"),
        ("/orders/mine/", "date=2026-99-99", "Enter a valid date"),
        ("/positions/", "sector=x&sector=y", "sector"),
        ("/positions/cash/", "security=AAPL", "security"),
        ("/positions/exposure/", "by=sector", "by"),
        ("/compliance/", "rule=99999999999999999999999", "Rule"),
        ("/compliance/", "colour=red", "colour"),
        ("/exceptions/", "sinse=2026-01-01", "sinse"),
        ("/fix/messages/", "direction=SIDEWAYS", "SIDEWAYS"),
        ("/audit/", "colour=red", "colour"),
    ],
)
def test_every_filtered_page_says_what_is_wrong_with_a_400(world, path, query, named):
    role = "pm" if path.startswith(("/orders/", "/positions/")) else "admin"
    response = world.client(role).get(f"{path}?{query}")
    assert response.status_code == 400
    assert named in response.content.decode()
