"""The operator's API: the FIX message monitor (/api/fix/messages/: filters, paging, refusals,
who may read), the blotter header and the block detail (/api/blocks/{id}/detail/), on rows
the gateway's own services write (toApp's sent mark, the inbound batch)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.test import Client
from django.utils import timezone

from fixgateway import inbound, killswitch, monitor, sending
from fixgateway.models import Broker, FixMessage, FixOrder, OutboxMessage
from fixgateway.monitor import SentMessage
from fixgateway.reports import InboundReport
from orders import block_services as bs
from tests.blotter.helpers import staged_order

pytestmark = pytest.mark.django_db


def as_user(user) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


@pytest.fixture
def broker(db):
    return Broker.objects.create(
        code="BRKM", name="Monitor", port=1, sender_comp_id="OMS", target_comp_id="BRKM"
    )


def _routed(refdata, broker, account=None):
    order = staged_order(account or refdata.acct1, refdata.aapl, quantity="300")
    now = timezone.now()
    block = bs.block_create(order_ids=[order.pk], actor=refdata.trader, as_of=now)
    return bs.block_route(
        block_id=block.pk, broker_id=broker.pk, order_type="MARKET", actor=refdata.trader, as_of=now
    )


def _sent(broker, block, seq=1, as_of=None):
    """What toApp does for the block's NewOrderSingle: the sent mark and the message kept."""
    message = OutboxMessage.objects.get(fix_order__block=block, kind="NEW")
    raw = (
        f"8=FIX.4.4|9=120|35=D|34={seq}|49=OMS|56=BRKM|11={message.cl_ord_id}|55=AAPL|54=1|"
        "38=300|40=1|59=0|10=000|"
    )
    assert sending.outbox_record_sent(
        broker_id=broker.pk,
        msg_type="D",
        cl_ord_id=message.cl_ord_id,
        seq_num=seq,
        seq_epoch="E1",
        as_of=as_of or timezone.now(),
        raw=raw,
    )
    return message.cl_ord_id


def _report(cl_ord_id, exec_id, exec_type, *, seq, qty="0", px="0", cum="0"):
    raw = (
        f"8=FIX.4.4|9=150|35=8|34={seq}|49=BRKM|56=OMS|11={cl_ord_id}|37=BRK-1|17={exec_id}|"
        f"150={exec_type}|39={'0' if exec_type == '0' else '1'}|32={qty}|31={px}|14={cum}|10=000|"
    )
    return InboundReport(
        msg_type="8",
        cl_ord_id=cl_ord_id,
        order_id="BRK-1",
        exec_id=exec_id,
        exec_type=exec_type,
        ord_status="0" if exec_type == "0" else "1",
        last_qty=Decimal(qty),
        last_px=Decimal(px),
        cum_qty=Decimal(cum),
        leaves_qty=Decimal(300) - Decimal(cum),
        seq_epoch="E1",
        seq_num=seq,
        raw=raw,
    )


@pytest.fixture
def traded(refdata, broker):
    """A block sent, acknowledged and part filled; a status request sent; another block sent."""
    block = _routed(refdata, broker)
    cl = _sent(broker, block, seq=2)
    results = inbound.inbound_batch_apply(
        broker=broker,
        reports=[
            _report(cl, "E-ACK", "0", seq=5),
            _report(cl, "E-FILL", "F", seq=6, qty="100", px="190.5", cum="100"),
        ],
        as_of=timezone.now(),
    )
    assert [r.outcome for r in results] == ["applied", "applied"]
    monitor.fix_message_sent(
        broker_id=broker.pk,
        message=SentMessage(
            msg_type="H",
            seq_num=3,
            seq_epoch="E1",
            cl_ord_id=cl,
            raw=f"8=FIX.4.4|9=60|35=H|34=3|11={cl}|54=1|55=AAPL|10=000|",
        ),
        as_of=timezone.now(),
    )
    other = _routed(refdata, broker, account=refdata.acct2)
    _sent(broker, other, seq=4)
    return {"block": block, "cl": cl, "other": other}


def _messages(client, query=""):
    response = client.get(f"/api/fix/messages/{query}")
    assert response.status_code == 200, response.content
    return response.json()


def test_messages_are_kept_in_and_out_with_fields_named(refdata, traded):
    body = _messages(as_user(refdata.ops))
    assert body["count"] == 5
    newest_first = [(m["direction"], m["msg_type"]) for m in body["results"]]
    assert newest_first == [("OUT", "D"), ("OUT", "H"), ("IN", "8"), ("IN", "8"), ("OUT", "D")]
    fill = next(m for m in body["results"] if m["exec_id"] == "E-FILL")
    assert (fill["cl_ord_id"], fill["order_id"], fill["seq_num"]) == (traded["cl"], "BRK-1", 6)
    assert fill["msg_type_name"] == "ExecutionReport"
    named = {f["tag"]: (f["name"], f["value"], f["meaning"]) for f in fill["fields"]}
    assert named[35] == ("MsgType", "8", "ExecutionReport")
    assert named[150] == ("ExecType", "F", "TRADE")
    assert named[17] == ("ExecID", "E-FILL", "")
    assert named[32] == ("LastQty", "100", "")


@pytest.mark.parametrize(
    "query, expected",
    [
        ("?msg_type=8", [("IN", "8"), ("IN", "8")]),
        ("?direction=OUT", [("OUT", "D"), ("OUT", "H"), ("OUT", "D")]),
        ("?exec_id=E-ACK", [("IN", "8")]),
        ("?order_id=BRK-1", [("IN", "8"), ("IN", "8")]),
        ("?broker=BRKM&msg_type=H", [("OUT", "H")]),
    ],
)
def test_each_filter_narrows(refdata, traded, query, expected):
    body = _messages(as_user(refdata.trader), query)
    assert [(m["direction"], m["msg_type"]) for m in body["results"]] == expected


def test_cl_ord_id_finds_the_order_history_and_time_bounds_apply(refdata, traded):
    client = as_user(refdata.compliance)
    body = _messages(client, f"?cl_ord_id={traded['cl']}")
    assert {m["cl_ord_id"] for m in body["results"]} == {traded["cl"]}
    assert body["count"] == 4  # D, two reports, the status request
    tomorrow = (timezone.now() + timedelta(days=1)).date().isoformat()
    assert _messages(client, f"?since={tomorrow}")["count"] == 0
    assert _messages(client, f"?until={tomorrow}")["count"] == 5
    hour_ago = (timezone.now() - timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    assert _messages(client, f"?since={hour_ago}")["count"] == 5


def test_paged(refdata, traded):
    client = as_user(refdata.admin)
    first = _messages(client, "?page_size=2")
    assert (first["count"], len(first["results"])) == (5, 2)
    assert first["next"] and first["previous"] is None
    third = _messages(client, "?page_size=2&page=3")
    assert len(third["results"]) == 1 and third["next"] is None
    assert client.get("/api/fix/messages/?page=9").status_code == 404


@pytest.mark.parametrize(
    "query, field, words",
    [
        ("?since=yesterday", "since", "date"),
        ("?until=2026-13-45", "until", "date"),
        ("?since=2026-10-09&until=2026-10-08", "until", "after"),
        ("?msg_type=ZZ", "msg_type", "Unknown MsgType"),
        ("?direction=SIDEWAYS", "direction", "valid choice"),
        ("?broker=NOPE", "broker", "No broker"),
        ("?cl_ord_id=" + "x" * 65, "cl_ord_id", "at most 64"),
    ],
)
def test_bad_filters_are_a_400_naming_the_parameter(refdata, traded, query, field, words):
    response = as_user(refdata.trader).get(f"/api/fix/messages/{query}")
    assert response.status_code == 400
    messages = response.json()["error"]["fields"][field]
    assert any(words in m for m in messages), messages


@pytest.mark.parametrize(
    "role, api, page",
    [
        ("pm1", 403, 403),
        ("trader", 200, 200),
        ("compliance", 200, 200),
        ("ops", 200, 200),
        ("admin", 200, 200),
        (None, 401, 302),
    ],
)
def test_who_may_read_the_monitor(refdata, traded, role, api, page):
    client = as_user(getattr(refdata, role) if role else None)
    assert client.get("/api/fix/messages/").status_code == api
    assert client.get("/fix/messages/?msg_type=8").status_code == page


def test_the_page_shows_fields_by_name_and_filter_errors(refdata, traded):
    client = as_user(refdata.ops)
    html = client.get(f"/fix/messages/?cl_ord_id={traded['cl']}").content.decode()
    assert "E-FILL" in html and "LastQty" in html and "F (TRADE)" in html
    bad = client.get("/fix/messages/?msg_type=ZZ&since=nope")
    assert bad.status_code == 400  # the page, its form saying what is wrong
    text = bad.content.decode()
    assert "Unknown MsgType" in text and "No messages match" in text


def test_block_detail_has_executions_clordids_order_id_and_messages(refdata, traded):
    block = traded["block"]
    body = as_user(refdata.trader).get(f"/api/blocks/{block.pk}/detail/").json()
    assert body["id"] == block.pk and body["broker_order_id"] == "BRK-1"
    assert body["cl_ord_id"] == traded["cl"]
    assert [(c["kind"], c["cl_ord_id"], c["status"]) for c in body["cl_ord_ids"]] == [
        ("NEW", traded["cl"], "SENT")
    ]
    assert [(x["exec_id"], x["last_qty"], x["last_px"]) for x in body["executions"]] == [
        ("E-ACK", "0", "0"),
        ("E-FILL", "100", "190.5"),
    ]
    assert [(m["direction"], m["msg_type"]) for m in body["messages"]] == [
        ("OUT", "D"),
        ("IN", "8"),
        ("IN", "8"),
        ("OUT", "H"),
    ]
    assert body["last_reject"] is None


def test_block_detail_shows_the_reject_with_its_tag_name(refdata, broker):
    block = _routed(refdata, broker)
    cl = _sent(broker, block, seq=7)
    reject = InboundReport(
        msg_type="3",
        ref_seq_num=7,
        ref_msg_type="D",
        ref_tag=847,
        ref_tag_label="847 (TargetStrategy)",
        reject_reason="0",
        reject_reason_text="Invalid tag number",
        seq_epoch="E1",
        seq_num=9,
        raw="8=FIX.4.2|35=3|34=9|45=7|371=847|373=0|58=Invalid tag number|10=000|",
    )
    inbound.inbound_batch_apply(broker=broker, reports=[reject], as_of=timezone.now())
    body = as_user(refdata.trader).get(f"/api/blocks/{block.pk}/detail/").json()
    assert body["status"] == "REJECTED"
    assert "847 (TargetStrategy)" in body["last_reject"]["text"]
    # The reject names no ClOrdID: it is kept under the one it refers to.
    assert [m["msg_type"] for m in body["messages"]] == ["D", "3"]
    assert body["messages"][1]["cl_ord_id"] == cl


def test_a_pm_reads_only_blocks_of_their_accounts(refdata, traded):
    own, others = traded["block"].pk, traded["other"].pk
    pm1 = as_user(refdata.pm1)
    assert pm1.get(f"/api/blocks/{own}/detail/").status_code == 200
    refused = pm1.get(f"/api/blocks/{others}/detail/")
    assert refused.status_code == 404
    assert refused.json()["error"]["message"] == f"Block {others} does not exist."
    assert as_user(refdata.pm2).get(f"/api/blocks/{own}/detail/").status_code == 404
    assert as_user(refdata.compliance).get(f"/api/blocks/{others}/detail/").status_code == 200
    assert as_user(None).get(f"/api/blocks/{own}/detail/").status_code == 401
    assert as_user(refdata.trader).get("/api/blocks/999999/detail/").status_code == 404


def test_the_blotter_header(refdata, traded):
    from oms.services import exception_open

    killswitch.kill_switch_engage(
        scope="broker", value="BRKM", actor=refdata.trader, as_of=timezone.now()
    )
    exception_open(
        kind="unmatched_reject", ref="x:1", summary="s", source="fixgateway", as_of=timezone.now()
    )
    body = as_user(refdata.trader).get("/api/blotter/header/").json()
    assert [(k["scope"], k["label"]) for k in body["kill_switches"]] == [("broker", "Broker BRKM")]
    assert body["exceptions"] == {"open": 1, "by_kind": {"unmatched_reject": 1}}
    assert [s["broker"] for s in body["sessions"]] == ["BRKM"]
    assert as_user(refdata.pm1).get("/api/blotter/header/").status_code == 403
    assert as_user(refdata.ops).get("/api/blotter/header/").status_code == 200


def test_no_fix_order_means_empty_history(refdata, broker):
    order = staged_order(refdata.acct1, refdata.aapl)
    block = bs.block_create(order_ids=[order.pk], actor=refdata.trader, as_of=timezone.now())
    body = as_user(refdata.trader).get(f"/api/blocks/{block.pk}/detail/").json()
    assert (body["executions"], body["messages"], body["cl_ord_ids"]) == ([], [], [])
    assert not FixOrder.objects.filter(block=block).exists()
    assert not FixMessage.objects.exists()


def test_a_message_s_text_is_shown_as_text(refdata, broker):
    hostile = "<script>alert(1)</script>"
    monitor.fix_message_sent(
        broker_id=broker.pk,
        message=SentMessage(
            msg_type="Q", seq_num=1, seq_epoch="E1", raw=f"8=FIX.4.4|35=Q|58={hostile}|10=000|"
        ),
        as_of=timezone.now(),
    )
    html = as_user(refdata.ops).get("/fix/messages/").content.decode()
    assert hostile not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
