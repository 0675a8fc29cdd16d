"""ADV participation: the firm's orders in a security as a percentage of its average daily
volume.
"""

from __future__ import annotations

from oms.fields import ZERO

from ..context import Context
from ..specs import HUNDRED, Candidate, RuleSpec, SecurityInfo, floor_lot, fmt, pct, rule_result


def evaluate(ctx: Context, spec: RuleSpec, c: Candidate, sec: SecurityInfo, index: int):
    limit = spec.dec("max_pct")
    if sec.adv <= 0:
        return rule_result(
            spec,
            breached=True,
            message=f"{sec.symbol} has no average daily volume on file.",
            limit=limit,
            max_passing_quantity=ZERO,
        )
    # The firm's whole interest on this side of the security: it reaches the market as one.
    side_key = (c.security_id, c.sign)
    before_qty = ctx.firm_side_open.get(side_key, ZERO)
    after_qty = before_qty + ctx.firm_side_prog.get(side_key, ZERO)
    before, after = pct(before_qty / sec.adv * HUNDRED), pct(after_qty / sec.adv * HUNDRED)
    breached = after > limit
    max_q = floor_lot(limit * sec.adv / HUNDRED - (after_qty - c.quantity), sec.lot)
    if breached:
        message = (
            f"The firm's {c.side.lower()} interest in {sec.symbol} would be {fmt(after)}% of its "
            f"average daily volume, over the {fmt(limit)}% limit."
        )
    else:
        message = f"{sec.symbol}: {fmt(after)}% of average daily volume, within {fmt(limit)}%."
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
