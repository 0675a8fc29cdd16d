"""Booking a bond and a future: the fills come in through the services the FIX applier calls
(inbound_batch_apply), the block is allocated pro rata to two accounts and finalised, and the
allocations, the custodian file, the positions, the cash ladder and the money view agree with
figures worked out by hand, to the cent.

A bond is quoted per 100 of face and its buyer pays the seller the interest accrued since the
last coupon up to the settlement date; a future's price is per unit of the underlying and one
contract is `multiplier` units. Before, both were booked at quantity x price: the bond's cash
100 times too large and without accrued interest, the future's 50 times too small."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from tests import factories

pytestmark = pytest.mark.django_db(transaction=True)

D = Decimal
# Wednesday 18 Nov 2026; both instruments settle T+1, Thursday 19 Nov.
AS_OF = datetime(2026, 11, 18, 15, 0, tzinfo=UTC)
TRADE_DATE = date(2026, 11, 18)
SETTLE_DATE = date(2026, 11, 19)


@pytest.fixture
def desk(transactional_db):
    from fixgateway.models import Broker
    from oms import roles
    from oms.models import Custodian

    custodian = Custodian.objects.create(code="BONDCUST", name="Bond custodian")
    pm = factories.user("bondpm", roles.PM)
    trader = factories.user("bondtrader", roles.TRADER)
    broker = Broker.objects.create(
        code="BONDBRK",
        name="Bond broker",
        port=1,
        sender_comp_id="OMSB",
        target_comp_id="BRKB",
        commission_bps=D("2"),
        commission_per_share=D("0"),
    )
    accounts = [factories.account(code, pm, custodian=custodian) for code in ("FUNDA", "FUNDB")]
    for acct in accounts:
        from positions.services import cash_adjust

        cash_adjust(
            account_id=acct.pk,
            currency="USD",
            amount=D("2000000"),
            settle_date=TRADE_DATE,
            reason="opening cash",
            ref=f"open:{acct.code}",
            as_of=AS_OF,
        )
    return {"pm": pm, "trader": trader, "broker": broker, "accounts": accounts}


def _trade(desk, security, quantities, fills, *, side="BUY"):
    """Orders for the two accounts, one block routed to the broker, the broker's fills
    applied as the FIX applier applies them; the block fills in full and the after-close job
    finalises its day."""
    from fixgateway.inbound import inbound_batch_apply
    from fixgateway.models import FixOrder
    from fixgateway.reports import InboundReport
    from orders.block_services import block_create, block_route
    from orders.lifecycle import OrderStatus

    ids = [
        factories.order(
            acct,
            security,
            desk["pm"],
            side=side,
            quantity=q,
            status=OrderStatus.STAGED,
            received_at=AS_OF,
        ).pk
        for acct, q in zip(desk["accounts"], quantities, strict=True)
    ]
    block = block_create(order_ids=ids, actor=desk["trader"], as_of=AS_OF)
    block = block_route(
        block_id=block.pk,
        broker_id=desk["broker"].pk,
        order_type="MARKET",
        actor=desk["trader"],
        as_of=AS_OF,
    )
    cl_ord_id = FixOrder.objects.get(block=block).cl_ord_id
    reports = [InboundReport(msg_type="8", cl_ord_id=cl_ord_id, exec_id="NEW", exec_type="0")] + [
        InboundReport(
            msg_type="8",
            cl_ord_id=cl_ord_id,
            order_id="BRK-1",
            exec_id=f"T{i}",
            exec_type="F",
            ord_status="2" if i == len(fills) - 1 else "1",
            last_qty=D(q),
            last_px=D(px),
            trade_date=TRADE_DATE,
        )
        for i, (q, px) in enumerate(fills)
    ]
    results = inbound_batch_apply(broker=desk["broker"], reports=reports, as_of=AS_OF)
    assert {r.outcome for r in results} == {"applied"}, results
    # The after-close job finalises the day (the block is filled).
    from allocation.services import allocations_finalise_due

    allocations_finalise_due(as_of=AS_OF)
    return block


def _file_rows(desk) -> dict[str, dict]:
    from allocation.services import settlement_files_generate

    [(file, created)] = settlement_files_generate(trade_date=TRADE_DATE, as_of=AS_OF)
    assert created
    return {r["account"]: r for r in csv.DictReader(io.StringIO(file.content))}


def _cash(desk) -> dict[str, tuple]:
    """Per account: (projected cash, the ladder's step on the settlement date) in the ledger
    and (projected cash) in the money view."""
    from positions.selectors import cash_ladders, portfolio_snapshot

    ids = [a.pk for a in desk["accounts"]]
    ladders = {ladder.account_code: ladder for ladder in cash_ladders(account_ids=ids)}
    snapshot = portfolio_snapshot(account_ids=ids, as_of=AS_OF)
    out = {}
    for acct in desk["accounts"]:
        ladder = ladders[acct.code]
        steps = {s.settle_date: s.amount for s in ladder.steps}
        out[acct.code] = (
            ladder.projected,
            steps.get(SETTLE_DATE),
            snapshot.accounts[acct.pk].cash_projected,
        )
    return out


def test_a_bond_block_books_face_per_100_plus_accrued_to_settlement(desk):
    """6% 30/360 semi-annual bond maturing 15 Feb 2030: coupons 15 Feb and 15 Aug. 30/360 from
    15 Aug to the settlement date 19 Nov is 3 x 30 + 4 = 94 days. The block buys 1,000,000 face
    (600,000 for FUNDA, 400,000 for FUNDB) in two fills: 300,000 at 99.515 and 700,000 at 99.50.

    street clean   = (300,000 x 99.515 + 700,000 x 99.50) / 100 = 995,045.00
    street accrued = 1,000,000 x 6% x 94/360                    =  15,666.666.. -> 15,666.67
    FUNDA clean    = 995,045.00 x 60%   = 597,027.00
    FUNDB clean    = 995,045.00 x 40%   = 398,018.00
    accrued split  = 9,400.002 and 6,266.668: floors 9,400.00 and 6,266.66, the residual cent
                     to the larger remainder (FUNDB): 9,400.00 and 6,266.67 (sum 15,666.67)
    commission     = 2 bp of clean: 119.4054 -> 119.41 and 79.6036 -> 79.60
    net (a buy)    = clean + accrued + commission: 606,546.41 and 404,364.27
    """
    from allocation.models import Allocation, BlockDay
    from allocation.selectors import booking_differences
    from positions.models import Position

    bond = factories.bond("UST26")
    block = _trade(desk, bond, ["600000", "400000"], [("300000", "99.515"), ("700000", "99.50")])
    day = BlockDay.objects.get(block=block)
    assert (day.status, day.settle_date) == (BlockDay.Status.FINALISED, SETTLE_DATE)
    assert day.street_gross == D("995045.00")
    allocations = {
        a.account.code: a for a in Allocation.objects.filter(block=block).select_related("account")
    }
    expected = {
        "FUNDA": (D("600000"), D("597027.00"), D("9400.00"), D("119.41"), D("606546.41")),
        "FUNDB": (D("400000"), D("398018.00"), D("6266.67"), D("79.60"), D("404364.27")),
    }
    got = {
        code: (a.quantity, a.gross_amount, a.accrued_interest, a.commission, a.net_amount)
        for code, a in allocations.items()
    }
    assert got == expected
    assert allocations["FUNDA"].avg_price == D("99.5045")
    # The custodian file says the same.
    rows = _file_rows(desk)
    for code, (qty, gross, accrued, commission, net) in expected.items():
        row = rows[code]
        assert (row["quantity"], row["price"]) == (str(qty), "99.5045")
        assert (row["gross_amount"], row["accrued_interest"]) == (str(gross), str(accrued))
        assert (row["commission"], row["fees"], row["net_amount"]) == (
            str(commission),
            "0.00",
            str(net),
        )
    # The cash ladder and the money view: 2,000,000 less the net, all of it on the
    # settlement date.
    assert _cash(desk) == {
        "FUNDA": (D("1393453.59"), D("-606546.41"), D("1393453.59")),
        "FUNDB": (D("1595635.73"), D("-404364.27"), D("1595635.73")),
    }
    # The position's cost is the clean amount; its average cost stays a price per 100.
    position = Position.objects.get(account=desk["accounts"][0], security=bond)
    assert (position.quantity, position.cost_basis, position.avg_cost) == (
        D("600000"),
        D("597027.00"),
        D("99.5045"),
    )
    # The PM's order shows the same money.
    from rest_framework.test import APIClient

    from orders.models import Order

    api = APIClient()
    api.force_authenticate(desk["pm"])
    order = Order.objects.get(block=block, account=desk["accounts"][1])
    [shown] = api.get(f"/api/orders/{order.pk}/").json()["allocations"]
    assert (D(shown["gross_amount"]), D(shown["accrued_interest"])) == (
        D("398018.00"),
        D("6266.67"),
    )
    assert D(shown["net_amount"]) == D("404364.27")
    # The end-of-day trades report too: net is the clean gross plus the accrued interest.
    from reports.builders import trades_by_account

    columns, report_rows, _ = trades_by_account(TRADE_DATE)
    reported = {row[0]: dict(zip(columns, row, strict=True)) for row in report_rows}
    for code, (_qty, gross, accrued, commission, net) in expected.items():
        row = reported[code]
        assert (row["gross"], row["accrued_interest"], row["commission"], row["net"]) == (
            gross,
            accrued,
            commission,
            net,
        )
    assert booking_differences() == []


def test_a_future_block_books_contracts_times_the_multiplier(desk):
    """E-mini style future, multiplier 50: 5 contracts (3 for FUNDA, 2 for FUNDB), filled 2 at
    4500.25 and 3 at 4500.50: value 2 x 4500.25 + 3 x 4500.50 = 22,502.00 points, street money
    x 50 = 1,125,100.00; FUNDA 60% = 675,060.00, FUNDB 40% = 450,040.00. Commission 2 bp:
    135.012 -> 135.01 and 90.008 -> 90.01. A sell: the accounts receive clean less commission."""
    from allocation.models import Allocation
    from allocation.selectors import booking_differences
    from positions.models import Position

    future = factories.security(
        "ESZ6",
        price="4500",
        asset_class="OTHER",
        sector="Index",
        price_quotation="CONTRACT",
        contract_multiplier=D("50"),
    )
    for acct, held in zip(desk["accounts"], ("3", "2"), strict=True):
        _hold(acct, future, held)
    block = _trade(desk, future, ["3", "2"], [("2", "4500.25"), ("3", "4500.50")], side="SELL")
    got = {
        a.account.code: (a.gross_amount, a.accrued_interest, a.commission, a.net_amount)
        for a in Allocation.objects.filter(block=block).select_related("account")
    }
    assert got == {
        "FUNDA": (D("675060.00"), D("0.00"), D("135.01"), D("674924.99")),
        "FUNDB": (D("450040.00"), D("0.00"), D("90.01"), D("449949.99")),
    }
    rows = _file_rows(desk)
    assert (rows["FUNDA"]["gross_amount"], rows["FUNDA"]["net_amount"]) == (
        "675060.00",
        "674924.99",
    )
    assert (rows["FUNDB"]["gross_amount"], rows["FUNDB"]["net_amount"]) == (
        "450040.00",
        "449949.99",
    )
    cash = _cash(desk)
    assert cash["FUNDA"] == (D("2674924.99"), D("674924.99"), D("2674924.99"))
    assert cash["FUNDB"] == (D("2449949.99"), D("449949.99"), D("2449949.99"))
    # Sold at 4500.45 average what was opened at 4400: 100.45 x 50 x 3 realized, in money.
    position = Position.objects.get(account=desk["accounts"][0], security=future)
    assert (position.quantity, position.realized_pnl) == (D("0"), D("15060.00"))
    assert booking_differences() == []


def _hold(acct, security, quantity):
    """An opening position bought at 4400 (the custodian's start-of-day file)."""
    from positions.services import OpeningPosition, opening_balances_load

    opening_balances_load(
        positions=[
            OpeningPosition(account=acct, security=security, quantity=D(quantity), avg_cost=D(4400))
        ],
        cash=[],
    )
