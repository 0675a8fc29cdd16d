"""kill -9 of the FIX worker at random points of a stream of fills (small: a few hundred, with
two kills; `make faults`: 10,000 with eight), with a hot standby and more orders routed while
the owner is dead: the standby takes over within 10 s, the session is back within 30 s, every
fill is applied exactly once (per block and order, filled quantity equals the simulator's
executed quantity) and no order is sent twice.

(Formerly tests/fix/test_crash.py, 2,000 fills and one kill: now scaled and repeated.)"""

from __future__ import annotations

import random
import time
from decimal import Decimal

import pytest

from tests.fix.conftest import routed_block, wait_until
from tests.reliability.conftest import scale

pytestmark = pytest.mark.django_db(transaction=True)


def _owner_pid() -> int | None:
    from fixgateway.models import SessionState

    state = SessionState.objects.filter(logged_on=True).first()
    return int(state.owner.rsplit(":", 1)[1]) if state and state.owner else None


def test_kill_9_at_random_points_applies_every_fill_once_and_sends_nothing_twice(
    desk, broker, sim, gateway, figure
):
    from fixgateway.models import Execution, SessionState
    from orders.models import Block, Order

    total = scale(160, 10_000)
    kills = scale(2, 8)
    n_blocks = scale(4, 10)
    per_block = total // n_blocks
    seed = int(time.time())
    rng = random.Random(seed)
    started = time.monotonic()

    gateway.start()  # the hot standby
    time.sleep(1)
    sim("config", fill_mode="slices", slices=per_block, interval=0.001)
    big, small = per_block * 3 // 5, per_block - per_block * 3 // 5

    def route(i):
        security = desk.aapl if i % 2 == 0 else desk.msft
        return routed_block(desk, broker, str(big), str(small), security=security)

    blocks = [route(i) for i in range(n_blocks // 2)]
    # The first kill comes while only the first wave of blocks is trading (the second wave is
    # routed right after it); the others anywhere in the stream.
    first_wave = (n_blocks // 2) * per_block
    points = [rng.randrange(total // 10, first_wave * 9 // 10)]
    points += sorted(rng.sample(range(points[0] + 1, total * 8 // 10), kills - 1))
    takeovers, restarts = [], []

    def fills_applied() -> int:
        return Execution.objects.filter(exec_type="F").count()

    for k, point in enumerate(points):
        wait_until(
            lambda point=point: fills_applied() >= point,
            timeout=max(120, total / 4),
            interval=0.05,
            what=f"{point} fills",
        )
        owner = _owner_pid()
        victim = next(p for p in gateway.procs if p.pid == owner)
        # Even kills: a hot standby is waiting. Odd kills: the owner is alone and is restarted
        # cold (the session must be back within 30 s).
        gateway.kill9(victim)
        killed_at = time.monotonic()
        if k == 0:  # routed while nobody owns the session: sent once by the new owner
            blocks += [route(i) for i in range(n_blocks // 2, n_blocks)]
        if k % 2 == 1:
            gateway.start()
        wait_until(
            lambda owner=owner: (
                SessionState.objects.filter(logged_on=True)
                .exclude(owner__endswith=f":{owner}")
                .exists()
            ),
            timeout=30,
            interval=0.05,
            what="the session back",
        )
        (takeovers if k % 2 == 0 else restarts).append(time.monotonic() - killed_at)
        if k % 2 == 1:
            gateway.start()  # a standby again for the next kill
            time.sleep(0.5)

    expected = {b.pk: b.quantity for b in blocks}
    wait_until(
        lambda: Block.objects.filter(pk__in=expected, status="FILLED").count() == len(expected),
        timeout=max(240, total / 4),
        interval=0.5,
        what="every block filled",
    )
    state = sim("state")
    by_first = {o["first_cl_ord_id"]: o for o in state["orders"]}
    lost = twice = sim_fills = 0
    for block in Block.objects.filter(pk__in=expected):
        sim_order = by_first[f"OMS-B{block.pk}-1"]
        applied = Execution.objects.filter(fix_order__block=block, exec_type="F").count()
        lost += max(0, sim_order["fills"] - applied)
        twice += max(0, applied - sim_order["fills"])
        sim_fills += sim_order["fills"]
        assert Decimal(sim_order["cum"]) == block.cum_qty == expected[block.pk]
        filled = [o.cum_qty for o in Order.objects.filter(block=block).order_by("pk")]
        assert filled == [big, small]
    sent_twice = sum(count - 1 for count in state["received"].values())
    figure(
        faults=kills,
        checked=f"{sim_fills} fills, {len(expected)} blocks, standby takeover max "
        f"{max(takeovers):.1f} s, cold restart back max {max(restarts, default=0):.1f} s, "
        f"{sent_twice} orders sent twice",
        lost=lost,
        twice=twice + sent_twice,
        seconds=time.monotonic() - started,
        note=f"kill points {points} (seed {seed})",
    )
    assert sim_fills >= total - n_blocks
    assert lost == 0 and twice == 0
    assert len(state["received"]) == len(blocks) and sent_twice == 0
    assert max(takeovers) < 10
    assert max(restarts, default=0) < 30
