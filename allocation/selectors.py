"""Reading allocations, plans and settlement files for the Operations page and the API."""

from __future__ import annotations

from django.db.models import QuerySet

from orders.models import Order

from .models import AllocationPlan, SettlementFile
from .services import DONE_STATUSES, _plan_lines, plan_hash_of


def plan_drift(*, plan: AllocationPlan) -> bool:
    """True when the block's orders no longer match the plan fixed at routing."""
    current = Order.objects.filter(block_id=plan.block_id).order_by("pk")
    return plan_hash_of(_plan_lines(current)) != plan.plan_hash


def plans_open() -> QuerySet[AllocationPlan]:
    return (
        AllocationPlan.objects.filter(status=AllocationPlan.Status.OPEN)
        .select_related("block__security", "block__broker")
        .order_by("-fixed_at")
    )


def plans_awaiting_finalisation() -> QuerySet[AllocationPlan]:
    return plans_open().filter(block__status__in=DONE_STATUSES)


def settlement_files() -> QuerySet[SettlementFile]:
    # The listing never needs the content itself.
    return SettlementFile.objects.select_related("custodian").defer("content")
