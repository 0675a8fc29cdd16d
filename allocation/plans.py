"""A block's allocation plan: which orders share the block and their quantities now (a closed
order with what it had filled when it closed), fixed at routing and again whenever the orders
change, with the block's turn in the rotation of residual lots. The booking reads its weights
from the orders at every pass; the plan's row lock keeps booking passes apart."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal

from django.db import connection, transaction

from audit.services import audit_record
from oms.errors import DomainError
from oms.money import PRICE_PLACES
from orders.lifecycle import OrderStatus
from orders.models import Block, Order

from .models import AllocationPlan

# An order in one of these takes no further shares: it keeps what it holds.
CLOSED_ORDERS = frozenset({OrderStatus.CANCELLED, OrderStatus.REJECTED, OrderStatus.EXPIRED})


def plan_lines(orders: Iterable[Order]) -> list[dict]:
    """The plan as the block and the audit trail show it: each order with its account and
    its quantity now."""
    return [
        {
            "order": o.pk,
            "account": o.account_id,
            "quantity": str(o.quantity.quantize(PRICE_PLACES)),
            # A closed order keeps the block quantity it had filled when it closed: a later
            # bust gives it back leaves the broker may fill again, and they are its own.
            **({"closed_with": str(o.cum_qty)} if o.status in CLOSED_ORDERS else {}),
        }
        for o in sorted(orders, key=lambda o: o.pk)
    ]


def plan_hash_of(lines: list[dict]) -> str:
    canonical = json.dumps(lines, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _rotation_next(*, security_id: int) -> int:
    # One atomic upsert: concurrent routes of the same security each get their own turn
    # without a read-modify-write race.
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO allocation_allocationrotation (security_id, counter) VALUES (%s, 1)
            ON CONFLICT (security_id)
            DO UPDATE SET counter = allocation_allocationrotation.counter + 1
            RETURNING counter
            """,
            [security_id],
        )
        return cursor.fetchone()[0] - 1


def allocation_plan_fix(
    *, block: Block, actor, as_of: datetime, orders: list[Order] | None = None
) -> AllocationPlan:
    """Record which orders share the block (its orders now, or `orders` for a block made by
    an internal cross) and their quantities; called at routing and again whenever the broker
    acknowledges a replace or cancel, so the plan on the block follows the orders."""
    with transaction.atomic(savepoint=False):
        if orders is None:
            orders = list(Order.objects.filter(block_id=block.pk).order_by("pk"))
        plan = AllocationPlan.objects.select_for_update().filter(block_id=block.pk).first()
        if plan is not None and not orders:
            orders = list(
                Order.objects.filter(pk__in=[line["order"] for line in plan.lines]).order_by("pk")
            )
        if not orders:
            raise DomainError(f"Block {block.pk} has no orders to allocate to.", code="empty_block")
        if plan is not None:
            # Orders that left the block keep their place: they may hold shares of it.
            kept = {line["order"] for line in plan.lines} - {o.pk for o in orders}
            if kept:
                orders = [*orders, *Order.objects.filter(pk__in=kept)]
        lines = plan_lines(orders)
        if plan is not None:
            earlier = {
                line["order"]: Decimal(line["closed_with"])
                for line in plan.lines
                if "closed_with" in line
            }
            for line in lines:
                if line["order"] in earlier and "closed_with" in line:
                    kept = max(earlier[line["order"]], Decimal(line["closed_with"]))
                    line["closed_with"] = str(kept)
        digest = plan_hash_of(lines)
        before = None
        if plan is not None:
            if plan.plan_hash == digest:
                return plan
            before = {"plan_hash": plan.plan_hash, "lines": plan.lines}
            plan.lines, plan.plan_hash, plan.fixed_at = lines, digest, as_of
            plan.fixed_by = actor if getattr(actor, "pk", None) else None
            plan.save(update_fields=["lines", "plan_hash", "fixed_at", "fixed_by"])
        else:
            plan = AllocationPlan.objects.create(
                block=block,
                lines=lines,
                plan_hash=digest,
                rotation=_rotation_next(security_id=block.security_id),
                fixed_at=as_of,
                fixed_by=actor if getattr(actor, "pk", None) else None,
            )
        Block.objects.filter(pk=block.pk).update(allocation_plan=lines, allocation_plan_hash=digest)
        block.allocation_plan, block.allocation_plan_hash = lines, digest
        audit_record(
            actor=actor,
            action="allocation.plan_fix",
            obj=block,
            occurred_at=as_of,
            before=before,
            after={"plan_hash": digest, "lines": lines, "rotation": plan.rotation},
        )
        return plan


def plans_locked(blocks: dict[int, Block], *, as_of: datetime) -> dict[int, AllocationPlan]:
    plans = {
        p.block_id: p
        for p in AllocationPlan.objects.select_for_update()
        .filter(block_id__in=list(blocks))
        .order_by("pk")
    }
    for block_id in sorted(set(blocks) - set(plans)):
        # A block filled without going through block_route (a test): its plan is fixed from
        # the orders it has now.
        plans[block_id] = allocation_plan_fix(block=blocks[block_id], actor=None, as_of=as_of)
    return plans
