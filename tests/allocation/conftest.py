"""Blocks built directly from orders (routing is another app's; allocation starts at the plan)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from fixgateway.models import Broker
from oms.models import Custodian
from orders.lifecycle import OrderStatus
from orders.models import Block, Order
from tests import factories

AS_OF = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)
TRADE_DATE = date(2026, 11, 25)


@pytest.fixture(autouse=True)
def _seeded_fee_rules(fee_rules):
    """Allocations charge the seeded fees: every test here starts with them."""


@pytest.fixture
def broker(db):
    return Broker.objects.create(
        code="SIM",
        name="Simulator",
        port=9999,
        sender_comp_id="OMS",
        target_comp_id="SIM",
        commission_bps=Decimal("5"),
        commission_per_share=Decimal("0.01"),
    )


@pytest.fixture
def make_block(refdata, broker):
    """make_block([100, 200, ...], security=..., side=...) -> a routed block with its plan."""
    from allocation.services import allocation_plan_fix

    counter = {"n": 0}

    def make(quantities, *, security=None, side="BUY", custodian=None, accounts=None):
        security = security or refdata.aapl
        custodian = (
            custodian
            or Custodian.objects.get_or_create(code="CUST", defaults={"name": "Custodian"})[0]
        )
        block = Block.objects.create(
            security=security,
            side=side,
            quantity=sum((Decimal(q) for q in quantities), Decimal(0)),
            status=Block.Status.WORKING,
            broker=broker,
            created_by=refdata.trader,
            created_at=AS_OF,
            routed_at=AS_OF,
        )
        for i, q in enumerate(quantities):
            if accounts is not None:
                acct = accounts[i]
            else:
                counter["n"] += 1
                acct = factories.account(f"A{counter['n']:04d}", custodian=custodian)
            Order.objects.create(
                account=acct,
                security=security,
                side=side,
                quantity=Decimal(q),
                order_type="MARKET",
                status=OrderStatus.WORKING,
                pm=refdata.pm1,
                received_at=AS_OF,
                block=block,
                leaves_qty=Decimal(q),
            )
        allocation_plan_fix(block=block, actor=refdata.trader, as_of=AS_OF)
        return block

    return make


def fill(block, ref, quantity, price, trade_date=TRADE_DATE, as_of=AS_OF):
    """What the FIX gateway does per execution: lock the block, bump its cum/avg, record the
    street fill and book the block (a batch of one)."""
    from django.db import transaction

    from allocation.services import BlockFill, block_book, street_fills_record

    with transaction.atomic():
        locked = Block.objects.select_for_update().select_related("security").get(pk=block.pk)
        q, p = Decimal(quantity), Decimal(price)
        value = (locked.avg_price or 0) * locked.cum_qty + q * p
        locked.cum_qty += q
        locked.avg_price = value / locked.cum_qty
        locked.save(update_fields=["cum_qty", "avg_price"])
        street_fills_record(
            fills=[BlockFill(locked, ref, q, p, trade_date)],
            as_of=as_of,
        )
        block_book(block=locked, as_of=as_of)


def bust(block, ref, as_of=AS_OF):
    """What the gateway does for a bust (35=8 150=H)."""
    from django.db import transaction

    from allocation.services import block_book, street_fill_bust

    with transaction.atomic():
        locked = Block.objects.select_for_update().select_related("security").get(pk=block.pk)
        street_fill_bust(block=locked, execution_ref=ref, as_of=as_of)
        block_book(block=locked, as_of=as_of)


def shares(block, trade_date=TRADE_DATE):
    """{order_id: quantity} of the block on the date."""
    from allocation.models import OrderShare

    return {
        s.order_id: s.quantity
        for s in OrderShare.objects.filter(day__block=block, day__trade_date=trade_date)
    }


def done(block, status=Block.Status.FILLED):
    Block.objects.filter(pk=block.pk).update(status=status)
    block.refresh_from_db()
    return block
