"""Reading compliance results. (Until the rule engine of issue 4 lands, there are none.)"""

from __future__ import annotations


def order_compliance(*, order_id: int) -> dict | None:
    """{"verdict": "PASS"|"WARN"|"BLOCK", "results": [...]} of the order's latest check, or None."""
    return None
