"""A small firm with something of everything: each PM's orders, a block on the desk with its
allocation plan, positions and cash in both accounts, a settlement file."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from decimal import Decimal

import pytest
from django.test import Client
from django.utils import timezone

ROLES = ("pm", "other_pm", "trader", "compliance", "ops", "admin", "anon")


@dataclass
class World:
    ref: object
    order1: object  # pm1's, in ACCT1
    order2: object  # pm2's, in ACCT2
    block: object  # holds order1
    sfile: object
    exc: object  # an open exception about ACCT1's block

    def user(self, role: str):
        return {
            "pm": self.ref.pm1,
            "other_pm": self.ref.pm2,
            "trader": self.ref.trader,
            "compliance": self.ref.compliance,
            "ops": self.ref.ops,
            "admin": self.ref.admin,
            "anon": None,
        }[role]

    def client(self, role: str, **kwargs) -> Client:
        client = Client(**kwargs)
        user = self.user(role)
        if user is not None:
            client.force_login(user)
        return client


def build_world(ref) -> World:
    from allocation.models import SettlementFile
    from allocation.services import allocation_plan_fix
    from oms.services import exception_open
    from orders.block_services import block_create
    from positions.models import CashBalance, Position
    from tests.blotter.helpers import staged_order

    now = timezone.now()
    order1 = staged_order(ref.acct1, ref.aapl, pm=ref.pm1)
    order2 = staged_order(ref.acct2, ref.msft, pm=ref.pm2)
    block = block_create(order_ids=[order1.pk], actor=ref.trader, as_of=now)
    allocation_plan_fix(block=block, actor=ref.trader, as_of=now)
    for account, security in ((ref.acct1, ref.aapl), (ref.acct2, ref.msft)):
        Position.objects.create(
            account=account,
            security=security,
            quantity=Decimal("100"),
            avg_cost=Decimal("10"),
            cost_basis=Decimal("1000"),
        )
        CashBalance.objects.create(
            account=account, currency="USD", settled=Decimal("5000"), projected=Decimal("5000")
        )
    content = "trade_date,account,symbol\n2026-01-02,ACCT1,AAPL\n"
    sfile = SettlementFile.objects.create(
        custodian=ref.acct1.custodian,
        trade_date=now.date(),
        version=1,
        filename="CUST-settlement.csv",
        content=content,
        checksum=hashlib.sha256(content.encode()).hexdigest(),
        row_count=1,
        created_at=now,
    )
    exc = exception_open(
        kind="booking_failed",
        ref=f"block:{block.pk}:{now.date()}",
        summary=f"Block {block.pk}: booking failed after the close",
        detail={"account": ref.acct1.code, "order_id": order1.pk},
        source="allocation",
        block_id=block.pk,
        order_id=order1.pk,
        as_of=now,
    )
    return World(ref=ref, order1=order1, order2=order2, block=block, sfile=sfile, exc=exc)


@pytest.fixture
def world(refdata) -> World:
    return build_world(refdata)
