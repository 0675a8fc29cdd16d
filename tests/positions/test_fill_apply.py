"""position_fill_apply on hand-computed cases: average cost, realized P&L, shorts, cash, busts."""

from datetime import UTC, date, datetime
from decimal import Decimal as D

import pytest

from oms.errors import Conflict, DomainError
from positions.models import CashBalance, CashMovement, Position, PositionFill
from positions.services import cash_adjust, cash_settle_due, position_fill_apply

pytestmark = pytest.mark.django_db

T = date(2025, 3, 3)
S = date(2025, 3, 4)
AS_OF = datetime(2025, 3, 3, 15, 0, tzinfo=UTC)


def fill(acct, sec, side, qty, price, ref, *, settle=S):
    position_fill_apply(
        account_id=acct.pk,
        security_id=sec.pk,
        side=side,
        quantity=D(qty),
        price=D(price),
        trade_date=T,
        settle_date=settle,
        fill_ref=ref,
        as_of=AS_OF,
    )


def pos(acct, sec) -> Position:
    return Position.objects.get(account=acct, security=sec)


def test_buy_partial_sell_through_zero_into_short_then_cover(refdata):
    a, s = refdata.acct1, refdata.aapl
    fill(a, s, "BUY", "100", "10", "f1")
    fill(a, s, "BUY", "100", "12", "f2")
    p = pos(a, s)
    assert (p.quantity, p.avg_cost, p.cost_basis, p.realized_pnl) == (D(200), D(11), D(2200), 0)

    fill(a, s, "SELL", "50", "15", "f3")  # 50 * (15 - 11)
    p = pos(a, s)
    assert (p.quantity, p.avg_cost, p.realized_pnl) == (D(150), D(11), D(200))

    fill(a, s, "SELL_SHORT", "200", "9", "f4")  # closes 150 at 9: -300; opens 50 short at 9
    p = pos(a, s)
    assert (p.quantity, p.avg_cost, p.cost_basis, p.realized_pnl) == (
        D(-50),
        D(9),
        D(-450),
        D(-100),
    )

    fill(a, s, "SELL_SHORT", "50", "11", "f5")  # short adds: avg (50*9 + 50*11) / 100 = 10
    p = pos(a, s)
    assert (p.quantity, p.avg_cost, p.cost_basis) == (D(-100), D(10), D(-1000))

    fill(a, s, "BUY_TO_COVER", "40", "8", "f6")  # short profit 40 * (10 - 8)
    p = pos(a, s)
    assert (p.quantity, p.avg_cost, p.realized_pnl) == (D(-60), D(10), D(-20))

    fill(a, s, "BUY_TO_COVER", "60", "12", "f7")  # short loss 60 * (10 - 12)
    p = pos(a, s)
    assert (p.quantity, p.avg_cost, p.cost_basis, p.realized_pnl) == (D(0), D(0), D(0), D(-140))

    # Cash: -1000 -1200 +750 +1800 +550 -320 -720, all projected on S, nothing settled yet.
    cash = CashBalance.objects.get(account=a, currency="USD")
    assert cash.projected == D(-140)
    assert cash.settled == 0


def test_buy_through_zero_from_short_resets_average_cost(refdata):
    a, s = refdata.acct1, refdata.msft
    fill(a, s, "SELL_SHORT", "10", "50", "s1")
    fill(a, s, "BUY", "25", "40", "s2")  # covers 10: 10 * (50 - 40) = 100; 15 long at 40
    p = pos(a, s)
    assert (p.quantity, p.avg_cost, p.cost_basis, p.realized_pnl) == (D(15), D(40), D(600), D(100))


def test_fractional_average_cost_is_rounded_to_eight_places(refdata):
    a, s = refdata.acct1, refdata.msft
    fill(a, s, "BUY", "3", "10", "r1")
    fill(a, s, "BUY", "0.5", "11", "r2")  # 35.5 / 3.5
    assert pos(a, s).avg_cost == D("10.14285714")


def test_bust_restores_the_position_exactly_even_after_later_fills(refdata):
    a, s = refdata.acct1, refdata.aapl
    fill(a, s, "BUY", "100", "10", "b1")
    fill(a, s, "BUY", "100", "20", "b2")
    fill(a, s, "SELL", "50", "30", "b3")  # against avg 15: +750
    fill(a, s, "BUY", "-100", "20", "b2")  # bust b2: as if only b1 and b3 happened
    p = pos(a, s)
    assert (p.quantity, p.avg_cost, p.realized_pnl) == (D(50), D(10), D(1000))
    reversal = PositionFill.objects.get(fill_ref="b2", seq=2)
    assert reversal.quantity == D(-100) and reversal.reverses.seq == 1
    cash = CashBalance.objects.get(account=a, currency="USD")
    assert cash.projected == D(-1000 + 1500)

    # A correction: rebook at the right price under the same reference.
    fill(a, s, "BUY", "100", "19", "b2")
    p = pos(a, s)
    assert (p.quantity, p.avg_cost) == (D(150), D("16"))  # (50*10 + 100*19) / 150
    assert CashBalance.objects.get(account=a, currency="USD").projected == D(-1000 + 1500 - 1900)


def test_reversing_what_was_never_booked_is_refused(refdata):
    a, s = refdata.acct1, refdata.aapl
    fill(a, s, "BUY", "100", "10", "x1")
    with pytest.raises(Conflict):
        fill(a, s, "BUY", "-100", "11", "x1")  # wrong price
    with pytest.raises(Conflict):
        fill(a, s, "BUY", "-50", "10", "x1")  # wrong size
    fill(a, s, "BUY", "-100", "10", "x1")
    with pytest.raises(Conflict):
        fill(a, s, "BUY", "-100", "10", "x1")  # twice
    assert pos(a, s).quantity == 0


def test_bad_input_is_refused(refdata):
    a, s = refdata.acct1, refdata.aapl
    with pytest.raises(DomainError):
        fill(a, s, "HOLD", "1", "10", "z1")
    with pytest.raises(DomainError):
        fill(a, s, "BUY", "1", "0", "z2")
    with pytest.raises(DomainError):
        position_fill_apply(
            account_id=a.pk,
            security_id=s.pk,
            side="BUY",
            quantity=D(1),
            price=D(1),
            trade_date=S,
            settle_date=T,
            fill_ref="z3",
            as_of=AS_OF,
        )
    assert not PositionFill.objects.exists()


def test_cash_settles_on_its_settlement_date(refdata):
    a, s = refdata.acct1, refdata.aapl
    fill(a, s, "BUY", "10", "100", "c1")
    cash_adjust(
        account_id=a.pk,
        currency="USD",
        amount=D("-5.25"),
        settle_date=S,
        reason="commission",
        ref="c1",
        as_of=AS_OF,
    )
    cash = CashBalance.objects.get(account=a, currency="USD")
    assert (cash.settled, cash.projected) == (D(0), D("-1005.25"))
    assert cash_settle_due(as_of=AS_OF) == 0
    assert cash_settle_due(as_of=datetime(2025, 3, 4, 6, tzinfo=UTC)) == 2
    cash.refresh_from_db()
    assert (cash.settled, cash.projected) == (D("-1005.25"), D("-1005.25"))
    assert not CashMovement.objects.filter(is_settled=False).exists()


def test_same_day_settlement_is_settled_at_once(refdata):
    a, s = refdata.acct1, refdata.aapl
    fill(a, s, "SELL_SHORT", "10", "100", "d1", settle=T)
    cash = CashBalance.objects.get(account=a, currency="USD")
    assert (cash.settled, cash.projected) == (D(1000), D(1000))
