"""50 concurrent fills, duplicate fills, cancel requests and cancel confirmations on one
routed block, in threads calling the services against the real database, repeated: every
distinct fill is booked once, duplicates change nothing, nothing is lost."""

from __future__ import annotations

import random
import threading
import time
from decimal import Decimal

import pytest

from tests.fix.conftest import routed_block
from tests.reliability.conftest import scale

pytestmark = pytest.mark.django_db(transaction=True)

THREADS = 50


def _report(block, **values):
    from fixgateway.reports import InboundReport

    return InboundReport(msg_type="8", cl_ord_id=block.fix_order.cl_ord_id, **values)


def _one_round(desk, broker, n: int, rng: random.Random) -> dict:
    from django.db import connection
    from django.utils import timezone

    from fixgateway.executions import execution_report_apply
    from fixgateway.models import Execution
    from fixgateway.sending import outbox_mark_sent
    from oms.errors import DomainError
    from orders.block_services import block_cancel
    from orders.models import Block, Order, OrderEvent

    block = routed_block(desk, broker, "5000", "3000")
    block = Block.objects.select_related("fix_order").get(pk=block.pk)
    # The broker fills only what it was sent (a cancel of an order not sent yet withdraws it).
    outbox_mark_sent(message_id=block.fix_order.messages.get().pk, seq_num=2, as_of=timezone.now())
    distinct = [
        (f"R{n}-F{i}", Decimal(rng.randint(1, 60)), Decimal("190.00") + i) for i in range(36)
    ]
    jobs = [("fill", f) for f in distinct]
    jobs += [("fill", rng.choice(distinct)) for _ in range(6)]  # the same ExecID again
    jobs += [("cancel", None) for _ in range(4)]
    jobs += [("cancelled", i) for i in range(4)]  # the broker's confirmations, racing the rest
    assert len(jobs) == THREADS
    rng.shuffle(jobs)
    barrier = threading.Barrier(THREADS)
    outcomes: list[str] = []
    errors: list[BaseException] = []

    def work(kind, arg):
        try:
            barrier.wait(10)
            now = timezone.now()
            if kind == "fill":
                exec_id, qty, px = arg
                result = execution_report_apply(
                    broker=broker,
                    report=_report(
                        block,
                        exec_id=exec_id,
                        exec_type="F",
                        ord_status="1",
                        last_qty=qty,
                        last_px=px,
                    ),
                    as_of=now,
                )
                outcomes.append(result.outcome)
            elif kind == "cancel":
                try:
                    block_cancel(block_id=block.pk, actor=desk.trader, as_of=now)
                    outcomes.append("cancel_requested")
                except DomainError as exc:  # a second cancel, or one after the block ended
                    outcomes.append(f"refused:{exc.code}")
            else:
                result = execution_report_apply(
                    broker=broker,
                    report=_report(block, exec_id=f"R{n}-C{arg}", exec_type="4", ord_status="4"),
                    as_of=now,
                )
                outcomes.append(f"cancel:{result.outcome}")
        except BaseException as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=job) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert outcomes.count("applied") == len(distinct)
    assert outcomes.count("duplicate") == 6

    block.refresh_from_db()
    applied = Execution.objects.filter(fix_order=block.fix_order, exec_type="F", state="APPLIED")
    rows = list(applied.values_list("exec_id", "last_qty"))
    booked = dict(rows)
    expected = {exec_id: qty for exec_id, qty, _ in distinct}
    lost = len(set(expected) - set(booked))
    total = sum(expected.values())
    value = sum(qty * px for _, qty, px in distinct)
    orders = list(Order.objects.filter(block=block))
    fills_on_orders = OrderEvent.objects.filter(order__block=block, kind="fill").count()
    return {
        "lost": lost,
        "twice": len(rows) - len(booked) + len(set(booked) - set(expected)),
        "block_cum": block.cum_qty,
        "total": total,
        "block_avg": block.avg_price,
        "avg": (value / total).quantize(Decimal("0.00000001")),
        "orders_cum": sum(o.cum_qty for o in orders),
        "fill_events": fills_on_orders,
        "status": block.status,
        "order_states": sorted({o.status for o in orders}),
        "leaves_ok": all(o.leaves_qty in (0, o.quantity - o.cum_qty) for o in orders),
    }


def test_concurrent_fills_and_cancels_on_one_block_lose_no_update(desk, broker, figure):
    from orders.models import Block
    from positions.models import Position

    rounds = scale(3, 30)
    rng = random.Random(9)
    started = time.monotonic()
    lost = twice = 0
    for n in range(rounds):
        r = _one_round(desk, broker, n, rng)
        lost += r["lost"]
        twice += r["twice"]
        assert r["block_cum"] == r["total"] == r["orders_cum"], r
        assert r["block_avg"] == r["avg"], r
        # Each fill books one slice on some order, never more than one per order.
        assert r["fill_events"] >= 36, r
        assert r["status"] in ("CANCELLED", "PENDING_CANCEL"), r
        assert r["leaves_ok"], r
    held = sum(Position.objects.filter(security=desk.aapl).values_list("quantity", flat=True))
    assert held == sum(Block.objects.values_list("cum_qty", flat=True))
    figure(
        faults=rounds * THREADS,
        checked=f"{rounds} rounds of {THREADS} concurrent fills/duplicates/cancels, "
        f"positions {held} = blocks' cum",
        lost=lost,
        twice=twice,
        seconds=time.monotonic() - started,
    )
    assert lost == 0 and twice == 0
