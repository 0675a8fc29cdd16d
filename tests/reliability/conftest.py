"""The fault suite's world: the FIX fixtures of tests/fix (simulator in this process, the
gateway as real subprocesses), a scale switch, and the figures every case records.

Each case injects faults and records what it tried and what it checked; the session ends with
one summary of every case (cases tried, faults survived, fills lost, applied twice, orders
stuck). `make test`
runs each case small; `make faults` (OMS_FAULTS_SCALE=full) runs the big versions.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest

from tests.fix.conftest import (  # noqa: F401 (fixtures re-exported for this directory)
    broker,
    desk,
    gateway,
    gateway_env,
    sim,
    world,
)

FULL = os.environ.get("OMS_FAULTS_SCALE", "small") == "full"


def scale(small: int, full: int) -> int:
    return full if FULL else small


@dataclass
class Figure:
    case: str
    faults: int
    checked: str
    lost: int = 0
    twice: int = 0
    stuck: int = 0  # orders left pending (PENDING_NEW, PENDING_REPLACE...) for ever
    seconds: float | None = None
    note: str = ""
    passed: bool = False

    def line(self) -> str:
        took = f", {self.seconds:.1f} s" if self.seconds is not None else ""
        note = f"; {self.note}" if self.note else ""
        return (
            f"[faults] {self.case}: {self.faults} faults injected, {self.checked}, "
            f"lost {self.lost}, applied twice {self.twice}, stuck {self.stuck}{took}{note}"
        )


FIGURES: list[Figure] = []


@pytest.fixture
def figure(request):
    """Record this case's figure: figure(faults=..., checked=..., lost=..., twice=...)."""

    def record(**values) -> Figure:
        f = Figure(case=request.node.name, **values)
        FIGURES.append(f)
        request.node._fault_figures = [*getattr(request.node, "_fault_figures", []), f]
        print(f.line())
        return f

    return record


def pytest_collection_modifyitems(config, items):
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.fspath).startswith(here):
            item.add_marker(pytest.mark.faults)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call":
        for f in getattr(item, "_fault_figures", []):
            f.passed = report.passed
    return report


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not FIGURES:
        return
    tr = terminalreporter
    tr.section(f"fault suite ({'full' if FULL else 'small'} scale)")
    for f in FIGURES:
        tr.write_line(f.line())
    tr.write_line(
        f"cases tried: {len(FIGURES)}, "
        f"faults survived: {sum(f.faults for f in FIGURES if f.passed)}, "
        f"fills lost: {sum(f.lost for f in FIGURES)}, "
        f"applied twice: {sum(f.twice for f in FIGURES)}, "
        f"orders stuck: {sum(f.stuck for f in FIGURES)}"
    )


@pytest.fixture
def proxy(sim, broker):  # noqa: F811 (the fixtures imported above)
    """A FaultProxy between the gateway and the simulator: request it before `gateway` so the
    gateway connects through it."""
    from fixgateway.models import Broker
    from fixgateway.simulator import FaultProxy

    p = FaultProxy(target_port=broker.port)
    Broker.objects.filter(pk=broker.pk).update(port=p.port)
    broker.port = p.port
    yield p
    p.close()


def block_state(block_pk: int) -> dict:
    """What a replayed or reordered report must not change: the block's and its orders'
    cum and average, and the positions of their accounts in the security."""
    from orders.models import Block, Order
    from positions.models import Position

    block = Block.objects.get(pk=block_pk)
    orders = list(Order.objects.filter(block=block).order_by("pk"))
    positions = Position.objects.filter(
        security_id=block.security_id, account_id__in=[o.account_id for o in orders]
    ).order_by("account_id")
    return {
        "block": (block.status, block.cum_qty, block.avg_price),
        "orders": [(o.status, o.cum_qty, o.leaves_qty, o.avg_price) for o in orders],
        "positions": [(p.account_id, p.quantity, p.cost_basis, p.avg_cost) for p in positions],
    }
