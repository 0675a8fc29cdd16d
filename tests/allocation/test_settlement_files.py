import csv
import hashlib
import io
from decimal import Decimal

import pytest
from django.db import DatabaseError, transaction
from rest_framework.test import APIClient

from allocation.models import Allocation, BlockDay, SettlementFile
from allocation.services import (
    allocation_adjust,
    allocation_finalise,
    settlement_file_generate,
    settlement_files_generate,
)
from audit.models import AuditEvent
from oms.models import Custodian
from positions.models import CashMovement

from .conftest import AS_OF, TRADE_DATE, done, fill, shares

pytestmark = pytest.mark.django_db


@pytest.fixture
def custodian(db):
    return Custodian.objects.create(code="BNY", name="BNY Custody")


def rows(sf):
    return list(csv.DictReader(io.StringIO(sf.content)))


def test_file_lists_the_executed_trades_with_net_money(make_block, custodian, refdata):
    sell = make_block([300, 100], side="SELL", custodian=custodian)
    fill(sell, "S1", 400, "50.00")
    done(sell)
    allocation_finalise(block=sell, as_of=AS_OF)
    ((sf, created),) = settlement_files_generate(trade_date=TRADE_DATE, as_of=AS_OF)
    assert created and sf.version == 1 and sf.row_count == 2
    assert sf.checksum == hashlib.sha256(sf.content.encode()).hexdigest()
    by_qty = {r["quantity"]: r for r in rows(sf)}
    big = by_qty["300"]
    # gross 15,000.00; commission 5 bp = 7.50 + 300 x 0.01 = 3.00; on 2026-11-25 the SEC fee
    # is $0.00 per million and the FINRA TAF 300 x 0.000166 = 0.0498 -> 0.05
    assert big["gross_amount"] == "15000.00"
    assert big["commission"] == "10.50"
    assert big["fees"] == "0.05"
    assert big["net_amount"] == "14989.45"
    assert big["settlement_date"] == "2026-11-27"
    assert big["side"] == "SELL" and big["symbol"] == "AAPL" and big["executing_broker"] == "SIM"
    assert big["custodian_account"].startswith("C-")
    # Gross moved with the fills; commission and fees are booked as cash on settlement date.
    alloc = Allocation.objects.get(block=sell, quantity=300)
    assert alloc.fee_breakdown == {
        "FINRA_TAF": "0.05",
        "SEC_FEE": "0.00",
    } or alloc.fee_breakdown == {"FINRA_TAF": "0.05"}
    charges = CashMovement.objects.filter(ref=f"allocation:{alloc.pk}").get()
    assert charges.amount == Decimal("-10.55")


def test_files_are_immutable_and_regenerating_makes_a_listed_new_version(make_block, custodian):
    block = make_block([100, 100], custodian=custodian)
    fill(block, "E1", 100, "20")
    allocation_adjust(
        block_id=block.pk,
        trade_date=TRADE_DATE,
        quantities=dict(zip(sorted(shares(block)), [Decimal(60), Decimal(40)], strict=True)),
        reason="client instruction",
        actor=None,
        as_of=AS_OF,
    )
    done(block)
    allocation_finalise(block=block, as_of=AS_OF)
    v1, created = settlement_file_generate(
        custodian_id=custodian.pk, trade_date=TRADE_DATE, as_of=AS_OF
    )
    assert created
    again, created = settlement_file_generate(
        custodian_id=custodian.pk, trade_date=TRADE_DATE, as_of=AS_OF
    )
    assert not created and again.pk == v1.pk
    with pytest.raises(DatabaseError), transaction.atomic():
        SettlementFile.objects.filter(pk=v1.pk).update(content="tampered")
    with pytest.raises(DatabaseError), transaction.atomic():
        SettlementFile.objects.filter(pk=v1.pk).delete()
    second = make_block([50], custodian=custodian)
    fill(second, "E2", 50, "21")
    done(second)
    allocation_finalise(block=second, as_of=AS_OF)
    v2, created = settlement_file_generate(
        custodian_id=custodian.pk, trade_date=TRADE_DATE, as_of=AS_OF
    )
    assert created and v2.version == 2 and v2.previous_id == v1.pk and v2.row_count == 3
    alloc = Allocation.objects.select_related("account").get(block=second)
    new_id = f"A{second.pk}-{alloc.account.code}-20261125"
    assert v2.differences == {
        "added": [new_id],
        "removed": [],
        "changed": {},
        "replaces": v1.filename,
    }
    assert sorted(r["quantity"] for r in rows(v2)) == ["40", "50", "60"]
    v1.refresh_from_db()
    assert v1.row_count == 2 and len(rows(v1)) == 2


def test_adjustment_must_sum_to_executed_and_is_audited(make_block):
    block = make_block([100, 100])
    fill(block, "E1", 100, "20")
    ids = sorted(shares(block))
    from oms.errors import DomainError

    with pytest.raises(DomainError, match="add up"):
        allocation_adjust(
            block_id=block.pk,
            trade_date=TRADE_DATE,
            quantities={ids[0]: Decimal(70)},
            reason="x",
            actor=None,
            as_of=AS_OF,
        )
    with pytest.raises(DomainError, match="reason"):
        allocation_adjust(
            block_id=block.pk,
            trade_date=TRADE_DATE,
            quantities={ids[0]: 70, ids[1]: 30},
            reason=" ",
            actor=None,
            as_of=AS_OF,
        )
    allocation_adjust(
        block_id=block.pk,
        trade_date=TRADE_DATE,
        quantities={ids[0]: Decimal(70), ids[1]: Decimal(30)},
        reason="client instruction",
        actor=None,
        as_of=AS_OF,
    )
    event = AuditEvent.objects.get(action="allocation.adjust")
    assert event.after["reason"] == "client instruction"
    assert event.before == {str(ids[0]): "50.00000000", str(ids[1]): "50.00000000"}


def test_plan_records_the_orders_and_their_quantities(make_block):
    from allocation.models import AllocationPlan

    block = make_block([100, 200])
    plan = AllocationPlan.objects.get(block=block)
    block.refresh_from_db()
    assert block.allocation_plan_hash == plan.plan_hash and len(plan.plan_hash) == 64
    assert [line["quantity"] for line in plan.lines] == ["100.00000000", "200.00000000"]


def api(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_api_lists_and_downloads_for_operations_only_and_audits_downloads(
    make_block, custodian, refdata
):
    block = make_block([100], custodian=custodian)
    fill(block, "E1", 100, "20")
    done(block)
    allocation_finalise(block=block, as_of=AS_OF)
    ((sf, _),) = settlement_files_generate(trade_date=TRADE_DATE, as_of=AS_OF)
    for user in (refdata.pm1, refdata.trader, refdata.compliance):
        assert api(user).get("/api/settlement-files/").status_code == 403
        assert api(user).get(f"/api/settlement-files/{sf.pk}/download/").status_code == 403
    assert APIClient().get("/api/settlement-files/").status_code in (401, 403)
    listing = api(refdata.ops).get("/api/settlement-files/").json()
    assert [f["id"] for f in listing["results"]] == [sf.pk]
    assert listing["results"][0]["checksum"] == sf.checksum
    before = AuditEvent.objects.filter(action="settlement_file.download").count()
    for user in (refdata.ops, refdata.admin):
        response = api(user).get(f"/api/settlement-files/{sf.pk}/download/")
        assert response.status_code == 200
        assert response.content.decode() == sf.content
        assert sf.filename in response["Content-Disposition"]
    events = AuditEvent.objects.filter(action="settlement_file.download").order_by("chain_seq")
    assert events.count() == before + 2
    assert [e.actor_id for e in events] == [refdata.ops.pk, refdata.admin.pk]
    assert api(refdata.ops).get("/api/settlement-files/999999/download/").status_code == 404


def test_operations_page_permissions_and_download(client, make_block, custodian, refdata):
    block = make_block([100], custodian=custodian)
    fill(block, "E1", 100, "20")
    done(block)
    client.force_login(refdata.pm1)
    assert client.get("/operations/").status_code == 403
    client.force_login(refdata.ops)
    page = client.get("/operations/")
    assert page.status_code == 200 and f'data-block="{block.pk}"' in page.content.decode()
    assert (
        client.post(
            f"/operations/blocks/{block.pk}/finalise/", {"trade_date": "2026-11-25"}
        ).status_code
        == 302
    )
    assert BlockDay.objects.get(block=block).status == "FINALISED"
    assert client.post("/operations/", {"trade_date": "2026-11-25"}).status_code == 302
    sf = SettlementFile.objects.get()
    assert client.get("/operations/settlement-files/999999/download/").status_code == 404
    response = client.get(f"/operations/settlement-files/{sf.pk}/download/")
    assert response.status_code == 200 and response.content.decode() == sf.content
    assert AuditEvent.objects.filter(
        action="settlement_file.download", actor_id=refdata.ops.pk
    ).exists()
