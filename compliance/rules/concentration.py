"""Issuer and sector concentration: the account's exposure to one issuer (or sector) as a
percentage of NAV after the program, against max_pct.
"""

from __future__ import annotations

from oms.fields import ZERO

from ..context import Context, fx_unknown
from ..specs import HUNDRED, Candidate, RuleSpec, SecurityInfo, floor_lot, fmt, pct, rule_result


def _concentration(
    ctx: Context, spec: RuleSpec, c: Candidate, sec: SecurityInfo, *, by_issuer: bool
):
    if not by_issuer:
        sectors = spec.params.get("sectors")
        if sectors and sec.sector not in sectors:
            return None
    label = f"issuer {sec.issuer_name}" if by_issuer else f"sector {sec.sector}"
    limit = spec.dec("max_pct")
    if c.account_id in ctx.fx_errors:
        return fx_unknown(ctx, spec, c, limit)
    nav = ctx.nav(c.account_id)
    account = ctx.accounts[c.account_id]
    if nav <= 0:
        return rule_result(
            spec,
            breached=c.sign > 0,
            message=f"{account.code} has no positive NAV; its {label} weight cannot be measured.",
            limit=limit,
            max_passing_quantity=ZERO if c.sign > 0 else None,
        )
    if sec.price is None:
        return rule_result(
            spec,
            breached=True,
            message=f"{sec.symbol} has no reference price; its weight cannot be measured.",
            limit=limit,
            max_passing_quantity=ZERO,
        )
    key = (c.account_id, sec.issuer_id if by_issuer else sec.sector)
    before_value, after_value = (ctx.issuer_exp if by_issuer else ctx.sector_exp)[key]
    price = ctx.to_base(c.account_id, ctx.unit_value(c.security_id, sec.price), c.security_id)
    mine = ZERO if c.key in ctx.dropped else c.sign * c.quantity * price
    without = after_value - mine
    before, after = pct(abs(before_value) / nav * HUNDRED), pct(abs(after_value) / nav * HUNDRED)
    cap_value = limit * nav / HUNDRED
    increases = abs(after_value) > abs(without)
    breached = after > limit and increases
    max_q = floor_lot((cap_value - c.sign * without) / price, sec.lot)
    if breached:
        message = (
            f"{account.code} would hold {fmt(after)}% of NAV in {label}, over the {fmt(limit)}% limit "
            f"(before: {fmt(before)}%)."
        )
    elif after > limit:
        message = (
            f"{account.code} holds {fmt(after)}% of NAV in {label}, over the {fmt(limit)}% limit, "
            "but this order reduces it."
        )
    else:
        message = f"{account.code}: {label} {fmt(after)}% of NAV, within the {fmt(limit)}% limit."
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


def evaluate_issuer(ctx: Context, spec: RuleSpec, c: Candidate, sec: SecurityInfo, index: int):
    return _concentration(ctx, spec, c, sec, by_issuer=True)


def evaluate_sector(ctx: Context, spec: RuleSpec, c: Candidate, sec: SecurityInfo, index: int):
    return _concentration(ctx, spec, c, sec, by_issuer=False)
