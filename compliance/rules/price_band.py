"""Price band: a limit price too far from the reference price."""

from __future__ import annotations

from oms.fields import ZERO

from ..context import Context
from ..specs import HUNDRED, Candidate, RuleSpec, SecurityInfo, fmt, pct, rule_result


def evaluate(ctx: Context, spec: RuleSpec, c: Candidate, sec: SecurityInfo, index: int):
    if c.limit_price is None:
        return None
    limit = spec.dec("max_deviation_pct")
    if sec.price is None:
        return rule_result(
            spec,
            breached=True,
            message=f"{sec.symbol} has no reference price to check the limit price against.",
            limit=limit,
            max_passing_quantity=ZERO,
        )
    deviation = pct(abs(c.limit_price - sec.price) / sec.price * HUNDRED)
    breached = deviation > limit
    where = "above" if c.limit_price > sec.price else "below"
    if breached:
        message = (
            f"Limit price {fmt(c.limit_price)} is {fmt(deviation)}% {where} {sec.symbol}'s reference "
            f"price {fmt(sec.price)}; the band is {fmt(limit)}%."
        )
    else:
        message = f"Limit price {fmt(c.limit_price)} is within {fmt(limit)}% of {fmt(sec.price)}."
    return rule_result(
        spec,
        breached=breached,
        message=message,
        value_after=deviation,
        limit=limit,
        headroom=limit - deviation,
        max_passing_quantity=ZERO if breached else None,
    )
