"""Order size: one order's notional (and quantity) against the rule's maxima."""

from __future__ import annotations

from oms.fields import ZERO
from positions.selectors import MissingFxRate

from ..context import Context
from ..specs import MONEY_PLACES, Candidate, RuleSpec, SecurityInfo, floor_lot, fmt, rule_result


def evaluate(ctx: Context, spec: RuleSpec, c: Candidate, sec: SecurityInfo, index: int):
    max_qty, max_notional = spec.dec("max_quantity"), spec.dec("max_notional")
    price = ctx.order_price(c.limit_price, c.security_id)
    problems, caps = [], []
    value = limit = headroom = None
    if max_qty is not None:
        caps.append(max_qty)
        value, limit, headroom = c.quantity, max_qty, max_qty - c.quantity
        if c.quantity > max_qty:
            problems.append(f"quantity {fmt(c.quantity)} exceeds the maximum {fmt(max_qty)}")
    if max_notional is not None:
        account = ctx.accounts[c.account_id]
        unit = None
        if price is None:
            problems.append(f"{sec.symbol} has no reference price, so its notional is unknown")
        else:
            # The notional in the account's base currency: the limit is one figure whatever the
            # security's currency, and a bond's is its face per 100 plus accrued interest.
            try:
                unit = ctx.to_base(c.account_id, ctx.unit_value(c.security_id, price), sec.id)
            except MissingFxRate as exc:
                problems.append(
                    f"its notional cannot be valued in {account.currency}: {exc.message}"
                )
        if unit is None or unit <= 0:
            caps.append(ZERO)
        else:
            notional = (c.quantity * unit).quantize(MONEY_PLACES)
            caps.append(max_notional / unit)
            # Show the dimension closest to (or furthest over) its limit.
            if limit is None or notional / max_notional > c.quantity / limit:
                value, limit, headroom = notional, max_notional, max_notional - notional
            if notional > max_notional:
                problems.append(
                    f"notional {fmt(notional)} {account.currency} exceeds the maximum "
                    f"{fmt(max_notional)} {account.currency}"
                )
    max_q = floor_lot(min(caps), sec.lot)
    if problems:
        message = f"Fat finger: {sec.symbol} order " + "; ".join(problems) + "."
    else:
        message = f"{sec.symbol} order size within limits."
    return rule_result(
        spec,
        breached=bool(problems),
        message=message,
        value_after=value,
        limit=limit,
        headroom=headroom,
        max_passing_quantity=max_q,
    )
