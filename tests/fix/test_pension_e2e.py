"""The classic pension-fund rebalance, end to end over FIX: 500 sells and 1 buy from the
model, 2 blocked by the restricted list, the other 499 blocked and routed to the broker
simulator, filled, allocated and finalised; the custodian's file for the day lists exactly
the executed trades with the right net money."""

from __future__ import annotations

import csv
import io
from decimal import ROUND_HALF_UP, Decimal

import pytest
from django.utils import timezone

from tests.compliance.conftest import basket, fund, make_rule
from tests.factories import account, security

from .conftest import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

CENT = Decimal("0.01")
SELL_PRICE = Decimal("50.00")
BUY_PRICE = Decimal("100.00")


def _money(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def test_pension_rebalance_through_the_broker_to_the_custodian_file(
    desk, broker, sim, gateway, settings
):
    from allocation.fees import charges_for
    from allocation.models import Allocation, SettlementFile
    from allocation.services import allocations_finalise_due, settlement_file_generate
    from compliance.models import RuleKind
    from compliance.services import restricted_entry_add
    from oms.models import Issuer, Security
    from orders.block_services import block_create, block_route
    from orders.lifecycle import OrderStatus
    from orders.models import Block
    from positions.models import Position

    broker.commission_bps = Decimal("2.5")
    broker.save(update_fields=["commission_bps"])
    now = timezone.now()
    pension = account("PENSION", desk.pm1)
    issuers = Issuer.objects.bulk_create([Issuer(name=f"Pension Issuer {i}") for i in range(500)])
    stocks = Security.objects.bulk_create(
        [
            Security(
                symbol=f"P{i:03d}",
                name=f"Pension Stock {i}",
                asset_class="EQUITY",
                exchange_mic="XNYS",
                currency="USD",
                sector="Industrials",
                issuer=issuers[i],
                shares_outstanding=Decimal("100000000"),
                avg_daily_volume=Decimal("1000000"),
                reference_price=SELL_PRICE,
                reference_price_at=now,
            )
            for i in range(500)
        ]
    )
    security("TST", price=str(BUY_PRICE), sector="Utilities", shares_outstanding="100000000")
    Position.objects.bulk_create(
        [
            Position(
                account=pension,
                security=s,
                quantity=Decimal(1000),
                avg_cost=SELL_PRICE,
                cost_basis=SELL_PRICE * 1000,
                opening_quantity=Decimal(1000),
                opening_avg_cost=SELL_PRICE,
            )
            for s in stocks
        ]
    )
    fund(pension, "1000")  # the buy is funded by the sells
    for kind in (RuleKind.RESTRICTED_LIST, RuleKind.NO_SHORT, RuleKind.CASH):
        make_rule(desk.compliance, kind, {})
    restricted_entry_add(
        actor=desk.compliance,
        as_of=now,
        security_id=stocks[17].pk,
        reason="pending merger",
        start_date=now.date(),
    )
    restricted_entry_add(
        actor=desk.compliance,
        as_of=now,
        issuer_id=issuers[342].pk,
        reason="board seat",
        start_date=now.date(),
    )

    lines = [(pension, s.symbol, "SELL", 200) for s in stocks]
    lines.append((pension, "TST", "BUY", 24000))
    model = basket(desk.pm1, lines, as_of=now, kind="REBALANCE", name="pension rebalance")
    orders = list(model.orders.select_related("security"))
    assert len(orders) == 501
    blocked = sorted(o.security.symbol for o in orders if o.status == OrderStatus.BLOCKED)
    assert blocked == ["P017", "P342"]
    staged = [o for o in orders if o.status == OrderStatus.STAGED]
    assert len(staged) == 499

    # The desk: one block per security (each order is its own security), routed to the broker.
    sim.app.config.prices.update({s.symbol: str(SELL_PRICE) for s in stocks})
    sim.app.config.prices["TST"] = str(BUY_PRICE)
    for order in staged:
        block = block_create(order_ids=[order.pk], actor=desk.trader, as_of=timezone.now())
        block_route(
            block_id=block.pk,
            broker_id=broker.pk,
            order_type="MARKET",
            limit_price=None,
            time_in_force="DAY",
            strategy="DMA",
            strategy_params=None,
            actor=desk.trader,
            as_of=timezone.now(),
        )
    wait_until(
        lambda: Block.objects.filter(status=Block.Status.FILLED).count() == 499,
        timeout=420,
        interval=0.5,
        what="all 499 blocks filled",
    )
    assert not Block.objects.exclude(status=Block.Status.FILLED).exists()

    # Nothing blocked was sent; every sent order was sent once.
    assert sum(sim.app.received.values()) == 499

    outcome = allocations_finalise_due(as_of=timezone.now(), actor=None)
    assert len(outcome.finalised) == 499 and outcome.failed == []
    trade_dates = set(
        Allocation.objects.filter(account=pension).values_list("trade_date", flat=True)
    )
    assert len(trade_dates) == 1
    trade_date = trade_dates.pop()
    file, created = settlement_file_generate(
        custodian_id=pension.custodian_id, trade_date=trade_date, as_of=timezone.now()
    )
    assert created and SettlementFile.objects.filter(pk=file.pk).exists()
    rows = list(csv.DictReader(io.StringIO(file.content)))
    assert len(rows) == 499
    by_symbol = {r["symbol"]: r for r in rows}
    assert set(by_symbol) == {o.security.symbol for o in staged}
    for symbol, row in by_symbol.items():
        assert row["account"] == "PENSION" and row["executing_broker"] == "SIMT"
        if symbol == "TST":
            gross = _money(24000 * BUY_PRICE)
            commission = _money(gross * Decimal("2.5") / 10000)
            expected = (
                row["side"],
                row["quantity"],
                gross,
                commission,
                Decimal(0),
                gross + commission,
            )
            assert expected[0] == "BUY" and expected[1] == "24000"
        else:
            gross = _money(200 * SELL_PRICE)
            commission = _money(gross * Decimal("2.5") / 10000)
            fees = charges_for(
                security=Security.objects.get(symbol=symbol),
                side="SELL",
                quantity=Decimal(200),
                gross=gross,
                trade_date=trade_date,
                broker=None,
            ).fees
            expected = (
                row["side"],
                row["quantity"],
                gross,
                commission,
                fees,
                gross - commission - fees,
            )
            assert expected[0] == "SELL" and expected[1] == "200"
        assert Decimal(row["price"]) == (BUY_PRICE if symbol == "TST" else SELL_PRICE)
        assert (
            Decimal(row["gross_amount"]),
            Decimal(row["commission"]),
            Decimal(row["fees"]),
            Decimal(row["net_amount"]),
        ) == expected[2:]

    # Positions moved by exactly the executed trades.
    held = dict(
        Position.objects.filter(account=pension).values_list("security__symbol", "quantity")
    )
    assert held["P017"] == held["P342"] == Decimal(1000)
    assert held["P000"] == held["P499"] == Decimal(800)
    assert held["TST"] == Decimal(24000)
