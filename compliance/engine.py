"""The rule engine: evaluates a set of orders as one program against the rules in force.

Everything it needs is loaded set-wise up front (a fixed handful of queries, however many
orders and rules), then each (order, rule) pair is plain arithmetic over dictionaries.

Conventions every rule follows:
- "before" is the account (or firm) as it stands plus every other open order; "after" adds the
  whole program being checked (every order of the basket), so a basket is projected together.
- A value exactly at its limit passes; only strictly beyond it breaches.
- max_passing_quantity is the largest quantity of this order that would pass with everything
  else unchanged (rounded down to the lot size); None where the outcome does not depend on the
  quantity and the order passes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from .context import Context
from .models import RuleKind, Verdict
from .rules import RULES
from .specs import Candidate, RuleSpec, SecurityInfo, rules_in_force

RANK = {Verdict.PASS: 0, Verdict.WARN: 1, Verdict.BLOCK: 2}
# What a blocked sell changes (Context.index_program): the program's net quantities, cash and
# exposures. Only rules reading those can change their outcome in a later round of the fixed
# point; the others (short sale counts every sell, ADV and opposite side every order) keep
# their first result, so a round costs a few rules per order, not all of them.
ACCOUNT_PROGRAM_KINDS = frozenset(
    {RuleKind.CASH, RuleKind.ISSUER_CONCENTRATION, RuleKind.SECTOR_CONCENTRATION}
)
SECURITY_PROGRAM_KINDS = frozenset({RuleKind.FIRM_OWNERSHIP})


def _evaluate_one(ctx: Context, spec: RuleSpec, c: Candidate, sec: SecurityInfo, index: int):
    check = RULES.get(spec.kind)
    if check is None:
        raise ValueError(f"unknown rule kind {spec.kind}")
    return check(ctx, spec, c, sec, index)


def program_evaluate(
    *, candidates: list[Candidate], as_of: datetime, rules: list[RuleSpec] | None = None
) -> dict[int, tuple[str, list[dict[str, Any]]]]:
    """{candidate key: (verdict, results)} for the candidates checked as one program."""
    if not candidates:
        return {}
    return context_evaluate(program_context(candidates=candidates, as_of=as_of, rules=rules))


def program_context(
    *, candidates: list[Candidate], as_of: datetime, rules: list[RuleSpec] | None = None
) -> Context:
    """What the rules read for these candidates, loaded once: a caller that also shows figures
    of the same accounts (the ticket's review) reads them from its snapshot, not again."""
    if rules is None:
        rules = rules_in_force(as_of=as_of)
    return Context(candidates=candidates, rules=rules, as_of=as_of)


def context_evaluate(ctx: Context) -> dict[int, tuple[str, list[dict[str, Any]]]]:
    """{candidate key: (verdict, results)} for the context's candidates, as one program."""
    candidates, rules = ctx.candidates, ctx.rules
    out: dict[int, tuple[str, list[dict[str, Any]]]] = {}
    todo = list(enumerate(candidates))
    dropped: set[int] = set()
    # A blocked sell will not trade, so it may not fund a buy or offset a limit: drop what it
    # gives and check again what it touched, until no new sell is blocked (a fixed point: each
    # round only blocks more, so there are at most as many rounds as sells).
    by_account = _rules_by_account(ctx, rules)
    first_round = True  # every rule; later rounds only those a blocked sell can change
    while todo:
        for index, c in todo:
            if first_round:
                out[c.key] = _evaluate_candidate(ctx, by_account[c.account_id], c, index)
            else:
                out[c.key] = _evaluate_again(ctx, by_account[c.account_id], c, index, out[c.key])
        newly = {
            c.key
            for c in candidates
            if c.sign < 0 and c.key not in dropped and out[c.key][0] == Verdict.BLOCK
        }
        if not newly:
            break
        dropped |= newly
        ctx.index_program(blocked=dropped)
        accounts = {c.account_id for c in candidates if c.key in newly}
        securities = {c.security_id for c in candidates if c.key in newly}
        first_round = False
        todo = [
            (index, c)
            for index, c in enumerate(candidates)
            if c.key not in dropped and (c.account_id in accounts or c.security_id in securities)
        ]
    return out


def _rules_by_account(ctx: Context, rules: list[RuleSpec]) -> dict[int, list[RuleSpec]]:
    """The rules covering each account, in rule order: worked out once per account, not once
    per order."""
    return {
        account_id: [spec for spec in rules if spec.covers(account)]
        for account_id, account in ctx.accounts.items()
    }


def _evaluate_candidate(
    ctx: Context, rules: list[RuleSpec], c: Candidate, index: int
) -> tuple[str, list[dict[str, Any]]]:
    """Every rule covering the candidate's account (`rules`), in order."""
    sec = ctx.securities[c.security_id]
    results = []
    for spec in rules:
        result = _evaluate_one(ctx, spec, c, sec, index)
        if result is not None:
            results.append(result)
    return _verdict(results), results


def _evaluate_again(
    ctx: Context,
    rules: list[RuleSpec],
    c: Candidate,
    index: int,
    previous: tuple[str, list[dict[str, Any]]],
) -> tuple[str, list[dict[str, Any]]]:
    """A later round of the fixed point: only the rules reading the program's net figures are
    evaluated again; every other result stands (same order as the first round)."""
    sec = ctx.securities[c.security_id]
    kept = {r["rule_id"]: r for r in previous[1]}
    results = []
    for spec in rules:
        if spec.kind in ACCOUNT_PROGRAM_KINDS or spec.kind in SECURITY_PROGRAM_KINDS:
            result = _evaluate_one(ctx, spec, c, sec, index)
        else:
            result = kept.get(spec.rule_id)
        if result is not None:
            results.append(result)
    return _verdict(results), results


def _verdict(results: list[dict[str, Any]]) -> str:
    rank = max((RANK[r["outcome"]] for r in results), default=0)
    return str((Verdict.PASS, Verdict.WARN, Verdict.BLOCK)[rank])
