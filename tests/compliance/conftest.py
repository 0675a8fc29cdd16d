"""Compliance test data: a firm with cash and holdings, rules made through the services, and
orders placed through order capture (orders.entry.order_create)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from tests.factories import build_refdata, security

AS_OF = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)


def hold(account, sec, quantity) -> None:
    from positions.models import Position

    Position.objects.update_or_create(
        account=account,
        security=sec,
        defaults={
            "quantity": Decimal(quantity),
            "opening_quantity": Decimal(quantity),
            "avg_cost": sec.reference_price or 0,
        },
    )


def fund(account, amount, currency: str = "USD") -> None:
    from positions.models import CashBalance

    values = {"settled": Decimal(amount), "opening_settled": Decimal(amount)}
    # The position keeper tracks projected cash too (NAV reads it): keep both equal here.
    if any(f.name == "projected" for f in CashBalance._meta.fields):
        values["projected"] = Decimal(amount)
    CashBalance.objects.update_or_create(account=account, currency=currency, defaults=values)


def make_rule(actor, kind: str, parameters=None, *, name: str | None = None, **kw):
    from compliance.services import rule_create

    return rule_create(
        actor=actor,
        as_of=AS_OF,
        name=name or f"{kind} {parameters or ''}",
        kind=kind,
        parameters=parameters or {},
        **kw,
    )


def place(pm, account, symbol: str, side: str, quantity, *, as_of=AS_OF, **kw):
    """One order through order capture: created, checked, staged if it passed."""
    from orders.entry import order_create

    for name in ("limit_price", "stop_price"):
        if kw.get(name) is not None:
            kw[name] = Decimal(str(kw[name]))
    kw.setdefault("order_type", "LIMIT" if kw.get("limit_price") is not None else "MARKET")
    order, _created = order_create(
        pm=pm,
        account=account.code,
        symbol=symbol,
        side=side,
        quantity=Decimal(quantity),
        as_of=as_of,
        **kw,
    )
    order.refresh_from_db()
    return order


def what_if(pm, account, symbol: str, side: str, quantity, *, as_of=AS_OF, **kw) -> dict:
    from compliance.services import compliance_ticket_check

    kw.setdefault("order_type", "LIMIT" if kw.get("limit_price") is not None else "MARKET")
    return compliance_ticket_check(
        actor=pm,
        as_of=as_of,
        account=account.code,
        symbol=symbol,
        side=side,
        quantity=str(quantity),
        **kw,
    )


def only_result(check: dict, kind: str) -> dict:
    matching = [r for r in check["results"] if r["kind"] == kind]
    assert len(matching) == 1, check
    return matching[0]


@dataclass
class Firm:
    ref: object
    tst: object  # price 100, Utilities, 1,000,000 shares outstanding, ADV 100,000
    util: object  # price 100, Utilities (another issuer)


@pytest.fixture
def firm(db) -> Firm:
    ref = build_refdata()
    tst = security(
        "TST", price="100.00", sector="Utilities", shares_outstanding="1000000", adv="100000"
    )
    util = security("UTIL", price="100.00", sector="Utilities")
    fund(ref.acct1, "1000000")
    fund(ref.acct2, "1000000")
    return Firm(ref=ref, tst=tst, util=util)


def basket(pm, lines, *, as_of=AS_OF, name: str = "test basket", kind: str = "UPLOAD"):
    """Create a basket through order capture: every line validated, then the orders created and
    checked as one program. lines: (account, symbol, side, quantity[, limit_price])."""
    from orders.basket_services import basket_orders_create
    from orders.services import OrderLookups, order_input_validate

    lookups = OrderLookups(
        account_codes=[line[0].code for line in lines], symbols=[line[1] for line in lines]
    )
    items = []
    for line in lines:
        acct, symbol, side, quantity = line[:4]
        limit = Decimal(str(line[4])) if len(line) > 4 else None
        data = {
            "account": acct.code,
            "symbol": symbol,
            "side": side,
            "quantity": Decimal(quantity),
            "order_type": "LIMIT" if limit is not None else "MARKET",
            "limit_price": limit,
        }
        items.append(order_input_validate(pm=pm, data=data, as_of=as_of, lookups=lookups))
    return basket_orders_create(pm=pm, items=items, name=name, kind=kind, as_of=as_of)
