"""Opposite side: a buy and a sell of one security open at once (in the account or the firm)."""

from __future__ import annotations

from oms.fields import ZERO

from ..context import Context
from ..specs import Candidate, RuleSpec, SecurityInfo, fmt, rule_result


def evaluate(ctx: Context, spec: RuleSpec, c: Candidate, sec: SecurityInfo, index: int):
    # (named, by another PM): another PM's order is named only in `detail`, which the desk and
    # compliance read; the message a PM reads says no more than that one exists.
    conflicts = [
        (
            f"order {o.id} ({o.account_code}, {o.pm_name}: {o.side} {fmt(o.remaining)})",
            o.pm_id != c.pm_id,
        )
        for o in ctx.open_by_security.get(c.security_id, ())
        if o.sign != c.sign and (o.account_id != c.account_id or o.pm_id != c.pm_id)
    ]
    conflicts += [
        (
            f"order {o.order_id or 'in this program'} ({ctx.accounts[o.account_id].code}: "
            f"{o.side} {fmt(o.quantity)})",
            o.pm_id != c.pm_id,
        )
        for o in ctx.cand_by_security.get(c.security_id, ())
        if o.sign != c.sign and (o.account_id != c.account_id or o.pm_id != c.pm_id)
    ]
    if not conflicts:
        return rule_result(
            spec, breached=False, message=f"No opposite-side orders in {sec.symbol}."
        )
    more = f" and {len(conflicts) - 1} more" if len(conflicts) > 1 else ""
    detail = (
        f"Opposite-side conflict in {sec.symbol}: {conflicts[0][0]}{more} is open on the "
        "other side."
    )
    own = [named for named, by_other in conflicts if not by_other]
    if len(own) == len(conflicts):
        message = detail
    elif own:
        message = (
            f"Opposite-side conflict in {sec.symbol}: {own[0]} is open on the other side, and "
            "another portfolio manager has an order open on the other side."
        )
    else:
        message = (
            f"Opposite-side conflict in {sec.symbol}: another portfolio manager has an order "
            "open on the other side."
        )
    return rule_result(
        spec, breached=True, message=message, max_passing_quantity=ZERO, detail=detail
    )
