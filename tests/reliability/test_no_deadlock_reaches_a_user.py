"""No deadlock reaches a user: block amends and cancels through the API, each on its own
database connection, while 2,000 execution reports on the same blocks are applied in batches
the way the gateway's applier applies them. Every call answers 2xx or 4xx; afterwards every
report is booked once, the books reconcile and the audit chain verifies."""

from __future__ import annotations

import random
import threading
import time
from decimal import Decimal

import pytest

from tests.fix.conftest import routed_block

pytestmark = pytest.mark.django_db(transaction=True)

BLOCKS = 20
CALLS = 20
REPORTS = 2000
BATCH = 50  # the applier takes up to 500; smaller batches interleave more with the calls


def _report(cl_ord_id: str, exec_id: str, **values):
    from fixgateway.reports import InboundReport

    return InboundReport(
        msg_type="8", cl_ord_id=cl_ord_id, order_id=f"BRK-{cl_ord_id}", exec_id=exec_id, **values
    )


def _blocks(desk, broker) -> list:
    from django.utils import timezone

    from fixgateway.inbound import inbound_batch_apply
    from fixgateway.models import FixOrder, OutboxMessage
    from fixgateway.sending import outbox_mark_sent

    blocks = [routed_block(desk, broker, "60000", "40000") for _ in range(BLOCKS)]
    now = timezone.now()
    for message in OutboxMessage.objects.filter(fix_order__block__in=blocks).order_by("pk"):
        outbox_mark_sent(message_id=message.pk, seq_num=message.pk + 1, as_of=now)
    cl = [FixOrder.objects.get(block=b).cl_ord_id for b in blocks]
    acks = [_report(c, f"N-{c}", exec_type="0", ord_status="0") for c in cl]
    assert {r.outcome for r in inbound_batch_apply(broker=broker, reports=acks, as_of=now)} == {
        "applied"
    }
    return list(zip(blocks, cl, strict=True))


def _applier(broker, batches: list[list], progress: list[threading.Event], out: dict) -> None:
    """As fixgateway.application's applier: a batch refused by the database is held and tried
    again, never dropped (here the refusals are counted: none is expected)."""
    from django.db import DatabaseError, connection
    from django.utils import timezone

    from fixgateway.inbound import inbound_batch_apply
    from oms.db import is_conflict

    try:
        for n, batch in enumerate(batches):
            progress[n].set()
            while True:
                try:
                    results = inbound_batch_apply(
                        broker=broker, reports=batch, as_of=timezone.now()
                    )
                    break
                except DatabaseError as exc:
                    if not is_conflict(exc):
                        raise
                    out["escaped"] += 1
            out["outcomes"].extend(r.outcome for r in results)
    except BaseException as exc:  # noqa: BLE001 (reported by the test)
        out["errors"].append(exc)
    finally:
        for event in progress:
            event.set()
        connection.close()


def _call(user, kind: str, block_id: int, quantity: Decimal, start: threading.Event, out: dict):
    from django.db import connection
    from rest_framework.test import APIClient

    try:
        start.wait(120)
        client = APIClient()
        client.force_authenticate(user)
        if kind == "cancel":
            response = client.post(f"/api/blocks/{block_id}/cancel/", format="json")
        else:
            response = client.post(
                f"/api/blocks/{block_id}/replace/", {"quantity": str(quantity)}, format="json"
            )
        out["statuses"].append((kind, response.status_code, response.content[:300]))
    except BaseException as exc:  # noqa: BLE001 (reported by the test)
        out["errors"].append(exc)
    finally:
        connection.close()


def test_amends_and_cancels_during_a_burst_of_reports_never_answer_500(desk, broker, figure):
    from allocation.selectors import booking_differences
    from audit.selectors import audit_chain_verify
    from fixgateway.models import Execution
    from fixgateway.selectors import executed_by_block
    from orders.models import Block, Order
    from positions.selectors import reconcile_differences

    started = time.monotonic()
    rng = random.Random(14)
    blocks = _blocks(desk, broker)
    # Trades sweeping over the blocks, and every tenth a resent acknowledgement (as after a
    # reconnect). Judged alone, a resend splits a batch into runs of trades, each locking its
    # blocks when it starts: a batch reaches a block late, after it has audited the fills of
    # others (where an amend holding that block and waiting for the audit chain deadlocked).
    acks = {cl: _report(cl, f"N-{cl}", exec_type="0", ord_status="0") for _, cl in blocks}
    reports, distinct = [], []
    for i in range(REPORTS):
        block, cl = blocks[(i // 4 + rng.randrange(3)) % BLOCKS]
        if i % 10 == 9:
            reports.append(acks[cl])
            continue
        distinct.append(
            _report(
                cl,
                f"T{i}",
                exec_type="F",
                ord_status="1",
                last_qty=Decimal(rng.randint(1, 9)),
                last_px=Decimal("190.00") + Decimal(rng.randint(0, 200)) / 100,
            )
        )
        reports.append(distinct[-1])
    batches = [reports[i : i + BATCH] for i in range(0, REPORTS, BATCH)]
    progress = [threading.Event() for _ in batches]
    out: dict = {"outcomes": [], "statuses": [], "errors": [], "escaped": 0}

    # One call per block, amends and cancels, spread over the burst: each waits for a batch
    # to start, so they meet the applier in the middle of its work.
    calls = []
    for n in range(CALLS):
        block, _ = blocks[n % BLOCKS]
        kind = "replace" if n % 2 == 0 else "cancel"
        start = progress[(n * len(batches)) // (CALLS + 2) + 1]
        calls.append((desk.trader, kind, block.pk, Decimal("99000"), start, out))
    threads = [threading.Thread(target=_applier, args=(broker, batches, progress, out))]
    threads += [threading.Thread(target=_call, args=c) for c in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not any(t.is_alive() for t in threads)
    assert not out["errors"], out["errors"]

    statuses = [status for _, status, _ in out["statuses"]]
    assert len(statuses) == CALLS
    assert all(200 <= s < 500 for s in statuses), out["statuses"]
    assert statuses.count(200) >= BLOCKS, out["statuses"]  # the first call on each block works
    assert out["outcomes"].count("applied") == len(distinct)
    assert out["outcomes"].count("duplicate") == REPORTS - len(distinct)

    # Every report booked once, and every book agrees with the street.
    block_ids = [b.pk for b, _ in blocks]
    trades = Execution.objects.filter(fix_order__block_id__in=block_ids, exec_type="F")
    assert trades.count() == len(distinct)
    total = sum(r.last_qty for r in distinct)
    assert sum(Block.objects.filter(pk__in=block_ids).values_list("cum_qty", flat=True)) == total
    assert sum(Order.objects.filter(block_id__in=block_ids).values_list("cum_qty", flat=True)) == (
        total
    )
    assert booking_differences(executed_by_block=executed_by_block()) == []
    assert reconcile_differences() == []
    checked, broken = audit_chain_verify()
    assert broken is None and checked > 0
    figure(
        faults=CALLS,
        checked=f"{CALLS} amends/cancels during {REPORTS} reports ({REPORTS - len(distinct)} "
        f"resent) in {len(batches)} batches, "
        f"answers {sorted(set(statuses))}, batches refused {out['escaped']}",
        seconds=time.monotonic() - started,
    )
