"""A random stream of what brokers and people do to blocks over three days (fills, busts,
corrections, amends, cancels, done for day, the after-close job), through the gateway's and
the orders' public services; afterwards positions, cash, executions, orders, allocations and
custodian files reconcile to zero difference.

`OMS_LEDGER_STREAM` sets the stream's length and `OMS_LEDGER_STREAM_EXAMPLES` the number of
streams (default 3 streams of 300 events in `make test`; one stream of 5,000:
`OMS_LEDGER_STREAM=5000 OMS_LEDGER_STREAM_EXAMPLES=1 make test ARGS=tests/allocation/test_ledger_stream.py`)."""

from __future__ import annotations

import os
import random
from datetime import timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from allocation.models import Allocation, BlockDay
from allocation.selectors import booking_differences
from allocation.tasks import settlement_after_close
from fixgateway.models import FixOrder
from fixgateway.selectors import executed_by_block
from oms.errors import DomainError
from orders.entry import order_amend, order_cancel
from orders.models import Block, Order
from positions.selectors import reconcile_differences

from .test_booking_ledger import CLOSE, DAY1, DAY2, DAY3, Desk

pytestmark = pytest.mark.django_db

LENGTH = int(os.environ.get("OMS_LEDGER_STREAM", "300"))
EXAMPLES = int(os.environ.get("OMS_LEDGER_STREAM_EXAMPLES", "3"))
BLOCKS = 4
ORDERS_PER_BLOCK = 5
PRICES = ["9.97", "10.00", "10.01", "10.03", "10.10"]


def _events(seed: int, length: int) -> list[tuple]:
    """A stream drawn from `seed`: hypothesis picks the seeds, a seeded generator expands each
    into thousands of events (a hypothesis list of 5,000 tuples overruns its buffer)."""
    rng = random.Random(seed)
    kinds = ["fill"] * 10 + ["bust", "correct", "amend", "cancel"]
    events = []
    for _ in range(length):
        kind = rng.choice(kinds)
        block = rng.randrange(BLOCKS)
        if kind == "fill":
            events.append((kind, block, rng.randint(1, 40), rng.choice(PRICES)))
        elif kind == "bust":
            events.append((kind, block, rng.randint(0, 50)))
        elif kind == "correct":
            events.append((kind, block, rng.randint(0, 50), rng.choice(PRICES)))
        elif kind == "amend":
            events.append((kind, block, rng.randrange(ORDERS_PER_BLOCK), rng.randint(-30, 30)))
        else:
            events.append((kind, block, rng.randrange(ORDERS_PER_BLOCK)))
    # Three trading days: the desk closes after each third of the stream.
    for at in (2 * length // 3, length // 3):
        events.insert(at, ("close",))
    return events


class Stream:
    def __init__(self, desk: Desk, accounts: list, blocks: list[Block]):
        self.desk, self.accounts, self.blocks = desk, accounts, blocks
        self.days = [DAY1, DAY2, DAY3]
        self.day = 0
        self.live: dict[int, list[tuple[str, Decimal]]] = {b.pk: [] for b in blocks}
        self.sent = 0  # reports and requests the stream really made

    @property
    def now(self):
        return self.days[self.day] + timedelta(minutes=1)

    def block(self, i: int) -> Block:
        return Block.objects.get(pk=self.blocks[i].pk)

    def acknowledge(self, block: Block) -> None:
        fix_order = FixOrder.objects.get(block=block)
        if fix_order.pending_kind == "REPLACE":
            self.desk.report(block, "5", as_of=self.now)
        elif fix_order.pending_kind == "CANCEL":
            self.desk.report(block, "4", as_of=self.now)

    def apply(self, event: tuple) -> None:
        kind = event[0]
        if kind == "close":
            for block in self.blocks:
                block = Block.objects.get(pk=block.pk)
                if block.status in ("WORKING", "PARTIALLY_FILLED"):
                    self.desk.report(block, "3", as_of=self.now)
            settlement_after_close(as_of=CLOSE[self.days[self.day]].isoformat())
            self.day = min(self.day + 1, len(self.days) - 1)
            return
        block = self.block(event[1])
        if block.status in ("CANCELLED", "FILLED", "REJECTED", "EXPIRED"):
            # The desk routes a new block in its place, so the stream keeps trading.
            self.blocks[event[1]] = block = _route(self.desk, self.accounts, event[1], self.now)
            self.live[block.pk] = []
        if kind == "fill":
            qty = min(Decimal(event[2]), block.quantity - block.cum_qty)
            if qty > 0:
                self.sent += 1
                exec_id = self.desk.fill(block, qty, event[3], as_of=self.now)
                self.live[block.pk].append((exec_id, qty))
        elif kind in ("bust", "correct") and self.live[block.pk]:
            exec_id, qty = self.live[block.pk].pop(event[2] % len(self.live[block.pk]))
            self.sent += 1
            if kind == "bust":
                self.desk.report(block, "H", exec_ref_id=exec_id, as_of=self.now)
            else:
                new_id = self.desk.report(
                    block, "G", qty=str(qty), px=event[3], exec_ref_id=exec_id, as_of=self.now
                )
                self.live[block.pk].append((new_id, qty))
        elif kind in ("amend", "cancel"):
            orders = sorted(Order.objects.filter(block=block), key=lambda o: o.pk)
            order = orders[event[2] % len(orders)]
            try:
                if kind == "cancel":
                    order_cancel(order_id=order.pk, actor=self.desk.pm, as_of=self.now)
                else:
                    quantity = max(order.cum_qty + 1, order.quantity + event[3])
                    order_amend(
                        order_id=order.pk,
                        actor=self.desk.pm,
                        as_of=self.now,
                        changes={"quantity": quantity},
                    )
            except DomainError:
                return  # refused (nothing left to cancel, below what is filled...): nothing sent
            self.sent += 1
            self.acknowledge(Block.objects.get(pk=block.pk))


def _route(desk: Desk, accounts: list, i: int, as_of) -> Block:
    picked = [accounts[(i * 3 + j * 4) % len(accounts)] for j in range(ORDERS_PER_BLOCK)]
    block = desk.block(
        # Large enough that the stream's fills do not run a block dry at once.
        [(100 + 37 * j) * max(1, LENGTH // 300) for j in range(ORDERS_PER_BLOCK)],
        side="BUY",
        tif="GTC",
        as_of=as_of,
        accounts=picked,
    )
    desk.report(block, "0", as_of=as_of)
    return block


def _desk_and_blocks(tag: str) -> tuple[Desk, list, list[Block]]:
    desk = Desk(tag=tag)
    accounts = [desk.account() for _ in range(20)]
    return desk, accounts, [_route(desk, accounts, i, DAY1) for i in range(BLOCKS)]


_EXAMPLES = 0


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    # Each example is hundreds of database round trips: report a failure as found, unshrunk.
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    print_blob=True,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.large_base_example,
        HealthCheck.data_too_large,
    ],
)
@given(seed=st.integers(0, 2**32 - 1))
# A bust of a day-1 fill split that day again among orders whose day 2 was booked: one was
# given more than it had left (an overfill, quarantined) until capacity counted later days.
@example(seed=7386143)
def test_random_stream_reconciles_to_zero(refdata, seed):
    events = _events(seed, LENGTH)
    global _EXAMPLES
    _EXAMPLES += 1
    desk, accounts, blocks = _desk_and_blocks(f"S{_EXAMPLES}")
    stream = Stream(desk, accounts, blocks)
    for event in [*events, ("close",)]:
        stream.apply(event)
    # Most of the stream reached the gateway (the rest: busts with nothing to bust, events on
    # blocks already done).
    assert stream.sent >= LENGTH // 2, stream.sent
    diffs = [
        *reconcile_differences(),
        *booking_differences(executed_by_block=executed_by_block()),
    ]
    assert [str(d) for d in diffs] == []
    # Everything traded was finalised and booked per account and day.
    assert not BlockDay.objects.filter(status="OPEN", executed__gt=0).exists()
    for block in Block.objects.filter(security=desk.security):
        booked = sum(
            (a.quantity for a in Allocation.objects.filter(block=block, replaced_at=None)),
            Decimal(0),
        )
        assert booked == block.cum_qty
