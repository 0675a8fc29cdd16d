"""The rule kinds: one module per kind, each behind one small interface, registered in RULES.

A rule kind's check is `evaluate(ctx, spec, c, sec, index) -> dict | None`: the candidate order
`c` (the `index`-th of the program being checked; `sec` its security) against the rule version
`spec`, reading only the set-wise loaded `ctx` (compliance.context). It returns the result
written with `compliance.specs.rule_result` (the outcome, the message that explains it, the
figures before and after, the limit, the headroom and the largest quantity that would pass),
or None when the rule does not apply to this order. A new kind is a module here and a line in
RULES.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..context import Context
from ..models import RuleKind
from ..specs import Candidate, RuleSpec, SecurityInfo
from . import (
    adv_participation,
    cash,
    concentration,
    duplicate_order,
    firm_ownership,
    no_short,
    opposite_side,
    order_size,
    price_band,
    restricted_list,
)

RuleCheck = Callable[[Context, RuleSpec, Candidate, SecurityInfo, int], dict[str, Any] | None]

RULES: dict[str, RuleCheck] = {
    RuleKind.RESTRICTED_LIST: restricted_list.evaluate,
    RuleKind.ISSUER_CONCENTRATION: concentration.evaluate_issuer,
    RuleKind.SECTOR_CONCENTRATION: concentration.evaluate_sector,
    RuleKind.FIRM_OWNERSHIP: firm_ownership.evaluate,
    RuleKind.ORDER_SIZE: order_size.evaluate,
    RuleKind.PRICE_BAND: price_band.evaluate,
    RuleKind.ADV_PARTICIPATION: adv_participation.evaluate,
    RuleKind.NO_SHORT: no_short.evaluate,
    RuleKind.CASH: cash.evaluate,
    RuleKind.OPPOSITE_SIDE: opposite_side.evaluate,
    RuleKind.DUPLICATE_ORDER: duplicate_order.evaluate,
}
