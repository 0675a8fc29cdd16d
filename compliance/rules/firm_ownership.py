"""Firm ownership: the firm's holding of a security, every account together, as a percentage
of its shares outstanding after the program, against max_pct.
"""

from __future__ import annotations

from oms.fields import ZERO

from ..context import Context
from ..specs import HUNDRED, Candidate, RuleSpec, SecurityInfo, floor_lot, fmt, pct, rule_result


def evaluate(ctx: Context, spec: RuleSpec, c: Candidate, sec: SecurityInfo, index: int):
    limit = spec.dec("max_pct")
    if sec.shares_outstanding <= 0:
        return rule_result(
            spec,
            breached=c.sign > 0,
            message=f"{sec.symbol} has no shares outstanding on file; ownership cannot be measured.",
            limit=limit,
            max_passing_quantity=ZERO if c.sign > 0 else None,
        )
    held = ctx.firm_held.get(c.security_id, ZERO)
    before_qty = held + ctx.firm_open.get(c.security_id, ZERO)
    after_qty = before_qty + ctx.firm_prog.get(c.security_id, ZERO)
    without = after_qty - c.sign * c.quantity
    so = sec.shares_outstanding
    before, after = pct(before_qty / so * HUNDRED), pct(after_qty / so * HUNDRED)
    breached = c.sign > 0 and after > limit
    cap = limit * so / HUNDRED
    max_q = floor_lot(cap - without, sec.lot) if c.sign > 0 else None
    if breached:
        message = (
            f"The firm would own {fmt(after)}% of {sec.symbol}'s shares outstanding, over the "
            f"{fmt(limit)}% threshold (before: {fmt(before)}%)."
        )
    else:
        message = f"The firm would own {fmt(after)}% of {sec.symbol}, within {fmt(limit)}%."
    return rule_result(
        spec,
        breached=breached,
        message=message,
        value_before=before,
        value_after=after,
        limit=limit,
        headroom=limit - after,
        max_passing_quantity=max_q,
    )
