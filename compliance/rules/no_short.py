"""No short sales: a sell beyond what the account holds (with its other open orders)."""

from __future__ import annotations

from oms.fields import ZERO

from ..context import Context
from ..specs import Candidate, RuleSpec, SecurityInfo, floor_lot, fmt, rule_result


def evaluate(ctx: Context, spec: RuleSpec, c: Candidate, sec: SecurityInfo, index: int):
    if c.sign > 0:
        return None
    account = ctx.accounts[c.account_id]
    key = (c.account_id, c.security_id)
    held = ctx.positions.get(key, ZERO)
    available = held - ctx.acct_open_sells.get(key, ZERO)
    after = available - ctx.prog_sells.get(key, ZERO)
    others = ctx.prog_sells.get(key, ZERO) - c.quantity
    max_q = floor_lot(available - others, sec.lot)
    if account.may_short:
        return rule_result(
            spec,
            breached=False,
            message=f"{account.code} may sell short.",
            value_before=available,
            value_after=after,
            limit=ZERO,
            headroom=after,
            max_passing_quantity=None,
        )
    breached = after < 0
    if breached:
        message = (
            f"Short sale: {account.code} has {fmt(max(available, ZERO))} {sec.symbol} available "
            f"(holds {fmt(held)}, other open sells {fmt(ctx.acct_open_sells.get(key, ZERO))}); "
            f"selling {fmt(c.quantity)} would leave it short {fmt(-after)}."
        )
    else:
        message = f"{account.code} has {fmt(available)} {sec.symbol} available to sell."
    return rule_result(
        spec,
        breached=breached,
        message=message,
        value_before=available,
        value_after=after,
        limit=ZERO,
        headroom=after,
        max_passing_quantity=max_q,
    )
