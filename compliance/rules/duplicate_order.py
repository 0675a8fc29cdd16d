"""Duplicate order: the same order (account, security, side, quantity) twice within the
rule's window, earlier in the program included.
"""

from __future__ import annotations

from datetime import timedelta

from ..context import Context
from ..specs import Candidate, RuleSpec, SecurityInfo, fmt, rule_result


def evaluate(ctx: Context, spec: RuleSpec, c: Candidate, sec: SecurityInfo, index: int):
    window = int(spec.params["window_minutes"])
    since = ctx.as_of - timedelta(minutes=window)
    key = (c.account_id, c.security_id, c.side, c.quantity)
    same = [o for o in ctx.recent_by_key.get(key, ()) if o.received_at > since]
    if same:
        o = same[0]
        return rule_result(
            spec,
            breached=True,
            message=(
                f"Possible duplicate of order {o.id}: {o.side} {fmt(o.quantity)} {sec.symbol} "
                f"for {o.account_code} at {o.received_at:%H:%M:%S} UTC, within {window} min."
            ),
        )
    if ctx.first_index_by_key[key] < index:
        return rule_result(
            spec,
            breached=True,
            message=(
                f"Possible duplicate: this program has {c.side} {fmt(c.quantity)} "
                f"{sec.symbol} twice for {ctx.accounts[c.account_id].code}."
            ),
        )
    return rule_result(spec, breached=False, message="No duplicate order in the window.")
