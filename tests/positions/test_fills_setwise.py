"""The set-wise writers leave exactly what the one-at-a-time calls leave: position_fills_apply
with reversals (a booking day taken back), alone or followed by the bookings that book it
again, against position_fill_apply per booking, and cash_adjust_many against cash_adjust per
adjustment. Two identical worlds get the same calls, one each way; every row is compared."""

from datetime import UTC, date, datetime
from decimal import Decimal as D

import pytest

from oms.errors import Conflict
from positions.models import CashBalance, CashMovement, Position, PositionFill
from positions.services import (
    CashAdjustment,
    FillBooking,
    cash_adjust,
    cash_adjust_many,
    position_fill_apply,
    position_fills_apply,
)
from tests import factories

pytestmark = pytest.mark.django_db

T = date(2025, 3, 3)
S = date(2025, 3, 4)
AS_OF = datetime(2025, 3, 4, 15, 0, tzinfo=UTC)  # the settlement date has come: settled cash


def _world(tag: str):
    pm = factories.user(f"pm{tag}", "PM")
    accounts = [factories.account(f"{tag}A{i}", pm) for i in range(3)]
    securities = [factories.security(f"{tag}S{i}") for i in range(2)]
    # One position starts from an opening balance (a start-of-day load): the replay starts
    # there and skips the ledger rows before it.
    position_fill_apply(
        account_id=accounts[2].pk,
        security_id=securities[0].pk,
        side="BUY",
        quantity=D("40"),
        price=D("7.5"),
        trade_date=T,
        settle_date=S,
        fill_ref="old",
        as_of=AS_OF,
    )
    Position.objects.filter(account=accounts[2], security=securities[0]).update(
        opening_quantity=D("40"),
        opening_avg_cost=D("7.5"),
        opening_ledger_id=PositionFill.objects.latest("id").pk,
    )
    return accounts, securities


def _booking(account, security, side, qty, price, ref, *, settle=S, net=None):
    return FillBooking(
        account_id=account.pk,
        security_id=security.pk,
        side=side,
        quantity=D(qty),
        price=D(price),
        trade_date=T,
        settle_date=settle,
        fill_ref=ref,
        net_money=net,
    )


def _script(accounts, securities):
    """Bookings (several under one reference, a sell through zero, cash to the cent, a
    later settlement), then the reversals of some of them, latest first or not."""
    a, b, c = accounts
    s, t = securities
    bookings = [
        _booking(a, s, "BUY", "100", "10.01", "B1:O1"),
        _booking(a, s, "BUY", "100", "10.01", "B1:O1"),  # twice the same size and price
        _booking(a, s, "BUY", "33", "9.87654321", "B1:O1", net=D("-325.93")),
        _booking(b, s, "SELL_SHORT", "50", "11", "B2:O2"),
        _booking(b, s, "BUY", "80", "10.5", "B2:O3"),  # through zero into a long
        _booking(b, t, "BUY", "7", "101.25", "B3:O4", settle=date(2025, 3, 6)),
        _booking(c, s, "BUY", "60", "8", "B1:O5"),  # on top of the opening balance
        _booking(c, s, "SELL", "30", "9", "B1:O6"),
    ]
    reversals = [
        _booking(a, s, "BUY", "-100", "10.01", "B1:O1"),
        _booking(b, s, "SELL_SHORT", "-50", "11", "B2:O2"),
        _booking(a, s, "BUY", "-33", "9.87654321", "B1:O1"),
        _booking(b, t, "BUY", "-7", "101.25", "B3:O4", settle=date(2025, 3, 6)),
        _booking(c, s, "BUY", "-60", "8", "B1:O5"),
        _booking(a, s, "BUY", "-100", "10.01", "B1:O1"),
    ]
    return bookings, reversals


def _one_by_one(bookings):
    for bk in bookings:
        position_fill_apply(
            account_id=bk.account_id,
            security_id=bk.security_id,
            side=bk.side,
            quantity=bk.quantity,
            price=bk.price,
            trade_date=bk.trade_date,
            settle_date=bk.settle_date,
            fill_ref=bk.fill_ref,
            as_of=AS_OF,
            net_money=bk.net_money,
        )


def _state(accounts, securities):
    """Every row the writers touch, in booking order, with the worlds' own ids taken out."""
    account_no = {acct.pk: i for i, acct in enumerate(accounts)}
    security_no = {sec.pk: i for i, sec in enumerate(securities)}
    fills = list(PositionFill.objects.filter(account__in=accounts).order_by("id"))
    fill_no = {f.pk: i for i, f in enumerate(fills)}
    return {
        "positions": sorted(
            (
                account_no[p.account_id],
                security_no[p.security_id],
                p.quantity,
                p.avg_cost,
                p.cost_basis,
                p.realized_pnl,
            )
            for p in Position.objects.filter(account__in=accounts)
        ),
        "fills": [
            (
                account_no[f.account_id],
                security_no[f.security_id],
                f.fill_ref,
                f.seq,
                f.side,
                f.quantity,
                f.price,
                f.trade_date,
                f.settle_date,
                f.currency,
                f.net_money,
                fill_no.get(f.reverses_id),
            )
            for f in fills
        ],
        "movements": [
            (
                account_no[m.account_id],
                m.currency,
                m.amount,
                m.settle_date,
                m.kind,
                m.ref,
                m.reason,
                fill_no.get(m.fill_id),
                m.is_settled,
            )
            for m in CashMovement.objects.filter(account__in=accounts).order_by("id")
        ],
        "balances": sorted(
            (account_no[cb.account_id], cb.currency, cb.settled, cb.projected)
            for cb in CashBalance.objects.filter(account__in=accounts)
        ),
    }


def test_a_batch_of_reversals_leaves_what_reversing_one_by_one_leaves(refdata):
    worlds = [_world("X"), _world("Y")]
    (x_bookings, x_reversals), (y_bookings, y_reversals) = (_script(*w) for w in worlds)
    position_fills_apply(bookings=x_bookings, as_of=AS_OF)
    position_fills_apply(bookings=y_bookings, as_of=AS_OF)

    position_fills_apply(bookings=x_reversals, as_of=AS_OF)  # set-wise
    _one_by_one(y_reversals)

    x, y = (_state(*w) for w in worlds)
    assert x == y
    assert len(x["fills"]) == 1 + 8 + 6
    # Every booking of the first account reversed: nothing is left of it, exactly.
    assert x["positions"][0][2:] == (0, 0, 0, 0)
    # The third: its opening balance (40 at 7.5), less 30 sold at 9 (45 realized).
    assert x["positions"][3][2:] == (D(10), D("7.5"), D(75), D(45))


def test_reversals_then_bookings_in_one_call_leave_what_one_by_one_leaves(refdata):
    worlds = [_world("R"), _world("W")]
    scripts = [_script(*w) for w in worlds]
    for (accounts, securities), (bookings, reversals) in zip(worlds, scripts, strict=True):
        position_fills_apply(bookings=bookings, as_of=AS_OF)
        a, b, c = accounts
        s, t = securities
        # The day booked again at its average: the same references (their seq goes on),
        # and a final booking of its own.
        reversals += [
            _booking(a, s, "BUY", "233", "10.00", "B1:O1"),
            _booking(b, s, "BUY", "80", "10.5", "B2:O3"),
            _booking(b, s, "SELL_SHORT", "50", "10.9", "A2:v2", net=D("545.01")),
            _booking(c, t, "BUY", "5", "99", "A3:v2"),
        ]
    position_fills_apply(bookings=scripts[0][1], as_of=AS_OF)  # set-wise, one call
    _one_by_one(scripts[1][1])

    x, y = (_state(*w) for w in worlds)
    assert x == y
    assert len(x["fills"]) == 1 + 8 + 6 + 4
    assert [m[4] for m in x["movements"][-10:]] == ["TRADE_REVERSAL"] * 6 + ["TRADE"] * 4


def test_a_reversal_with_nothing_left_to_take_back_is_refused_and_writes_nothing(refdata):
    accounts, securities = _world("Z")
    bookings, _ = _script(accounts, securities)
    position_fills_apply(bookings=bookings, as_of=AS_OF)
    before = _state(accounts, securities)
    a, s = accounts[0], securities[0]
    three = [_booking(a, s, "BUY", "-100", "10.01", "B1:O1")] * 3  # two were booked
    with pytest.raises(Conflict) as refused:
        position_fills_apply(bookings=three, as_of=AS_OF)
    assert refused.value.code == "nothing_to_reverse"
    assert _state(accounts, securities) == before


def test_cash_adjust_many_leaves_what_cash_adjust_one_by_one_leaves(refdata):
    worlds = [_world("P"), _world("Q")]

    def adjustments(accounts):
        a, b, _ = accounts
        return [
            CashAdjustment(a.pk, "USD", D("-12.34"), S, "commission, block 1", "allocation:1"),
            CashAdjustment(b.pk, "USD", D("0"), S, "nothing", "allocation:2"),  # skipped
            CashAdjustment(b.pk, "EUR", D("-0.01"), date(2025, 3, 7), "fees", "allocation:3"),
            CashAdjustment(a.pk, "USD", D("12.34"), S, "reverses allocation 1", "a:1:reversal"),
        ]

    cash_adjust_many(adjustments=adjustments(worlds[0][0]), as_of=AS_OF)
    for adj in adjustments(worlds[1][0]):
        cash_adjust(
            account_id=adj.account_id,
            currency=adj.currency,
            amount=adj.amount,
            settle_date=adj.settle_date,
            reason=adj.reason,
            ref=adj.ref,
            as_of=AS_OF,
        )
    x, y = (_state(*w) for w in worlds)
    assert x == y
    assert len(x["movements"]) - 1 == 3  # the opening world's own booking, then three
