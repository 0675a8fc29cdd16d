"""Restricted list: an order in a security (or of an issuer) on the list, on a side the rule
names, breaches.
"""

from __future__ import annotations

from oms.fields import ZERO

from ..context import Context
from ..specs import Candidate, RuleSpec, SecurityInfo, rule_result


def evaluate(ctx: Context, spec: RuleSpec, c: Candidate, sec: SecurityInfo, index: int):
    sides = spec.params.get("sides")
    if sides and c.side not in sides:
        return None
    entries = ctx.restricted.get(("security", c.security_id), []) + ctx.restricted.get(
        ("issuer", sec.issuer_id), []
    )
    if not entries:
        return rule_result(
            spec,
            breached=False,
            message=f"{sec.symbol} is not on the restricted list.",
        )
    e = entries[0]
    what = sec.symbol if e.security_id else f"{sec.symbol} (issuer {sec.issuer_name})"
    until = f" until {e.end_date.isoformat()}" if e.end_date else ""
    return rule_result(
        spec,
        breached=True,
        message=(
            f"{what} is on the restricted list: {e.reason} "
            f"(since {e.start_date.isoformat()}{until})"
        ),
        max_passing_quantity=ZERO,
    )
