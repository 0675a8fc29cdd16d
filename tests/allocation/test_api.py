"""The back-office API through the real client: allocations by block, account and date; a
block's trading days; finalising a day (and its 404s and 409s); generating, listing and
downloading settlement files; who may; and every bad parameter a 400 naming it."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from allocation.models import Allocation, SettlementFile
from allocation.services import allocation_day_finalise
from audit.models import AuditEvent
from oms.models import Custodian
from orders.models import Block

from .conftest import AS_OF, TRADE_DATE, bust, done, fill

pytestmark = pytest.mark.django_db

DAY = TRADE_DATE.isoformat()  # 2026-11-25, a Wednesday
ALLOCATION_FIELDS = {
    "id",
    "block",
    "account",
    "trade_date",
    "settle_date",
    "side",
    "symbol",
    "quantity",
    "avg_price",
    "gross_amount",
    "accrued_interest",
    "commission",
    "fees",
    "fee_breakdown",
    "net_amount",
    "currency",
    "version",
    "finalised_at",
    "replaced_at",
}


@pytest.fixture(autouse=True)
def clock(monkeypatch):
    """The API reads the time at the edge; here it is the afternoon of the fixtures' trade
    date, so "today" is TRADE_DATE."""
    monkeypatch.setattr(timezone, "now", lambda: AS_OF)


@pytest.fixture
def custodian(db):
    return Custodian.objects.create(code="BNY", name="BNY Custody")


def api(user=None) -> APIClient:
    client = APIClient()
    if user is not None:
        client.force_authenticate(user)
    return client


def finalise(client, block_id, day=DAY, **kwargs):
    return client.post(
        f"/api/booking/blocks/{block_id}/days/{day}/finalise/", format="json", **kwargs
    )


def generate(client, body):
    return client.post("/api/settlement-files/generate/", body, format="json")


def error_of(response, status: int) -> dict:
    assert response.status_code == status, (response.status_code, response.content[:500])
    assert response["Content-Type"].startswith("application/json")
    return response.json()["error"]


@pytest.fixture
def desk(make_block, custodian, refdata):
    """A filled buy of AAPL for two accounts and a filled sell of MSFT for one, on TRADE_DATE."""
    buy = make_block([300, 100], custodian=custodian)
    fill(buy, "E1", 150, "50.00")
    fill(buy, "E2", 250, "50.40")
    done(buy)
    sell = make_block([200], security=refdata.msft, side="SELL", custodian=custodian)
    fill(sell, "S1", 200, "20.00")
    done(sell)
    orders = {o.quantity: o for o in buy.orders.select_related("account")}
    return {
        "buy": buy,
        "sell": sell,
        "big": orders[Decimal(300)].account.code,
        "small": orders[Decimal(100)].account.code,
        "seller": sell.orders.get().account.code,
    }


def test_finalise_a_day_then_list_allocations_by_block_account_and_date(desk, refdata):
    ops = api(refdata.ops)
    buy = desk["buy"]
    response = finalise(ops, buy.pk)
    assert response.status_code == 200, response.json()
    rows = response.json()
    assert [r["account"] for r in rows] == sorted([desk["big"], desk["small"]])
    big = next(r for r in rows if r["account"] == desk["big"])
    assert set(big) == ALLOCATION_FIELDS
    stored = Allocation.objects.get(pk=big["id"])
    assert big | {"fee_breakdown": None} == {
        "id": stored.pk,
        "block": buy.pk,
        "account": desk["big"],
        "trade_date": "2026-11-25",
        "settle_date": "2026-11-27",
        "side": "BUY",
        "symbol": "AAPL",
        "quantity": "300.00000000",
        "avg_price": "50.25000000",  # (150 x 50.00 + 250 x 50.40) / 400
        "gross_amount": "15075.00000000",
        "accrued_interest": "0.00000000",
        "commission": f"{stored.commission:.8f}",
        "fees": f"{stored.fees:.8f}",
        "fee_breakdown": None,
        "net_amount": f"{stored.gross_amount + stored.commission + stored.fees:.8f}",
        "currency": "USD",
        "version": 1,
        "finalised_at": "2026-11-25T15:00:00Z",
        "replaced_at": None,
    }
    assert Decimal(big["commission"]) > 0  # 5 bp + 1 cent a share
    assert big["fee_breakdown"] == {k: str(v) for k, v in stored.fee_breakdown.items()}
    event = AuditEvent.objects.filter(action="allocation.finalise").get()
    assert event.actor_id == refdata.ops.pk and event.after["trade_date"] == DAY

    # Finalised once: the second time is a conflict, and nothing changed.
    again = error_of(finalise(ops, buy.pk), 409)
    assert again["code"] == "day_finalised"
    assert Allocation.objects.filter(block=buy).count() == 2

    allocation_day_finalise(block_id=desk["sell"].pk, trade_date=TRADE_DATE, as_of=AS_OF)

    def listed(query=""):
        response = ops.get(f"/api/allocations/?{query}")
        assert response.status_code == 200, response.json()
        return [(r["block"], r["account"]) for r in response.json()["results"]]

    everything = [(buy.pk, code) for code in sorted([desk["big"], desk["small"]])] + [
        (desk["sell"].pk, desk["seller"])
    ]
    assert listed() == everything
    assert listed(f"block={buy.pk}") == everything[:2]
    assert listed(f"block={desk['sell'].pk}") == everything[2:]
    assert listed(f"account={desk['small']}") == [(buy.pk, desk["small"])]
    assert listed(f"trade_date={DAY}") == everything
    assert listed("trade_date=2026-11-24") == []
    assert listed(f"block={buy.pk}&account={desk['seller']}") == []
    assert listed("block=&account=&trade_date=") == everything  # empty: not given
    page = ops.get("/api/allocations/?page_size=2&page=2").json()
    assert page["count"] == 3 and page["previous"] and page["next"] is None
    assert [(r["block"], r["account"]) for r in page["results"]] == everything[2:]
    assert error_of(ops.get("/api/allocations/?page=3&page_size=2"), 404)["code"] == "not_found"
    # The sell's money goes the other way: net is gross less what is paid.
    sold = ops.get(f"/api/allocations/?block={desk['sell'].pk}").json()["results"][0]
    paid = Decimal(sold["commission"]) + Decimal(sold["fees"])
    assert sold["side"] == "SELL" and sold["symbol"] == "MSFT"
    assert Decimal(sold["net_amount"]) == Decimal(sold["gross_amount"]) - paid


def test_finalise_refuses_what_it_cannot_finalise(make_block, desk, refdata):
    ops = api(refdata.admin)
    working = make_block([100])
    fill(working, "W1", 40, "10")  # still working, and TRADE_DATE is today
    refused = error_of(finalise(ops, working.pk), 409)
    assert refused["code"] == "block_not_done"
    assert "is WORKING" in refused["message"]
    # The next day the date is past: it may be finalised, working or not.
    tomorrow = AS_OF + timedelta(days=1)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(timezone, "now", lambda: tomorrow)
        assert finalise(ops, working.pk).status_code == 200

    assert error_of(finalise(ops, 999_999), 404)["message"] == "Block 999999 does not exist."
    for block_id in ("abc", "0", "-1", "1.5", "99999999999999999999", "9" * 5000, "%C2%B2"):
        assert error_of(finalise(ops, block_id), 404)["code"] == "not_found", block_id
    # A block that did not trade that day, or was never routed.
    no_trade = error_of(finalise(ops, desk["buy"].pk, "2026-11-24"), 404)
    assert no_trade["message"] == f"Block {desk['buy'].pk} did not trade on 2026-11-24."
    unrouted = Block.objects.create(
        security=refdata.aapl,
        side="BUY",
        quantity=Decimal(10),
        status=Block.Status.OPEN,
        created_by=refdata.trader,
        created_at=AS_OF,
    )
    assert "never routed" in error_of(finalise(ops, unrouted.pk), 404)["message"]
    assert not AuditEvent.objects.filter(
        action="allocation.finalise", object_id=str(desk["buy"].pk)
    ).exists()


def test_a_blocks_trading_days_with_their_shares(make_block, desk, refdata):
    ops = api(refdata.ops)
    buy = desk["buy"]
    url = f"/api/booking/blocks/{buy.pk}/days/"
    before = ops.get(url).json()
    assert before["count"] == 1
    (day,) = before["results"]
    orders = sorted(buy.orders.select_related("account"), key=lambda o: o.pk)
    assert day == {
        "block": buy.pk,
        "trade_date": DAY,
        "settle_date": "2026-11-27",
        "status": "OPEN",
        "executed": "400.00000000",
        "avg_price": day["avg_price"],
        "street_gross": day["street_gross"],
        "version": 1,
        "finalised_at": None,
        "shares": [
            {"order": o.pk, "account": o.account.code, "quantity": f"{o.quantity:.8f}"}
            for o in orders
        ],
    }
    assert finalise(ops, buy.pk).status_code == 200
    (day,) = ops.get(url).json()["results"]
    assert day["status"] == "FINALISED" and day["finalised_at"] == "2026-11-25T15:00:00Z"
    assert (day["avg_price"], day["street_gross"]) == ("50.25000000", "20100.00000000")

    # Two queries for the days and their shares, however many days and orders.
    wide = make_block([10, 20, 30, 40])
    fill(wide, "X1", 50, "10", trade_date=TRADE_DATE - timedelta(days=1))
    fill(wide, "X2", 50, "10")
    counts = []
    for block in (desk["sell"], wide):
        with CaptureQueriesContext(connection) as queries:
            body = ops.get(f"/api/booking/blocks/{block.pk}/days/").json()
        counts.append(len(queries))
    assert [d["trade_date"] for d in body["results"]] == ["2026-11-24", DAY]
    assert [len(d["shares"]) for d in body["results"]] == [4, 4]
    assert counts[0] == counts[1]

    # A block with no trading yet has no days; one that does not exist is a 404.
    quiet = make_block([5])
    assert ops.get(f"/api/booking/blocks/{quiet.pk}/days/").json()["results"] == []
    for block_id in ("999999", "abc", "99999999999999999999"):
        response = ops.get(f"/api/booking/blocks/{block_id}/days/")
        assert error_of(response, 404)["code"] == "not_found"


def test_generate_list_and_download_settlement_files(desk, custodian, refdata):
    ops = api(refdata.ops)
    assert finalise(ops, desk["buy"].pk).status_code == 200
    first = generate(ops, {"trade_date": DAY})
    assert first.status_code == 201, first.json()
    (made,) = first.json()
    assert made["created"] is True
    assert made["custodian"] == "BNY" and made["trade_date"] == DAY
    assert (made["version"], made["previous"], made["differences"]) == (1, None, {})
    assert made["row_count"] == 2 and made["filename"] == "settlement_BNY_20261125_v1.csv"

    # Nothing changed: the same version back, nothing written.
    second = generate(ops, {"trade_date": DAY})
    assert second.status_code == 200
    assert [(f["id"], f["created"]) for f in second.json()] == [(made["id"], False)]
    # No trades that day: nothing to write.
    assert generate(ops, {"trade_date": "2026-11-24"}).json() == []

    # The sell is finalised after the file was written: the next file is version 2.
    assert finalise(ops, desk["sell"].pk).status_code == 200
    (v2,) = generate(api(refdata.admin), {"trade_date": DAY}).json()
    assert (v2["version"], v2["previous"], v2["created"]) == (2, made["id"], True)
    assert v2["differences"]["replaces"] == made["filename"]
    assert v2["differences"]["added"] == [f"A{desk['sell'].pk}-{desk['seller']}-20261125"]
    assert v2["differences"]["removed"] == [] and v2["differences"]["changed"] == {}

    listing = ops.get(f"/api/settlement-files/?custodian=BNY&trade_date={DAY}").json()
    assert [(f["id"], f["version"], f["previous"]) for f in listing["results"]] == [
        (v2["id"], 2, made["id"]),
        (made["id"], 1, None),
    ]
    assert set(listing["results"][0]) == set(v2) - {"created"}
    assert ops.get("/api/settlement-files/?trade_date=2026-11-24").json()["count"] == 0
    Custodian.objects.create(code="STATE", name="State Street")
    assert ops.get("/api/settlement-files/?custodian=STATE").json()["count"] == 0

    # Download: the CSV itself, with its checksum, and on the audit trail.
    sf = SettlementFile.objects.get(pk=v2["id"])
    for accept in (None, "text/csv", "application/json"):
        headers = {"HTTP_ACCEPT": accept} if accept else {}
        response = ops.get(f"/api/settlement-files/{sf.pk}/download/", **headers)
        assert response.status_code == 200
        assert response["Content-Type"] == "text/csv; charset=utf-8"
        assert response.content.decode() == sf.content
        assert response["Content-Disposition"] == f'attachment; filename="{sf.filename}"'
        assert response["X-Checksum-SHA256"] == sf.checksum
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert {r["account"] for r in rows} == {desk["big"], desk["small"], desk["seller"]}
    downloads = AuditEvent.objects.filter(action="settlement_file.download")
    assert downloads.count() == 3
    assert {(e.actor_id, e.object_id) for e in downloads} == {(refdata.ops.pk, str(sf.pk))}
    for file_id in ("999999", "abc", "0", "99999999999999999999"):
        for accept in ("text/csv", "*/*"):
            response = ops.get(f"/api/settlement-files/{file_id}/download/", HTTP_ACCEPT=accept)
            assert error_of(response, 404)["code"] == "not_found", (file_id, accept)
    assert downloads.count() == 3


def test_a_rebooked_day_shows_its_replaced_allocations_and_the_reissued_file(desk, refdata):
    ops = api(refdata.ops)
    buy = desk["buy"]
    assert finalise(ops, buy.pk).status_code == 200
    assert generate(ops, {"trade_date": DAY}).status_code == 201
    # A bust after the day was final: the day is booked again as version 2, at the average
    # of what is left, and the file already written for the date is written again.
    bust(buy, "E2")
    current = ops.get(f"/api/allocations/?block={buy.pk}").json()["results"]
    assert {(r["version"], r["avg_price"], r["replaced_at"]) for r in current} == {
        (2, "50.00000000", None)
    }
    every = ops.get(f"/api/allocations/?block={buy.pk}&include_replaced=true").json()["results"]
    assert len(every) == 4
    assert {(r["version"], r["replaced_at"] is None) for r in every} == {(2, True), (1, False)}
    assert ops.get(f"/api/allocations/?block={buy.pk}&include_replaced=false").json()["count"] == 2
    files = ops.get("/api/settlement-files/").json()["results"]
    assert [f["version"] for f in files] == [2, 1]
    assert files[0]["previous"] == files[1]["id"]
    assert set(files[0]["differences"]["changed"]) == {
        f"A{buy.pk}-{desk['big']}-20261125",
        f"A{buy.pk}-{desk['small']}-20261125",
    }


ENDPOINTS = [
    ("GET", "/api/allocations/", None),
    ("GET", "/api/booking/blocks/{block}/days/", None),
    ("POST", "/api/booking/blocks/{block}/days/2026-11-25/finalise/", {}),
    ("GET", "/api/settlement-files/", None),
    ("POST", "/api/settlement-files/generate/", {"trade_date": DAY}),
    ("GET", "/api/settlement-files/{file}/download/", None),
]


def test_operations_and_admin_only(desk, refdata):
    block = desk["buy"]
    sf = SettlementFile.objects.create(
        custodian=Custodian.objects.get(code="BNY"),
        trade_date=TRADE_DATE,
        version=1,
        filename="f.csv",
        content="x\n",
        checksum="0" * 64,
        row_count=0,
        created_at=AS_OF,
    )
    bad_token = APIClient()
    bad_token.credentials(HTTP_AUTHORIZATION="Token not-a-token")
    refused = {
        "pm": api(refdata.pm1),
        "trader": api(refdata.trader),
        "compliance": api(refdata.compliance),
        "anonymous": api(),
        "bad token": bad_token,
    }
    for method, template, body in ENDPOINTS:
        path = template.format(block=block.pk, file=sf.pk)
        for who, client in refused.items():
            response = getattr(client, method.lower())(path, body, format="json")
            # No credentials (or a bad token) is a 401 with its challenge; a user without the
            # right, a 403.
            expected = 401 if who in ("anonymous", "bad token") else 403
            assert response.status_code == expected, (who, method, path, response.status_code)
            assert response.json()["error"]["code"] in (
                "permission_denied",
                "not_authenticated",
                "authentication_failed",
            )
    assert not AuditEvent.objects.filter(
        action__in=["allocation.finalise", "settlement_file.generate", "settlement_file.download"]
    ).exists()
    assert not Allocation.objects.exists()
    for user in (refdata.ops, refdata.admin):
        client = api(user)
        assert client.get("/api/allocations/").status_code == 200
        assert client.get(f"/api/booking/blocks/{block.pk}/days/").status_code == 200
        assert client.get("/api/settlement-files/").status_code == 200
        assert client.get(f"/api/settlement-files/{sf.pk}/download/").status_code == 200
    # Operations works the exceptions queue through /api/exceptions/ (oms): it reads and resolves.
    ops = api(refdata.ops)
    assert ops.get("/api/exceptions/").status_code == 200


BAD = [
    # (method, path, body, parameter)
    ("GET", "/api/allocations/?block=abc", None, "block"),
    ("GET", "/api/allocations/?block=0", None, "block"),
    ("GET", "/api/allocations/?block=-4", None, "block"),
    ("GET", "/api/allocations/?block=99999999999999999999", None, "block"),
    ("GET", "/api/allocations/?block=999999", None, "block"),  # no such block
    ("GET", "/api/allocations/?block=1&block=2", None, "block"),
    ("GET", "/api/allocations/?account=NOPE", None, "account"),
    ("GET", "/api/allocations/?account=" + "A" * 33, None, "account"),
    ("GET", "/api/allocations/?trade_date=2026-02-30", None, "trade_date"),
    ("GET", "/api/allocations/?trade_date=yesterday", None, "trade_date"),
    ("GET", "/api/allocations/?trade_date=25/11/2026", None, "trade_date"),
    ("GET", "/api/allocations/?trade_date=10000-01-01", None, "trade_date"),
    ("GET", "/api/allocations/?include_replaced=yes", None, "include_replaced"),
    ("GET", "/api/allocations/?include_replaced=1", None, "include_replaced"),
    ("GET", "/api/allocations/?accounts=ACCT1", None, "accounts"),
    ("GET", "/api/allocations/?status=", None, "status"),
    ("GET", "/api/allocations/?page=0", None, "page"),
    ("GET", "/api/allocations/?page=last", None, "page"),
    ("GET", "/api/allocations/?page_size=0", None, "page_size"),
    ("GET", "/api/allocations/?page_size=1001", None, "page_size"),
    ("GET", "/api/booking/blocks/{block}/days/?status=OPEN", None, "status"),
    ("GET", "/api/booking/blocks/{block}/days/?page=x", None, "page"),
    ("GET", "/api/settlement-files/?trade_date=2026-13-01", None, "trade_date"),
    ("GET", "/api/settlement-files/?custodian=NOPE", None, "custodian"),
    ("GET", "/api/settlement-files/?custodian__code=BNY", None, "custodian__code"),
    ("GET", "/api/settlement-files/{file}/download/?inline=1", None, "inline"),
    ("POST", "/api/booking/blocks/{block}/days/2026-11-31/finalise/", {}, "trade_date"),
    ("POST", "/api/booking/blocks/{block}/days/today/finalise/", {}, "trade_date"),
    ("POST", "/api/booking/blocks/{block}/days/2026-11-25/finalise/", {"force": True}, "force"),
    ("POST", "/api/booking/blocks/{block}/days/2026-11-25/finalise/?x=1", {}, "x"),
    ("POST", "/api/settlement-files/generate/", {}, "trade_date"),
    ("POST", "/api/settlement-files/generate/", {"trade_date": None}, "trade_date"),
    ("POST", "/api/settlement-files/generate/", {"trade_date": "2026-11-25T00:00"}, "trade_date"),
    ("POST", "/api/settlement-files/generate/", {"trade_date": 20261125}, "trade_date"),
    (
        "POST",
        "/api/settlement-files/generate/",
        {"trade_date": DAY, "custodian": "BNY"},
        "custodian",
    ),
    ("POST", "/api/settlement-files/generate/", ["2026-11-25"], "non_field_errors"),
]


@pytest.mark.parametrize("method, template, body, parameter", BAD)
def test_a_bad_parameter_is_a_400_naming_it(desk, refdata, method, template, body, parameter):
    sf = SettlementFile.objects.create(
        custodian=Custodian.objects.get(code="BNY"),
        trade_date=TRADE_DATE,
        version=1,
        filename="f.csv",
        content="x\n",
        checksum="0" * 64,
        row_count=0,
        created_at=AS_OF,
    )
    path = template.format(block=desk["buy"].pk, file=sf.pk)
    client = api(refdata.ops)
    response = getattr(client, method.lower())(path, body, format="json")
    error = error_of(response, 400)
    assert error["code"] == "invalid" and list(error["fields"]) == [parameter], error
    assert not Allocation.objects.exists() and SettlementFile.objects.count() == 1


def test_the_schema_describes_every_endpoint(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    paths = schema["paths"]
    # Besides their own: 503 (the database busy) everywhere, 415 (a body in a media type it
    # does not read) where a body is read (oms.schema).
    expected = {
        "/api/allocations/": ("get", {"200", "400", "401", "403", "404", "503"}),
        "/api/booking/blocks/{block_id}/days/": (
            "get",
            {"200", "400", "401", "403", "404", "503"},
        ),
        "/api/booking/blocks/{block_id}/days/{trade_date}/finalise/": (
            "post",
            {"200", "400", "401", "403", "404", "409", "415", "503"},
        ),
        "/api/settlement-files/": ("get", {"200", "400", "401", "403", "404", "503"}),
        "/api/settlement-files/generate/": (
            "post",
            {"200", "201", "400", "401", "403", "415", "503"},
        ),
        "/api/settlement-files/{id}/download/": (
            "get",
            {"200", "400", "401", "403", "404", "503"},
        ),
    }
    for path, (method, codes) in expected.items():
        assert set(paths[path][method]["responses"]) == codes, path
    listing = paths["/api/allocations/"]["get"]
    assert {p["name"] for p in listing["parameters"]} == {
        "block",
        "account",
        "trade_date",
        "include_replaced",
        "page",
        "page_size",
    }
    ok = listing["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    page = schema["components"]["schemas"][ok.rsplit("/", 1)[1]]
    assert {"count", "next", "previous", "results"} <= set(page["properties"])
    allocation = schema["components"]["schemas"]["AllocationOut"]["properties"]
    assert set(allocation) == ALLOCATION_FIELDS
    assert allocation["gross_amount"] == {
        "type": "string",
        "format": "decimal",
        "pattern": allocation["gross_amount"]["pattern"],
        "readOnly": True,
    }
    assert allocation["trade_date"]["format"] == "date"
    files = paths["/api/settlement-files/"]["get"]
    assert {p["name"] for p in files["parameters"]} >= {"trade_date", "custodian"}
    generated = schema["components"]["schemas"]["SettlementFileGeneratedOut"]["properties"]
    assert {"version", "previous", "differences", "created"} <= set(generated)
    download = paths["/api/settlement-files/{id}/download/"]["get"]
    assert [p["name"] for p in download["parameters"]] == ["id"]
    assert "text/csv" in download["responses"]["200"]["content"]
