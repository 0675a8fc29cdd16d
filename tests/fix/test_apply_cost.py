"""What one execution report costs the database: a fill is applied with a fixed number of
statements whatever the number of orders in the block (pinned, so it cannot silently grow
back), and the figures it books are the ones the per-order path booked."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.fix.conftest import routed_block

pytestmark = pytest.mark.django_db(transaction=True)

# BEGIN; the block (found and locked); its FixOrder (with the ExecID check); savepoint; the
# street fill's plan, replay check and trading day (locked); the street fill and the day's
# totals; the booking pass (plan, days, orders, shares, all locked); orders and their events;
# positions, the ledger's seq check, ledger and positions; cash rows, movements and balances;
# the bookings and the shares; release; the execution; the block's cum from the ledger; the
# block; COMMIT; and the blotter's read after commit. (It was 25 with the per-order plan of
# round 1, which could not follow an amended order or a second day; 44 before that.)
STATEMENTS_PER_FILL = 31
# A block of several orders writes its order events by COPY (oms.bulk_rows.rows_insert), which
# first takes the rows' keys: one statement more, the same for three orders or six. Its ledger
# fills and cash movements go by one INSERT each below 20 rows (from 20 on by COPY too: one
# statement more each).
COPY_KEYS = 1
# The audit chain's own: its lock, its head, and the rows (audit.services decides how).
AUDIT_STATEMENTS_AT_MOST = 4


def _fill(broker, block, exec_id: str, qty: str, px: str, cum: str):
    from django.utils import timezone

    from fixgateway.executions import execution_report_apply
    from fixgateway.reports import InboundReport

    report = InboundReport(
        msg_type="8",
        cl_ord_id=block.fix_order.cl_ord_id,
        exec_id=exec_id,
        exec_type="F",
        ord_status="1",
        last_qty=Decimal(qty),
        last_px=Decimal(px),
        cum_qty=Decimal(cum),
        avg_px=Decimal(px),
    )
    with CaptureQueriesContext(connection) as ctx:
        result = execution_report_apply(broker=broker, report=report, as_of=timezone.now())
    assert result.outcome == "applied", result
    sql = [q["sql"] for q in ctx.captured_queries]
    audit = [q for q in sql if "audit_auditevent" in q or "pg_advisory_xact_lock" in q]
    assert len(audit) <= AUDIT_STATEMENTS_AT_MOST, audit
    return len(sql) - len(audit)


@pytest.mark.parametrize(
    "quantities",
    [("900",), ("300", "600", "900"), ("300", "600", "900", "300", "600", "900")],
    ids=["1", "3", "6"],
)
def test_a_fill_costs_the_same_statements_for_one_order_or_three(desk, broker, quantities):
    from orders.models import Block, Order
    from positions.models import CashBalance, Position, PositionFill

    block = Block.objects.select_related("fix_order").get(
        pk=routed_block(desk, broker, *quantities).pk
    )
    total = sum(Decimal(q) for q in quantities)
    versions = dict(Order.objects.filter(block=block).values_list("pk", "version"))
    first = _fill(broker, block, "E1", str(total / 3), "10.00", str(total / 3))
    second = _fill(broker, block, "E2", str(total / 3), "13.00", str(2 * total / 3))
    # The first fill of an account also creates its position and cash rows (insert, lock), and
    # the block's first fill its trading day and its orders' shares.
    expected = STATEMENTS_PER_FILL + (COPY_KEYS if len(quantities) > 1 else 0)
    assert first <= expected + 6
    assert second == expected

    block.refresh_from_db()
    assert block.cum_qty == 2 * total / 3
    assert block.avg_price == Decimal("11.5")
    assert block.status == "PARTIALLY_FILLED"
    for order in Order.objects.filter(block=block):
        assert order.cum_qty == 2 * order.quantity / 3
        assert order.leaves_qty == order.quantity - order.cum_qty
        assert order.avg_price == Decimal("11.5")
        assert order.status == "PARTIALLY_FILLED"
        assert order.version == versions[order.pk] + 2
    accounts = {o.account_id for o in Order.objects.filter(block=block)}
    for account_id in accounts:
        held = sum(o.cum_qty for o in Order.objects.filter(block=block, account_id=account_id))
        position = Position.objects.get(account_id=account_id, security=block.security)
        assert position.quantity == held
        assert position.avg_cost == Decimal("11.5")
        fills = PositionFill.objects.filter(account_id=account_id, security=block.security)
        assert sum(f.net_money for f in fills) == -held * Decimal("11.5")
        cash = CashBalance.objects.get(account_id=account_id, currency="USD")
        assert cash.projected - cash.opening_settled == -held * Decimal("11.5")
