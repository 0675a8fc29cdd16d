"""Property tests of the money view: for random streams of fills, busts, cash adjustments and
open orders, the snapshot's cash is the ledger plus the fills plus the commitments; and a
what-if check gives the verdict the real submission then gets."""

from __future__ import annotations

import itertools
from datetime import timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compliance.models import RuleKind
from orders.models import Order
from positions.selectors import portfolio_snapshot
from positions.services import cash_adjust, position_fill_apply
from tests.factories import account

from .conftest import AS_OF, fund, hold, make_rule, place, what_if

pytestmark = pytest.mark.django_db
PROPERTY = settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
PRICES = st.sampled_from(["99.5", "100", "100.25", "101"]).map(Decimal)
QUANTITIES = st.integers(1, 50).map(lambda n: Decimal(n * 10))
EVENTS = st.lists(
    st.one_of(
        st.tuples(st.just("fill"), st.sampled_from(["BUY", "SELL"]), QUANTITIES, PRICES,
                  st.integers(1, 3)),
        st.tuples(st.just("bust"), st.integers(0, 30)),
        st.tuples(st.just("adjust"), st.integers(-5000, 5000).map(Decimal), st.integers(1, 3)),
        st.tuples(st.just("order"), st.sampled_from(["BUY", "SELL"]), QUANTITIES, PRICES),
    ),
    max_size=25,
)  # fmt: skip
_accounts = itertools.count()


@PROPERTY
@given(opening=st.integers(0, 2_000_000).map(Decimal), events=EVENTS)
def test_snapshot_cash_is_the_ledger_plus_fills_plus_commitments(firm, opening, events):
    ref = firm.ref
    # A fresh account per example: examples share the test's transaction.
    acct = account(f"PROP{next(_accounts)}", ref.pm1)
    fund(acct, opening)
    projected, commitment, proceeds = opening, Decimal(0), Decimal(0)
    booked: list[tuple[str, str, Decimal, Decimal, int]] = []
    for n, event in enumerate(events):
        kind = event[0]
        if kind == "fill":
            _k, side, qty, price, days = event
            position_fill_apply(
                account_id=acct.pk, security_id=firm.tst.pk, side=side, quantity=qty,
                price=price, trade_date=AS_OF.date(),
                settle_date=AS_OF.date() + timedelta(days=days), fill_ref=f"p{n}", as_of=AS_OF,
            )  # fmt: skip
            booked.append((f"p{n}", side, qty, price, days))
            projected += qty * price if side == "SELL" else -qty * price
        elif kind == "bust" and booked:
            ref_, side, qty, price, days = booked.pop(event[1] % len(booked))
            position_fill_apply(
                account_id=acct.pk, security_id=firm.tst.pk, side=side, quantity=-qty,
                price=price, trade_date=AS_OF.date(),
                settle_date=AS_OF.date() + timedelta(days=days), fill_ref=ref_, as_of=AS_OF,
            )  # fmt: skip
            projected -= qty * price if side == "SELL" else -qty * price
        elif kind == "adjust" and event[1]:
            cash_adjust(
                account_id=acct.pk, currency="USD", amount=event[1],
                settle_date=AS_OF.date() + timedelta(days=event[2]), reason="prop",
                ref=f"a{n}", as_of=AS_OF,
            )  # fmt: skip
            projected += event[1]
        elif kind == "order":
            _k, side, qty, price = event
            Order.objects.create(
                account=acct, security=firm.tst, side=side, quantity=qty, order_type="LIMIT",
                limit_price=price, status="STAGED", pm=ref.pm1, received_at=AS_OF,
                leaves_qty=qty,
            )  # fmt: skip
            if side == "BUY":
                commitment += qty * price
            else:
                proceeds += qty * price
    snap = portfolio_snapshot(account_ids=[acct.pk], as_of=AS_OF).accounts[acct.pk]
    assert snap.cash_projected == projected
    assert snap.buy_commitment == commitment
    assert snap.sell_proceeds == proceeds
    assert snap.cash_available == projected - commitment
    # Everything settles after as_of: the ladder starts from the opening balance and ends at
    # the projected figure.
    assert snap.cash_settled == opening
    if snap.cash_by_settle_date:
        assert snap.cash_by_settle_date[max(snap.cash_by_settle_date)] == projected


ORDERS = st.tuples(
    st.sampled_from(["ACCT1", "ACCT2"]),
    st.sampled_from(["TST", "UTIL"]),
    st.sampled_from(["BUY", "SELL"]),
    st.integers(1, 120).map(lambda n: n * 100),
    st.one_of(st.none(), st.sampled_from(["95", "100", "104", "111"])),
)


@PROPERTY
@given(orders=st.lists(ORDERS, min_size=1, max_size=6))
def test_a_what_if_gets_the_verdict_the_submission_gets(firm, orders):
    ref = firm.ref
    if not hasattr(firm, "ruled"):
        firm.ruled = True
        hold(ref.acct1, firm.tst, 3000)
        hold(ref.acct2, firm.util, 2000)
        make_rule(ref.compliance, RuleKind.CASH)
        make_rule(ref.compliance, RuleKind.NO_SHORT)
        make_rule(ref.compliance, RuleKind.ISSUER_CONCENTRATION, {"max_pct": "30"})
        make_rule(ref.compliance, RuleKind.SECTOR_CONCENTRATION, {"max_pct": "45"})
        make_rule(ref.compliance, RuleKind.ORDER_SIZE, {"max_notional": "900000"})
        make_rule(ref.compliance, RuleKind.PRICE_BAND, {"max_deviation_pct": "10"})
        make_rule(ref.compliance, RuleKind.FIRM_OWNERSHIP, {"max_pct": "1"})
    accounts = {"ACCT1": ref.acct1, "ACCT2": ref.acct2}
    for code, symbol, side, qty, limit in orders:
        acct = accounts[code]
        kw = {"limit_price": limit} if limit else {}
        expected = what_if(ref.pm1 if code == "ACCT1" else ref.pm2, acct, symbol, side, qty, **kw)
        order = place(ref.pm1 if code == "ACCT1" else ref.pm2, acct, symbol, side, qty, **kw)
        assert order.compliance_status == expected["verdict"], (order.pk, expected)
