"""The booking ledger through the FIX gateway's public service: what the broker reports (fills,
acks of replaces and cancels, done for day, busts, corrections) becomes order figures,
positions, cash, per-day account allocations and custodian files, as the orders change, over
several days, and after a day is final."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from allocation.models import Allocation, BlockDay, SettlementFile
from allocation.services import settlement_files_generate
from allocation.tasks import settlement_after_close
from fixgateway.executions import execution_report_apply
from fixgateway.models import Broker, FixOrder, Quarantine
from fixgateway.reports import InboundReport
from oms import roles
from orders.block_services import block_create, block_replace, block_route
from orders.entry import order_amend, order_cancel
from orders.lifecycle import OrderStatus
from orders.models import Order
from positions.models import CashMovement, Position
from positions.services import OpeningPosition, opening_balances_load
from tests import factories

pytestmark = pytest.mark.django_db

DAY1 = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)  # a Tuesday
DAY2 = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)
DAY3 = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)  # Friday after Thanksgiving
CLOSE = {d: d.replace(hour=22) for d in (DAY1, DAY2, DAY3)}


class Desk:
    """A PM, a trader, a broker and a security; blocks routed through the real services."""

    def __init__(self, *, tag="", currency="USD", price="10.00"):
        self.tag = tag
        self.pm = factories.user(f"pm_ledger{tag}", roles.PM)
        self.trader = factories.user(f"tr_ledger{tag}", roles.TRADER)
        self.broker = Broker.objects.create(
            code=f"BRK{tag}",
            name="Broker",
            port=1,
            sender_comp_id=f"OMS{tag}",
            target_comp_id=f"BRK{tag}",
            commission_bps=Decimal("0"),
            commission_per_share=Decimal("0.01"),
        )
        self.security = factories.security(f"LEDG{tag}", price=price, currency=currency)
        self.accounts: list = []
        self.n = 0

    def account(self):
        self.accounts.append(factories.account(f"L{self.tag}{len(self.accounts):03d}", self.pm))
        return self.accounts[-1]

    def block(self, quantities, *, side="BUY", tif="DAY", as_of=DAY1, accounts=None):
        accounts = accounts or [self.account() for _ in quantities]
        ids = [
            factories.order(
                acct,
                self.security,
                self.pm,
                side=side,
                quantity=str(q),
                status=OrderStatus.STAGED,
                received_at=as_of,
            ).pk
            for acct, q in zip(accounts, quantities, strict=True)
        ]
        block = block_create(order_ids=ids, actor=self.trader, as_of=as_of)
        return block_route(
            block_id=block.pk,
            broker_id=self.broker.pk,
            order_type="MARKET",
            time_in_force=tif,
            actor=self.trader,
            as_of=as_of,
        )

    def report(self, block, exec_type, *, qty="0", px="0", as_of=DAY1, **extra):
        self.n += 1
        fix_order = FixOrder.objects.get(block=block)
        cl_ord_id = fix_order.pending_cl_ord_id or fix_order.cl_ord_id
        extra.setdefault("exec_id", f"X{self.tag}{self.n}")
        result = execution_report_apply(
            broker=self.broker,
            report=InboundReport(
                msg_type="8",
                cl_ord_id=cl_ord_id,
                order_id=f"BRK-{block.pk}",
                exec_type=exec_type,
                ord_status="1",
                last_qty=Decimal(qty),
                last_px=Decimal(px),
                **{"trade_date": as_of.date(), **extra},
            ),
            as_of=as_of,
        )
        assert result.outcome in ("applied", "duplicate"), result
        return extra["exec_id"]

    def fill(self, block, qty, px, *, as_of=DAY1, exec_id=None):
        extra = {"exec_id": exec_id} if exec_id else {}
        return self.report(block, "F", qty=str(qty), px=str(px), as_of=as_of, **extra)


def orders_of(block):
    return list(Order.objects.filter(pk__in=[line["order"] for line in block.allocation_plan]))


def position(order):
    pos = Position.objects.filter(account=order.account, security=order.security).first()
    return pos.quantity if pos else Decimal(0)


def cash(account, currency="USD"):
    return sum(
        (m.amount for m in CashMovement.objects.filter(account=account, currency=currency)),
        Decimal(0),
    )


@pytest.fixture
def desk(refdata):
    return Desk()


def test_partial_cancel_of_one_order_mid_fill_gives_it_nothing_more(desk):
    block = desk.block([100, 100, 100])
    desk.report(block, "0")
    desk.fill(block, 90, "10.00")
    a, b, c = sorted(orders_of(block), key=lambda o: o.pk)
    order_cancel(order_id=b.pk, actor=desk.pm, as_of=DAY1)
    desk.report(block, "5")  # the broker takes B's leaves off the block
    desk.fill(block, 140, "10.10")
    a, b, c = (Order.objects.get(pk=o.pk) for o in (a, b, c))
    assert (b.status, b.cum_qty, b.leaves_qty) == (OrderStatus.CANCELLED, 30, 0)
    assert (a.cum_qty, c.cum_qty) == (100, 100)
    assert [position(o) for o in (a, b, c)] == [100, 30, 100]
    assert not Quarantine.objects.exists()


def test_amend_one_order_down_then_the_next_fill_fits(desk):
    block = desk.block([100, 100])
    desk.report(block, "0")
    a, b = sorted(orders_of(block), key=lambda o: o.pk)
    order_amend(order_id=a.pk, actor=desk.pm, as_of=DAY1, changes={"quantity": Decimal(50)})
    desk.report(block, "5")
    desk.fill(block, 150, "10.00")
    a, b = Order.objects.get(pk=a.pk), Order.objects.get(pk=b.pk)
    assert (a.quantity, a.cum_qty, a.status) == (50, 50, OrderStatus.FILLED)
    assert (b.quantity, b.cum_qty, b.status) == (100, 100, OrderStatus.FILLED)
    assert not Quarantine.objects.exists()


def test_block_amended_down_and_up_orders_show_true_quantities(desk):
    block = desk.block([100, 100])
    desk.report(block, "0")
    block_replace(block_id=block.pk, quantity=Decimal(150), actor=desk.trader, as_of=DAY1)
    desk.report(block, "5")
    for order in orders_of(block):
        assert (order.quantity, order.cum_qty, order.leaves_qty) == (100, 0, 100)
        assert order.status == OrderStatus.WORKING
    desk.fill(block, 100, "10.00")
    block_replace(block_id=block.pk, quantity=Decimal(200), actor=desk.trader, as_of=DAY1)
    desk.report(block, "5")
    desk.fill(block, 100, "10.20")
    for order in orders_of(block):
        assert (order.cum_qty, order.leaves_qty, order.status) == (100, 0, OrderStatus.FILLED)
        assert order.avg_price == Decimal("10.1")


def test_gtc_block_over_three_days_books_each_day_on_its_own(desk):
    block = desk.block([300, 300], tif="GTC")
    desk.report(block, "0")
    desk.fill(block, 200, "10.00", as_of=DAY1)
    desk.report(block, "3", as_of=DAY1)  # done for day
    settlement_after_close(as_of=CLOSE[DAY1].isoformat())
    desk.fill(block, 100, "11.00", as_of=DAY2)
    desk.report(block, "3", as_of=DAY2)
    settlement_after_close(as_of=CLOSE[DAY2].isoformat())
    desk.fill(block, 300, "12.00", as_of=DAY3)
    settlement_after_close(as_of=CLOSE[DAY3].isoformat())

    days = list(BlockDay.objects.filter(block=block).order_by("trade_date"))
    assert [(d.trade_date, d.settle_date, d.executed, d.status) for d in days] == [
        (date(2026, 11, 24), date(2026, 11, 25), 200, "FINALISED"),
        (date(2026, 11, 25), date(2026, 11, 27), 100, "FINALISED"),  # 26th: Thanksgiving
        (date(2026, 11, 27), date(2026, 11, 30), 300, "FINALISED"),
    ]
    for d, price in zip(days, ("10", "11", "12"), strict=True):
        allocs = Allocation.objects.filter(day=d, replaced_at__isnull=True)
        assert {a.avg_price for a in allocs} == {Decimal(price)}
        assert sum(a.quantity for a in allocs) == d.executed
        assert {a.settle_date for a in allocs} == {d.settle_date}
        files = SettlementFile.objects.filter(trade_date=d.trade_date)
        assert sum(f.row_count for f in files) == 2
    for order in orders_of(block):
        assert order.cum_qty == 300 and order.status == OrderStatus.FILLED
        assert position(order) == 300
        assert order.avg_price == Decimal("11.16666667")  # (100x10 + 50x11 + 150x12) / 300


def test_bust_after_finalisation_rebooks_and_reissues_the_file(desk):
    block = desk.block([100, 200])
    desk.report(block, "0")
    desk.fill(block, 100, "10.00", exec_id="E1")
    desk.fill(block, 200, "10.01", exec_id="E2")
    settlement_after_close(as_of=CLOSE[DAY1].isoformat())
    first = SettlementFile.objects.get()
    a, b = sorted(orders_of(block), key=lambda o: o.pk)
    cash_before = cash(a.account)

    desk.report(block, "H", exec_ref_id="E2", as_of=DAY2)  # busted the next morning
    day = BlockDay.objects.get(block=block)
    assert (day.status, day.version, day.executed) == ("FINALISED", 2, 100)
    current = {a.account_id: a for a in Allocation.objects.filter(day=day, replaced_at=None)}
    assert {x.version for x in current.values()} == {2}
    assert current[a.account_id].quantity + current[b.account_id].quantity == 100
    assert sum(x.gross_amount for x in current.values()) == Decimal("1000.00")
    assert Allocation.objects.filter(day=day, replaced_at__isnull=False).count() == 2
    for order in (a, b):
        order = Order.objects.get(pk=order.pk)
        assert position(order) == current[order.account_id].quantity == order.cum_qty
    # Cash is what the new allocation says, nothing of the old one is left.
    assert cash(a.account) == -current[a.account_id].net_amount + (
        cash_before + Allocation.objects.get(day=day, account=a.account, version=1).net_amount
    )
    second = SettlementFile.objects.exclude(pk=first.pk).get()
    assert second.version == 2 and second.previous_id == first.pk
    assert second.differences["replaces"] == first.filename
    assert len(second.differences["changed"]) == 2

    # A correction of the remaining trade's price, after the day was final again.
    # Sent without a TradeDate: it corrects the original trade's day.
    desk.report(block, "G", qty="100", px="9.90", exec_ref_id="E1", as_of=DAY2, trade_date=None)
    day.refresh_from_db()
    assert (day.version, day.avg_price) == (3, Decimal("9.9"))
    assert sum(
        x.gross_amount for x in Allocation.objects.filter(day=day, replaced_at=None)
    ) == Decimal("990.00")
    assert SettlementFile.objects.filter(version=3).exists()


def test_money_ties_out_to_the_cent(desk):
    block = desk.block([100, 100, 100])
    desk.report(block, "0")
    desk.fill(block, 100, "10.00")
    desk.fill(block, 200, "10.01")
    settlement_after_close(as_of=CLOSE[DAY1].isoformat())
    day = BlockDay.objects.get(block=block)
    allocs = list(Allocation.objects.filter(day=day))
    assert day.street_gross == Decimal("3002.00")
    assert sorted(a.gross_amount for a in allocs) == [
        Decimal("1000.66"),
        Decimal("1000.67"),
        Decimal("1000.67"),
    ]
    (sf,) = SettlementFile.objects.all()
    rows = [line.split(",") for line in sf.content.strip().splitlines()[1:]]
    header = sf.content.splitlines()[0].split(",")
    gross = header.index("gross_amount")
    net = header.index("net_amount")
    assert sum(Decimal(r[gross]) for r in rows) == Decimal("3002.00")
    for a in allocs:
        assert a.commission == Decimal("1.00")  # 100 shares x 0.01
        assert a.net_amount == a.gross_amount + Decimal("1.00")
        assert cash(a.account) == -a.net_amount
        assert a.net_amount in {Decimal(r[net]) for r in rows}


def test_cross_settles_on_the_calendar_and_reaches_the_file(desk):
    when = datetime(2026, 10, 9, 15, 0, tzinfo=UTC)  # settles past Columbus Day
    from orders.block_services import orders_cross

    buyer, seller = desk.account(), desk.account()
    opening_balances_load(
        positions=[OpeningPosition(seller, desk.security, Decimal(500), Decimal("9.00"))], cash=[]
    )
    buy = factories.order(
        buyer, desk.security, desk.pm, quantity="300", status="STAGED", received_at=when
    )
    sell = factories.order(
        seller,
        desk.security,
        desk.pm,
        side="SELL",
        quantity="200",
        status="STAGED",
        received_at=when,
    )
    result = orders_cross(buy_order_id=buy.pk, sell_order_id=sell.pk, actor=desk.trader, as_of=when)
    assert result["settle_date"] == date(2026, 10, 13)
    settlement_after_close(as_of=when.replace(hour=22).isoformat())
    allocs = Allocation.objects.filter(trade_date=when.date())
    assert sorted((a.side, a.quantity, a.settle_date) for a in allocs) == [
        ("BUY", 200, date(2026, 10, 13)),
        ("SELL", 200, date(2026, 10, 13)),
    ]
    (sf,) = settlement_files_generate(trade_date=when.date(), as_of=when)
    assert sf[0].row_count == 2 and "INTERNAL" in sf[0].content
    assert Position.objects.get(account=seller, security=desk.security).quantity == 300


def test_after_close_job_reports_a_failing_day_and_finalises_the_rest(desk):
    from oms.models import OpsException

    good = desk.block([100])
    bad = desk.block([100])
    for block in (good, bad):
        desk.report(block, "0")
        desk.fill(block, 100, "10.00")
    # The bad block's day says it executed more than its orders can take (a database fixed by
    # hand, say): booking it must fail, alone.
    BlockDay.objects.filter(block=bad).update(executed=Decimal(500))
    result = settlement_after_close(as_of=CLOSE[DAY1].isoformat())
    assert result["finalised"] == [[good.pk, "2026-11-24"]]
    assert [f[0] for f in result["failed"]] == [bad.pk]
    exc = OpsException.objects.get(kind="booking_failed")
    assert exc.ref == f"block:{bad.pk}:2026-11-24" and exc.resolved_at is None
    assert BlockDay.objects.get(block=good).status == "FINALISED"
