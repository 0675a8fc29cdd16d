"""Blocks, routing, cancel/amend requests and internal crosses, against the real database."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, time
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from audit.models import AuditEvent
from fixgateway.models import OutboxMessage
from fixgateway.sending import outbox_mark_sent
from oms.errors import Conflict, DomainError, NotPermitted
from oms.roles import user_roles
from orders import block_services as bs
from orders.blotter_selectors import blotter_rows, order_rows_for_publish
from orders.lifecycle import OrderStatus
from orders.models import Block, Order
from orders.services import order_set_status
from positions.models import CashMovement
from positions.selectors import position_quantity

from .helpers import staged_order

pytestmark = pytest.mark.django_db


def _route(block, broker, actor, **kw):
    args = {"order_type": "MARKET", "strategy": "DMA"} | kw
    return bs.block_route(
        block_id=block.pk, broker_id=broker.pk, actor=actor, as_of=timezone.now(), **args
    )


def _ack(block):
    """What the gateway does when the broker acknowledges: block and orders WORKING."""
    for pk in block.orders.values_list("pk", flat=True):
        order_set_status(order_id=pk, to_status="WORKING", as_of=timezone.now(), kind="new")
    Block.objects.filter(pk=block.pk).update(status=Block.Status.WORKING)


def test_a_block_spans_accounts_and_pms_in_one_security_and_side(refdata):
    a = staged_order(refdata.acct1, refdata.aapl, quantity="300")
    b = staged_order(refdata.acct2, refdata.aapl, quantity="150.5")
    block = bs.block_create(order_ids=[b.pk, a.pk], actor=refdata.trader, as_of=timezone.now())
    assert block.quantity == Decimal("450.5")
    assert (block.security_id, block.side, block.status) == (refdata.aapl.pk, "BUY", "OPEN")
    assert {o.block_id for o in Order.objects.filter(pk__in=[a.pk, b.pk])} == {block.pk}
    assert set(Order.objects.values_list("status", flat=True)) == {"STAGED"}
    assert AuditEvent.objects.filter(action="block.create", object_id=str(block.pk)).exists()
    single = staged_order(refdata.acct1, refdata.msft)
    one = bs.block_create(order_ids=[single.pk], actor=refdata.trader, as_of=timezone.now())
    assert one.quantity == Decimal("100")


@pytest.mark.parametrize(
    ("second", "code"),
    [
        ({"security": "msft"}, "mixed_block"),
        ({"side": "SELL"}, "mixed_block"),
        ({"status": OrderStatus.APPROVED}, "not_staged"),
    ],
)
def test_a_block_refuses_mixed_or_unstaged_orders(refdata, second, code):
    a = staged_order(refdata.acct1, refdata.aapl)
    b = staged_order(
        refdata.acct2,
        getattr(refdata, second.get("security", "aapl")),
        second.get("side", "BUY"),
        status=second.get("status", OrderStatus.STAGED),
    )
    with pytest.raises(Conflict) as err:
        bs.block_create(order_ids=[a.pk, b.pk], actor=refdata.trader, as_of=timezone.now())
    assert err.value.code == code
    assert not Block.objects.exists()
    assert not Order.objects.filter(block__isnull=False).exists()


def test_an_order_joins_one_live_block_only_and_only_the_desk_blocks(refdata):
    a = staged_order(refdata.acct1, refdata.aapl)
    bs.block_create(order_ids=[a.pk], actor=refdata.trader, as_of=timezone.now())
    with pytest.raises(Conflict) as err:
        bs.block_create(order_ids=[a.pk], actor=refdata.admin, as_of=timezone.now())
    assert err.value.code == "already_blocked"
    with pytest.raises(NotPermitted):
        bs.block_create(order_ids=[a.pk], actor=refdata.pm1, as_of=timezone.now())
    # Undoing the block frees the order again.
    bs.block_dissolve(
        block_id=Order.objects.get(pk=a.pk).block_id, actor=refdata.trader, as_of=timezone.now()
    )
    again = bs.block_create(order_ids=[a.pk], actor=refdata.trader, as_of=timezone.now())
    assert Order.objects.get(pk=a.pk).block_id == again.pk


@pytest.mark.django_db(transaction=True)
def test_concurrent_blocks_on_the_same_orders_one_wins(refdata):
    orders = [staged_order(refdata.acct1, refdata.aapl) for _ in range(4)]
    ids = [o.pk for o in orders]
    barrier = threading.Barrier(2)
    results: list = []

    def attempt(order_ids):
        try:
            barrier.wait()
            block = bs.block_create(order_ids=order_ids, actor=refdata.trader, as_of=timezone.now())
            results.append(("ok", block.pk))
        except Conflict as exc:
            results.append(("conflict", exc.code))
        finally:
            connection.close()

    threads = [
        threading.Thread(target=attempt, args=(ids[:3],)),
        threading.Thread(target=attempt, args=(list(reversed(ids[1:])),)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(r[0] for r in results) == ["conflict", "ok"]
    assert [r[1] for r in results if r[0] == "conflict"] == ["already_blocked"]
    winner = next(r[1] for r in results if r[0] == "ok")
    assert Block.objects.count() == 1
    assert {o.block_id for o in Order.objects.filter(block__isnull=False)} == {winner}


def test_routing_moves_statuses_and_writes_the_outbox(refdata, sim_broker):
    a = staged_order(refdata.acct1, refdata.aapl, quantity="300")
    b = staged_order(refdata.acct2, refdata.aapl, quantity="100")
    block = bs.block_create(order_ids=[a.pk, b.pk], actor=refdata.trader, as_of=timezone.now())
    routed = _route(
        block,
        sim_broker,
        refdata.trader,
        order_type="LIMIT",
        limit_price=Decimal("190.25"),
        strategy="POV",
        strategy_params={"participation": "12.5", "start_time": "10:00", "end_time": "15:30"},
    )
    block.refresh_from_db()
    assert block.status == "ROUTED" and block.broker_id == sim_broker.pk
    assert block.allocation_plan_hash
    assert block.strategy_params == {
        "participation": "12.5",
        "start_time": "10:00",
        "end_time": "15:30",
    }
    assert set(Order.objects.values_list("status", flat=True)) == {"PENDING_NEW"}
    new = OutboxMessage.objects.get(fix_order__block=block)
    assert new.kind == "NEW"
    assert Decimal(new.payload["limit_price"]) == Decimal("190.25")
    assert new.payload["strategy"] == "POV"
    assert routed.pk == block.pk


@pytest.mark.parametrize(
    ("kw", "code"),
    [
        ({"order_type": "LIMIT", "limit_price": None}, "limit_required"),
        ({"order_type": "LIMIT", "limit_price": Decimal("190.001")}, "tick"),
        ({"order_type": "LIMIT", "limit_price": Decimal("185.50")}, "limit_beyond_order"),
        ({"order_type": "MARKET"}, "limit_required"),
        ({"strategy": "POV", "strategy_params": {}}, "invalid_params"),
        (
            {"strategy": "VWAP", "strategy_params": {"start_time": "15:00", "end_time": "10:00"}},
            "invalid_params",
        ),
        ({"strategy": "VWAP", "strategy_params": {"minutes": "30"}}, "invalid_params"),
        ({"strategy": "TWAP", "strategy_params": {"participation": "10"}}, "invalid_params"),
        ({"strategy": "ICEBERG"}, "invalid_strategy"),
        ({"time_in_force": "GTD"}, "invalid_expiry"),
    ],
)
def test_routing_validates_its_instructions(refdata, sim_broker, kw, code):
    # A limit buy at 180: the desk may not pay more than that for this PM.
    order = staged_order(refdata.acct1, refdata.aapl, order_type="LIMIT", limit_price="180.00")
    block = bs.block_create(order_ids=[order.pk], actor=refdata.trader, as_of=timezone.now())
    args = {"order_type": "LIMIT", "limit_price": Decimal("179.00")} | kw
    if kw.get("order_type") == "MARKET":
        args.pop("limit_price")
    with pytest.raises(DomainError) as err:
        _route(block, sim_broker, refdata.trader, **args)
    assert err.value.code == code
    block.refresh_from_db()
    assert block.status == "OPEN"
    assert Order.objects.get(pk=order.pk).status == "STAGED"
    assert not OutboxMessage.objects.exists()


def test_cancel_of_a_routed_block_shows_pending_until_the_broker_answers(refdata, sim_broker):
    orders = [staged_order(refdata.acct1, refdata.aapl), staged_order(refdata.acct2, refdata.aapl)]
    block = bs.block_create(
        order_ids=[o.pk for o in orders], actor=refdata.trader, as_of=timezone.now()
    )
    with pytest.raises(Conflict):
        bs.block_cancel(block_id=block.pk, actor=refdata.trader, as_of=timezone.now())
    _route(block, sim_broker, refdata.trader)
    # The gateway has sent the order (one not sent yet is withdrawn instead: tests/fix).
    new = OutboxMessage.objects.get(fix_order__block=block)
    outbox_mark_sent(message_id=new.pk, seq_num=2, as_of=timezone.now())
    bs.block_cancel(block_id=block.pk, actor=refdata.trader, as_of=timezone.now())
    block.refresh_from_db()
    assert block.status == "PENDING_CANCEL"
    assert set(Order.objects.values_list("status", flat=True)) == {"PENDING_CANCEL"}
    assert list(OutboxMessage.objects.order_by("id").values_list("kind", flat=True)) == [
        "NEW",
        "CANCEL",
    ]
    with pytest.raises(Conflict):  # one request at a time
        bs.block_cancel(block_id=block.pk, actor=refdata.trader, as_of=timezone.now())


def test_amend_of_a_working_block_shows_pending_replace(refdata, sim_broker):
    a = staged_order(refdata.acct1, refdata.aapl, quantity="300")
    b = staged_order(refdata.acct2, refdata.aapl, quantity="200")
    block = bs.block_create(order_ids=[a.pk, b.pk], actor=refdata.trader, as_of=timezone.now())
    _route(block, sim_broker, refdata.trader, order_type="LIMIT", limit_price=Decimal("189"))
    with pytest.raises(Conflict) as err:  # not acknowledged yet
        bs.block_replace(
            block_id=block.pk,
            limit_price=Decimal("189.5"),
            actor=refdata.trader,
            as_of=timezone.now(),
        )
    assert err.value.code == "not_replaceable"
    _ack(block)
    with pytest.raises(DomainError) as err:
        bs.block_replace(
            block_id=block.pk,
            quantity=Decimal("600"),
            actor=refdata.trader,
            as_of=timezone.now(),
        )
    assert err.value.code == "invalid_quantity"
    bs.block_replace(
        block_id=block.pk,
        quantity=Decimal("400"),
        limit_price=Decimal("189.50"),
        actor=refdata.trader,
        as_of=timezone.now(),
    )
    block.refresh_from_db()
    assert block.status == "PENDING_REPLACE"
    assert set(Order.objects.values_list("status", flat=True)) == {"PENDING_REPLACE"}
    replace = OutboxMessage.objects.get(kind="REPLACE")
    assert Decimal(replace.payload["quantity"]) == Decimal("400")
    assert Decimal(replace.payload["limit_price"]) == Decimal("189.50")


def test_internal_cross_fills_both_sides_and_moves_both_positions(refdata):
    buy = staged_order(refdata.acct1, refdata.aapl, "BUY", quantity="300")
    sell = staged_order(refdata.acct2, refdata.aapl, "SELL", quantity="200")
    before_buy = position_quantity(account_id=refdata.acct1.pk, security_id=refdata.aapl.pk)
    before_sell = position_quantity(account_id=refdata.acct2.pk, security_id=refdata.aapl.pk)
    result = bs.orders_cross(
        buy_order_id=buy.pk, sell_order_id=sell.pk, actor=refdata.trader, as_of=timezone.now()
    )
    assert result["quantity"] == Decimal("200") and result["price"] == Decimal("190.00")
    buy.refresh_from_db()
    sell.refresh_from_db()
    assert (buy.status, buy.cum_qty, buy.avg_price) == (
        "PARTIALLY_FILLED",
        Decimal("200"),
        Decimal("190"),
    )
    assert (sell.status, sell.cum_qty) == ("FILLED", Decimal("200"))
    assert (
        position_quantity(account_id=refdata.acct1.pk, security_id=refdata.aapl.pk)
        == before_buy + 200
    )
    assert (
        position_quantity(account_id=refdata.acct2.pk, security_id=refdata.aapl.pk)
        == before_sell - 200
    )
    assert AuditEvent.objects.filter(action="order.cross").count() == 1


def test_a_cross_needs_two_accounts_two_sides_one_security(refdata):
    buy = staged_order(refdata.acct1, refdata.aapl, "BUY")
    same_acct = staged_order(refdata.acct1, refdata.aapl, "SELL")
    other_sec = staged_order(refdata.acct2, refdata.msft, "SELL")
    both_buy = staged_order(refdata.acct2, refdata.aapl, "BUY")
    for sell, code in (
        (same_acct, "cross_same_account"),
        (other_sec, "cross_security"),
        (both_buy, "cross_sides"),
    ):
        with pytest.raises(Conflict) as err:
            bs.orders_cross(
                buy_order_id=buy.pk,
                sell_order_id=sell.pk,
                actor=refdata.trader,
                as_of=timezone.now(),
            )
        assert err.value.code == code
    assert set(Order.objects.values_list("cum_qty", flat=True)) == {Decimal(0)}


@pytest.mark.parametrize(
    ("trade", "settle"),
    [
        # Friday; Monday is Columbus Day (NYSE open, Fedwire closed): T+1 is Tuesday.
        (date(2026, 10, 9), date(2026, 10, 13)),
        # Thursday; Christmas Day, then the weekend: T+1 is Monday.
        (date(2026, 12, 24), date(2026, 12, 28)),
    ],
)
def test_a_cross_settles_on_the_settlement_calendar(refdata, trade, settle):
    assert (refdata.aapl.exchange_mic, refdata.aapl.currency) == ("XNAS", "USD")
    assert refdata.aapl.settlement_cycle == 1
    buy = staged_order(refdata.acct1, refdata.aapl, "BUY", quantity="100")
    sell = staged_order(refdata.acct2, refdata.aapl, "SELL", quantity="100")
    as_of = datetime.combine(trade, time(15, 0), tzinfo=UTC)
    result = bs.orders_cross(
        buy_order_id=buy.pk, sell_order_id=sell.pk, actor=refdata.trader, as_of=as_of
    )
    assert (result["trade_date"], result["settle_date"]) == (trade, settle)
    # The cash each account books for the cross settles on that date too.
    movements = CashMovement.objects.filter(account__in=[refdata.acct1, refdata.acct2])
    assert {m.account_id for m in movements} == {refdata.acct1.pk, refdata.acct2.pk}
    assert {m.settle_date for m in movements} == {settle}


def test_the_snapshot_and_the_publisher_each_take_one_query(refdata, django_assert_num_queries):
    for i in range(30):
        staged_order(refdata.acct1 if i % 2 else refdata.acct2, refdata.aapl)
    ids = list(Order.objects.values_list("pk", flat=True))
    user_roles(refdata.trader)
    user_roles(refdata.pm1)
    now = timezone.now()
    with django_assert_num_queries(1):
        rows = blotter_rows(user=refdata.trader, scope="blotter", as_of=now)
    assert len(rows) == 30
    with django_assert_num_queries(1):
        mine = blotter_rows(user=refdata.pm1, scope="mine", as_of=now)
    assert {r["account"] for r in mine} == {"ACCT1"} and len(mine) == 15
    with django_assert_num_queries(1):
        published = order_rows_for_publish(order_ids=ids)
    managers = {row["account"]: m for row, m in published}
    assert managers == {"ACCT1": [refdata.pm1.pk], "ACCT2": [refdata.pm2.pk]}


def test_the_api_speaks_the_projects_error_format(client, refdata):
    a = staged_order(refdata.acct1, refdata.aapl)
    b = staged_order(refdata.acct2, refdata.msft)
    client.force_login(refdata.pm1)
    assert client.post("/api/blocks/", {"order_ids": [a.pk]}, "application/json").status_code == 403
    client.force_login(refdata.trader)
    mixed = client.post("/api/blocks/", {"order_ids": [a.pk, b.pk]}, "application/json")
    assert mixed.status_code == 409
    assert mixed.json()["error"]["code"] == "mixed_block"
    bad = client.post("/api/blocks/", {"order_ids": []}, "application/json")
    assert bad.status_code == 400 and "order_ids" in bad.json()["error"]["fields"]
    ok = client.post("/api/blocks/", {"order_ids": [a.pk]}, "application/json")
    assert ok.status_code == 201 and ok.json()["security__symbol"] == "AAPL"
    snap = client.get("/api/blotter/snapshot/").json()
    assert {r["id"] for r in snap["rows"]} == {a.pk, b.pk} and isinstance(snap["seq"], int)
    client.force_login(refdata.pm1)
    assert client.get("/api/blotter/snapshot/").status_code == 404
    mine = client.get("/api/blotter/snapshot/?scope=mine").json()
    assert [r["id"] for r in mine["rows"]] == [a.pk]
