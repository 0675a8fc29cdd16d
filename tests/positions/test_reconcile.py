"""A seeded random stream of fills, busts and corrections; the reconcile then finds nothing,
and the cash moved equals the trades' net money. Tampering is found."""

import random
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal as D

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from oms.money import money_round
from positions.models import CashBalance, Position
from positions.selectors import reconcile_differences
from positions.services import (
    OpeningCash,
    OpeningPosition,
    cash_adjust,
    opening_balances_load,
    position_fill_apply,
)
from tests import factories

pytestmark = pytest.mark.django_db

SIDES = ["BUY", "SELL", "SELL_SHORT", "BUY_TO_COVER"]
AS_OF = datetime(2025, 6, 2, 14, tzinfo=UTC)


def test_random_stream_of_5000_fills_busts_and_corrections_reconciles(refdata):
    rng = random.Random(20250602)
    accounts = [
        refdata.acct1,
        refdata.acct2,
        factories.account("ACCT3"),
        factories.account("ACCT4"),
    ]
    securities = [
        refdata.aapl,
        refdata.msft,
        refdata.xom,
        factories.security("SAP", price="120.00", currency="EUR"),
        factories.security("VOD", price="0.7312", currency="GBP"),
    ]
    opening_balances_load(
        positions=[OpeningPosition(accounts[0], refdata.aapl, D(1000), D("150.25"))],
        cash=[OpeningCash(a, "USD", D(1_000_000)) for a in accounts],
    )
    booked = []  # (account, security, side, qty, price, ref, settle) still standing
    net_money = defaultdict(lambda: D(0))  # (account_id, currency) -> expected cash moved
    quantity = defaultdict(lambda: D(0))
    quantity[(accounts[0].pk, refdata.aapl.pk)] = D(1000)
    trade_date = date(2025, 6, 2)
    counts = defaultdict(int)

    def book(a, s, side, qty, price, ref, settle):
        position_fill_apply(
            account_id=a.pk,
            security_id=s.pk,
            side=side,
            quantity=qty,
            price=price,
            trade_date=trade_date,
            settle_date=settle,
            fill_ref=ref,
            as_of=AS_OF,
        )
        sign = 1 if side in ("BUY", "BUY_TO_COVER") else -1
        sign = sign if qty > 0 else -sign
        quantity[(a.pk, s.pk)] += sign * abs(qty)
        # A fill booked without its money to the cent moves quantity x price rounded once to
        # the currency's minor unit (oms.money.money_round: the project's one rounding policy).
        net_money[(a.pk, s.currency)] -= sign * money_round(abs(qty) * price, s.currency)

    for i in range(5000):
        roll = rng.random()
        if booked and roll < 0.08:  # bust
            a, s, side, qty, price, ref, settle = booked.pop(rng.randrange(len(booked)))
            book(a, s, side, -qty, price, ref, settle)
            counts["bust"] += 1
        elif booked and roll < 0.14:  # correction: reverse, rebook at another price and size
            idx = rng.randrange(len(booked))
            a, s, side, qty, price, ref, settle = booked[idx]
            book(a, s, side, -qty, price, ref, settle)
            new_qty = D(rng.randint(1, 50) * 10)
            new_price = (price + D(rng.randint(-100, 100)) / 100).max(D("0.01"))
            book(a, s, side, new_qty, new_price, ref, settle)
            booked[idx] = (a, s, side, new_qty, new_price, ref, settle)
            counts["correction"] += 1
        else:
            a, s = rng.choice(accounts), rng.choice(securities)
            side = rng.choice(SIDES)
            qty = D(rng.randint(1, 500)) if rng.random() < 0.9 else D(rng.randint(1, 4000)) / 8
            price = (s.reference_price * D(rng.uniform(0.9, 1.1))).quantize(D("0.0001"))
            settle = trade_date + timedelta(days=rng.choice([0, 1, 2]))
            ref = f"exec:{i}:alloc:{a.pk}"
            book(a, s, side, qty, price, ref, settle)
            booked.append((a, s, side, qty, price, ref, settle))
            counts["fill"] += 1
            if rng.random() < 0.1:
                fee = -D(rng.randint(1, 2000)) / 100
                cash_adjust(
                    account_id=a.pk,
                    currency=s.currency,
                    amount=fee,
                    settle_date=settle,
                    reason="commission",
                    ref=ref,
                    as_of=AS_OF,
                )
                net_money[(a.pk, s.currency)] += fee

    assert counts["bust"] > 300 and counts["correction"] > 200 and counts["fill"] > 4000
    assert reconcile_differences() == []
    call_command("positions_reconcile")  # exits zero

    for (account_id, currency), expected in net_money.items():
        balance = CashBalance.objects.get(account_id=account_id, currency=currency)
        assert balance.projected - balance.opening_settled == expected.quantize(D("0.00000001"))
    for (account_id, security_id), expected in quantity.items():
        assert Position.objects.get(account_id=account_id, security_id=security_id).quantity == (
            expected
        )


def test_reconcile_lists_a_tampered_position_and_cash_and_exits_non_zero(refdata, capsys):
    position_fill_apply(
        account_id=refdata.acct1.pk,
        security_id=refdata.aapl.pk,
        side="BUY",
        quantity=D(10),
        price=D(100),
        trade_date=date(2025, 6, 2),
        settle_date=date(2025, 6, 3),
        fill_ref="t1",
        as_of=AS_OF,
    )
    call_command("positions_reconcile")
    Position.objects.filter(account=refdata.acct1).update(quantity=D(11))
    CashBalance.objects.filter(account=refdata.acct1).update(projected=D(5))
    with pytest.raises(CommandError) as excinfo:
        call_command("positions_reconcile")
    assert excinfo.value.returncode == 1
    out = capsys.readouterr().out
    assert "position ACCT1 AAPL quantity: expected 10" in out
    assert "cash ACCT1 USD projected: expected -1000" in out
