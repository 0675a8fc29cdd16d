"""Cash: a buy needs the account's available cash (projected cash less what its other buys
and the program commit).
"""

from __future__ import annotations

from oms.fields import ZERO

from ..context import Context, fx_unknown
from ..specs import MONEY_PLACES, Candidate, RuleSpec, SecurityInfo, floor_lot, fmt, rule_result


def evaluate(ctx: Context, spec: RuleSpec, c: Candidate, sec: SecurityInfo, index: int):
    account = ctx.accounts[c.account_id]
    if c.sign < 0 or not account.is_cash:
        return None
    price = ctx.order_price(c.limit_price, c.security_id)
    if price is None:
        return rule_result(
            spec,
            breached=True,
            message=f"{sec.symbol} has no reference price; the cash this buy needs is unknown.",
            limit=ZERO,
            max_passing_quantity=ZERO,
        )
    if c.account_id in ctx.fx_errors:
        return fx_unknown(ctx, spec, c, ZERO)
    # Projected cash (settled plus every trade still to settle) less what the account's other
    # open buys will take: a filled buy has spent its money even before it settles.
    available = ctx.snapshot.accounts[c.account_id].cash_available
    after = (available + ctx.prog_cash.get(c.account_id, ZERO)).quantize(MONEY_PLACES)
    unit_price = ctx.unit_value(c.security_id, price)
    needed = ctx.to_base(c.account_id, c.quantity * unit_price, c.security_id).quantize(
        MONEY_PLACES
    )
    unit = needed / c.quantity
    max_q = floor_lot((after + needed) / unit, sec.lot) if unit > 0 else ZERO
    breached = after < 0
    ccy = account.currency
    # A blocked sell funds nothing: say so, or the figures look wrong against the basket.
    unfunded = (
        " (blocked sells in this program fund nothing)" if c.account_id in ctx.blocked_sells else ""
    )
    if breached:
        message = (
            f"{account.code} has {fmt(available.quantize(MONEY_PLACES))} {ccy} available after "
            f"unsettled trades and other open buys; this buy ({fmt(needed)} {ccy}) and the rest "
            f"of the program{unfunded} would leave it short {fmt(-after)} {ccy}."
        )
    else:
        message = f"{account.code} has the cash: {fmt(after)} {ccy} left after it{unfunded}."
    return rule_result(
        spec,
        breached=breached,
        message=message,
        value_before=available.quantize(MONEY_PLACES),
        value_after=after,
        limit=ZERO,
        headroom=after,
        max_passing_quantity=max_q,
    )
