"""Execution reports applied in batches (inbound_batch_apply: runs of plain trades recorded
set-wise and each block booked once per run, everything else one by one) reach the same
outcomes as applying them one at a time: the same executions, quarantine and block figures,
and books that reconcile to zero difference against them. (The split of a run across a
block's orders is made once for the run, so it may place a lot elsewhere than fill by fill
would; both are pro rata within a lot.) Two identical worlds get the same reports."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tests import factories

pytestmark = pytest.mark.django_db(transaction=True)


@dataclass
class World:
    tag: str
    broker: object
    blocks: list
    accounts: list
    securities: list


def _world(tag: str) -> World:
    from fixgateway.models import Broker
    from oms import roles
    from orders.block_services import block_create, block_route
    from orders.lifecycle import OrderStatus

    broker = Broker.objects.create(
        code=f"B{tag}", name=tag, port=1, sender_comp_id=f"O{tag}", target_comp_id=f"T{tag}"
    )
    pm = factories.user(f"pm{tag}", roles.PM)
    trader = factories.user(f"tr{tag}", roles.TRADER)
    accounts = [factories.account(f"{tag}A{i}", pm) for i in range(3)]
    securities = [
        factories.security(f"{tag}S0", price="10.00"),
        factories.security(f"{tag}S1", price="20.00"),
    ]
    now = timezone.now()
    blocks = []
    # Block 0: three orders of one security (uneven, so the split rounds); block 1: two
    # orders of the other; block 2: one order, the first security again (same positions).
    for security, quantities in (
        (securities[0], ("300", "500", "200")),
        (securities[1], ("400", "600")),
        (securities[0], ("100",)),
    ):
        ids = [
            factories.order(
                accounts[i % 3],
                security,
                pm,
                quantity=q,
                status=OrderStatus.STAGED,
                received_at=now,
            ).pk
            for i, q in enumerate(quantities)
        ]
        block = block_create(order_ids=ids, actor=trader, as_of=now)
        blocks.append(
            block_route(
                block_id=block.pk, broker_id=broker.pk, order_type="MARKET", actor=trader, as_of=now
            )
        )
    return World(tag, broker, blocks, accounts, securities)


def _reports(world: World) -> list:
    """A burst as a broker sends it: acks, fills on three blocks interleaved, a duplicate, a
    conflicting ExecID, an overfill, a bust, a correction, an unknown ClOrdID, more fills."""
    from fixgateway.models import FixOrder
    from fixgateway.reports import InboundReport

    cl = [FixOrder.objects.get(block=b).cl_ord_id for b in world.blocks]

    def report(b: int, exec_id: str, exec_type: str = "F", qty="0", px="0", **extra):
        return InboundReport(
            msg_type="8",
            cl_ord_id=cl[b] if b >= 0 else "NOPE-1",
            order_id=f"BRK-{b}",
            exec_id=exec_id,
            exec_type=exec_type,
            ord_status="1",
            last_qty=Decimal(qty),
            last_px=Decimal(px),
            **extra,
        )

    return [
        report(0, "N0", "0"),
        report(1, "N1", "0"),
        report(0, "T1", qty="101", px="10.01"),
        report(1, "T2", qty="250", px="20.10"),
        report(0, "T3", qty="99", px="10.03"),
        report(2, "T4", qty="30", px="10.02"),
        report(0, "T3", qty="99", px="10.03"),  # duplicate: changes nothing
        report(0, "T5", qty="7", px="10.05"),
        report(1, "T2", qty="1", px="20.10"),  # same ExecID, other content: quarantined
        report(2, "T6", qty="71", px="10.02"),  # 30 + 71 > 100: overfill, quarantined
        report(1, "T7", qty="333", px="20.05"),
        report(0, "B1", "H", exec_ref_id="T1"),  # bust of T1
        report(0, "T8", qty="400", px="10.00"),
        report(1, "C1", "G", qty="250", px="20.00", exec_ref_id="T2"),  # correct T2's price
        report(-1, "T9", qty="5", px="10.00"),  # unknown ClOrdID
        report(2, "T10", qty="70", px="10.02"),
        report(1, "T11", qty="17", px="20.07"),
        report(0, "T12", qty="494", px="10.04"),  # fills block 0 exactly
        report(1, "T13", "F", qty="0", px="20.00"),  # a trade without quantity: quarantined
    ]


def _snapshot(world: World) -> dict:
    """What must not depend on batching, with ids replaced by their place in the world."""
    from fixgateway.models import Execution, Quarantine
    from orders.models import Block, Order

    def money(value):
        return None if value is None else f"{value.normalize():f}"

    blocks = [b.pk for b in world.blocks]
    return {
        "blocks": [
            (b.status, money(b.cum_qty), money(b.avg_price))
            for b in Block.objects.filter(pk__in=blocks).order_by("pk")
        ],
        "filled_per_block": [
            money(sum(o.cum_qty for o in Order.objects.filter(block_id=pk))) for pk in blocks
        ],
        "executions": [
            (e.exec_id, e.exec_type, e.state, money(e.last_qty), money(e.last_px))
            for e in Execution.objects.filter(broker=world.broker).order_by("pk")
        ],
        "quarantine": sorted(
            (q.reason, q.exec_id) for q in Quarantine.objects.filter(broker=world.broker)
        ),
    }


def test_a_batch_reaches_what_one_report_at_a_time_reaches(desk):
    from allocation.selectors import booking_differences
    from fixgateway.executions import execution_report_apply
    from fixgateway.inbound import inbound_batch_apply
    from fixgateway.selectors import executed_by_block
    from positions.selectors import reconcile_differences

    one_by_one, batched = _world("W1"), _world("W2")
    as_of = timezone.now()
    with CaptureQueriesContext(connection) as single_ctx:
        singles = [
            execution_report_apply(broker=one_by_one.broker, report=r, as_of=as_of).outcome
            for r in _reports(one_by_one)
        ]
    with CaptureQueriesContext(connection) as ctx:
        results = inbound_batch_apply(broker=batched.broker, reports=_reports(batched), as_of=as_of)
    assert [r.outcome for r in results] == singles
    assert singles.count("applied") == 14  # 2 acks, 10 trades, a bust and a correction
    assert singles.count("duplicate") == 1
    expected, got = _snapshot(one_by_one), _snapshot(batched)
    for table in expected:
        assert got[table] == expected[table], table
    # The world really moved: block 0 filled exactly, and every book agrees with the street.
    assert expected["blocks"][0] == ("FILLED", "1000", got["blocks"][0][2])
    assert booking_differences(executed_by_block=executed_by_block()) == []
    assert reconcile_differences() == []
    commits = [q for q in ctx.captured_queries if q["sql"].upper().startswith("COMMIT")]
    assert len(commits) <= 1
    # ...and the runs of trades between the interruptions did go set-wise.
    assert len(ctx.captured_queries) < len(single_ctx.captured_queries)


def test_a_run_of_trades_costs_a_fixed_number_of_statements(desk):
    """Fifty fills on two blocks cost what five cost: the run is written set-wise."""
    from fixgateway.inbound import inbound_batch_apply
    from fixgateway.models import FixOrder
    from fixgateway.reports import InboundReport

    def run(world: World, n: int) -> int:
        cl = [FixOrder.objects.get(block=b).cl_ord_id for b in world.blocks[:2]]
        reports = [
            InboundReport(
                msg_type="8",
                cl_ord_id=cl[i % 2],
                exec_id=f"R{i}",
                exec_type="F",
                ord_status="1",
                last_qty=Decimal(10),
                last_px=Decimal("10.00") + Decimal(i) / 100,
            )
            for i in range(n)
        ]
        with CaptureQueriesContext(connection) as ctx:
            results = inbound_batch_apply(
                broker=world.broker, reports=reports, as_of=timezone.now()
            )
        assert [r.outcome for r in results] == ["applied"] * n
        return len(ctx.captured_queries)

    small, large = run(_world("Q1"), 5), run(_world("Q2"), 50)
    assert large == small
    assert large < 80


def test_a_block_without_a_recorded_plan_gets_one_from_its_orders(desk):
    """A block filled before its plan was recorded (a shortcut some tests and tools take):
    the first booking records the plan from the block's orders and books every fill."""
    from allocation.models import AllocationPlan
    from fixgateway.inbound import inbound_batch_apply
    from fixgateway.models import FixOrder
    from fixgateway.reports import InboundReport
    from orders.models import Block, Order

    world = _world("P1")
    block = world.blocks[0]
    AllocationPlan.objects.filter(block=block).delete()
    cl = FixOrder.objects.get(block=block).cl_ord_id
    reports = [
        InboundReport(
            msg_type="8",
            cl_ord_id=cl,
            exec_id=f"P{i}",
            exec_type="F",
            ord_status="1",
            last_qty=Decimal(100),
            last_px=Decimal("10.00"),
        )
        for i in range(10)
    ]
    results = inbound_batch_apply(broker=world.broker, reports=reports, as_of=timezone.now())
    assert [r.outcome for r in results] == ["applied"] * 10
    assert AllocationPlan.objects.filter(block=block).exists()
    block = Block.objects.get(pk=block.pk)
    assert block.status == "FILLED" and block.cum_qty == 1000
    assert {o.quantity: o.cum_qty for o in Order.objects.filter(block=block)} == {
        Decimal(300): Decimal(300),
        Decimal(500): Decimal(500),
        Decimal(200): Decimal(200),
    }
