"""The kill switch: engaging one stops routing in its scope and cancels every working order in
it (withdrawing what was not sent); releasing it lets routing go on. A workflow: cancelling
an account's orders out of a wider block fixes the block's allocation plan.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction

from allocation import services as allocation
from audit.services import audit_record
from oms.db import retry_on_conflict
from oms.errors import Conflict, DomainError, NotFound
from oms.models import Account
from orders.lifecycle import AT_BROKER
from orders.models import Block
from orders.services import orders_lock

from .models import Broker, KillSwitch
from .outbound import (
    BLOCK_LIVE,
    block_cancel_enqueue,
    block_lock,
    block_reduce_enqueue,
    require_desk,
)


def _scope_check(scope: str, value: str | None) -> str:
    if scope not in KillSwitch.Scope.values:
        raise DomainError(f"Unknown kill switch scope {scope!r}.", code="invalid_scope")
    if scope == KillSwitch.Scope.ALL:
        return ""
    value = (value or "").strip()
    if not value:
        raise DomainError(f"A {scope} kill switch needs a value.", code="invalid_scope")
    return value


def _scope_exists(scope: str, value: str) -> None:
    """A kill switch names something that exists: an account code, a broker code or a
    trader's username. A typo would otherwise stop nothing while looking engaged."""
    known = {
        KillSwitch.Scope.ALL: lambda: True,
        KillSwitch.Scope.BROKER: lambda: Broker.objects.filter(code=value).exists(),
        KillSwitch.Scope.ACCOUNT: lambda: Account.objects.filter(code=value).exists(),
        KillSwitch.Scope.TRADER: lambda: (
            get_user_model().objects.filter(username=value, is_active=True).exists()
        ),
    }[scope]()
    if not known:
        raise DomainError(
            f"There is no {scope} {value!r}: nothing to stop.",
            code="unknown_scope_value",
            details={"scope": scope, "value": value},
        )


@retry_on_conflict(durable=True)
def kill_switch_engage(
    *, scope: str, value: str | None, actor: Any, as_of: datetime
) -> dict[str, Any]:
    """Stop routing in scope and cancel every working order in it (one not sent yet is
    withdrawn). Returns what was done. An unknown account, broker or trader is a 400."""
    value = _scope_check(scope, value)
    _scope_exists(scope, value)
    switch, created = KillSwitch.objects.get_or_create(
        scope=scope,
        value=value,
        released_at__isnull=True,
        defaults={"engaged_at": as_of, "engaged_by": actor if getattr(actor, "pk", None) else None},
    )
    blocks = Block.objects.filter(fix_order__isnull=False, status__in=BLOCK_LIVE)
    if scope == KillSwitch.Scope.BROKER:
        blocks = blocks.filter(broker__code=value)
    elif scope == KillSwitch.Scope.TRADER:
        blocks = blocks.filter(created_by__username=value)
    elif scope == KillSwitch.Scope.ACCOUNT:
        blocks = blocks.filter(orders__account__code=value).distinct()
    cancelled, skipped = [], []
    for block in blocks.order_by("pk"):
        try:
            with transaction.atomic():
                if scope == KillSwitch.Scope.ACCOUNT:
                    locked = block_lock(block.pk)
                    ids = list(
                        locked.orders.filter(account__code=value, status__in=AT_BROKER).values_list(
                            "pk", flat=True
                        )
                    )
                    if block_reduce_enqueue(
                        block=locked, orders=orders_lock(order_ids=ids), actor=actor, as_of=as_of
                    ):
                        allocation.allocation_plan_fix(block=locked, actor=actor, as_of=as_of)
                else:
                    block_cancel_enqueue(block=block, actor=actor, as_of=as_of)
            cancelled.append(block.pk)
        except Conflict as exc:
            skipped.append({"block": block.pk, "reason": exc.message})
    audit_record(
        actor=actor,
        action="fix.kill_switch_engage",
        obj=switch,
        occurred_at=as_of,
        after={"scope": scope, "value": value, "cancelled_blocks": cancelled, "skipped": skipped},
    )
    return {"switch": switch.pk, "new": created, "cancelled": cancelled, "skipped": skipped}


@retry_on_conflict(durable=True)
def kill_switch_release(
    *,
    actor: Any,
    as_of: datetime,
    reason: str,
    switch_id: int | None = None,
    scope: str | None = None,
    value: str | None = None,
) -> dict[str, Any]:
    """Let routing in a scope go on again: the engaged switch, named by its id or by scope
    and value, is released with the reason (required), audited. Orders it cancelled stay
    cancelled. Traders and admins only."""
    require_desk(actor)
    reason = " ".join((reason or "").split())[:500]
    if not reason:
        raise DomainError("Say why the kill switch is released.", code="reason_required")
    switches = KillSwitch.objects.select_for_update().filter(released_at__isnull=True)
    if switch_id is not None:
        switch = switches.filter(pk=switch_id).first()
        what = f"#{switch_id}"
    else:
        value = _scope_check(scope or "", value)
        switch = switches.filter(scope=scope, value=value).first()
        what = f"{scope} {value}".strip()
    if switch is None:
        raise NotFound(f"No engaged kill switch {what}.")
    switch.released_at = as_of
    switch.released_by = actor if getattr(actor, "pk", None) else None
    switch.release_reason = reason
    switch.save(update_fields=["released_at", "released_by", "release_reason"])
    audit_record(
        actor=actor,
        action="fix.kill_switch_release",
        obj=switch,
        occurred_at=as_of,
        before={"engaged_at": switch.engaged_at},
        after={"scope": switch.scope, "value": switch.value, "reason": reason},
    )
    return {
        "switch": switch.pk,
        "scope": switch.scope,
        "value": switch.value,
        "released_at": as_of,
        "reason": reason,
    }
