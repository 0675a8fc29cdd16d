"""Pre-trade compliance. (Until the rule engine of issue 4 lands, every order passes.)"""

from __future__ import annotations

from datetime import datetime

from django.db import transaction


@transaction.atomic
def compliance_check_orders(*, order_ids: list[int], actor, as_of: datetime) -> dict[int, str]:
    """Check orders in PENDING_COMPLIANCE as one program and move each to APPROVED,
    AWAITING_OVERRIDE (a warning) or BLOCKED. Returns {order_id: "PASS"|"WARN"|"BLOCK"}."""
    from orders.lifecycle import OrderStatus
    from orders.services import order_transition, orders_lock

    verdicts = {}
    for order in orders_lock(order_ids=order_ids):
        if order.status != OrderStatus.PENDING_COMPLIANCE:
            continue
        order_transition(
            order=order,
            to_status=OrderStatus.APPROVED,
            as_of=as_of,
            kind="compliance_pass",
            actor=actor,
            extra_fields={"compliance_status": "PASS"},
        )
        verdicts[order.pk] = "PASS"
    return verdicts
