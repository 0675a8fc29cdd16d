"""Post-trade: which portfolios breach which rules as they stand now (no orders involved).

Only the rules that describe a holding are meaningful here: restricted holdings, issuer and
sector weights, firm ownership, short positions and negative cash. Order-level rules (size,
price band, volume, conflicts, duplicates) have nothing to measure without an order.

Weights and cash are read from the money view (positions.selectors.portfolio_snapshot), as
pre-trade reads them: every amount in the account's base currency through the FX rates table,
a bond at its dirty value. An account whose figures need a rate the table does not have is
reported with the reason (never valued at a rate of 1).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db.models import Q

from oms.fields import ZERO
from oms.models import Account
from positions.selectors import (
    MissingFxRate,
    PortfolioSnapshot,
    firm_quantities,
    portfolio_snapshot,
    position_quantities,
)

from .context import securities_of
from .models import RestrictedEntry, RuleKind
from .specs import HUNDRED, AccountInfo, RuleSpec, fmt, pct

POST_TRADE_KINDS = frozenset(
    {
        RuleKind.RESTRICTED_LIST,
        RuleKind.ISSUER_CONCENTRATION,
        RuleKind.SECTOR_CONCENTRATION,
        RuleKind.FIRM_OWNERSHIP,
        RuleKind.NO_SHORT,
        RuleKind.CASH,
    }
)


@dataclass
class Found:
    spec: RuleSpec
    account_id: int | None
    key: str
    value: Decimal | None
    limit: Decimal | None
    message: str
    security_ids: frozenset[int]


def portfolio_breaches(*, rules: list[RuleSpec], as_of: datetime) -> list[Found]:
    rules = [r for r in rules if r.kind in POST_TRADE_KINDS]
    if not rules:
        return []
    accounts: dict[int, AccountInfo] = {}
    for a in Account.objects.filter(active=True).values(
        "id", "code", "base_currency", "may_short", "is_cash_account"
    ):
        accounts[a["id"]] = AccountInfo(
            a["id"], a["code"], a["base_currency"], a["may_short"], a["is_cash_account"]
        )
    through = Account.tags.through.objects.filter(account_id__in=accounts)
    for account_id, tag_id in through.values_list("account_id", "accounttag_id"):
        accounts[account_id].tag_ids.add(tag_id)
    ids = list(accounts)
    positions = position_quantities(account_ids=ids)
    securities = securities_of({s for (_a, s) in positions})
    kinds = {r.kind for r in rules}
    snapshot = (
        portfolio_snapshot(
            account_ids=ids,
            as_of=as_of,
            with_ladder=False,
            base_currencies={pk: a.currency for pk, a in accounts.items()},
        )
        if kinds & {RuleKind.ISSUER_CONCENTRATION, RuleKind.SECTOR_CONCENTRATION, RuleKind.CASH}
        else None
    )
    by_account: dict[int, list[tuple[int, Decimal]]] = defaultdict(list)
    for (account_id, security_id), qty in positions.items():
        by_account[account_id].append((security_id, qty))
    found: list[Found] = []
    for spec in rules:
        covered = [a for a in accounts.values() if spec.covers(a)]
        if spec.kind == RuleKind.RESTRICTED_LIST:
            found += _restricted(spec, covered, by_account, securities, as_of)
        elif spec.kind in (RuleKind.ISSUER_CONCENTRATION, RuleKind.SECTOR_CONCENTRATION):
            found += _concentration(spec, covered, by_account, securities, snapshot, as_of.date())
        elif spec.kind == RuleKind.FIRM_OWNERSHIP:
            found += _ownership(spec, covered, by_account, securities)
        elif spec.kind == RuleKind.NO_SHORT:
            for a in covered:
                if a.may_short:
                    continue
                for security_id, qty in by_account[a.id]:
                    if qty < 0:
                        sym = securities[security_id].symbol
                        found.append(
                            Found(
                                spec,
                                a.id,
                                sym,
                                qty,
                                ZERO,
                                f"{a.code} is short {fmt(-qty)} {sym} and may not short.",
                                frozenset({security_id}),
                            )
                        )
        elif spec.kind == RuleKind.CASH:
            for a in covered:
                if not a.is_cash:
                    continue
                snap = snapshot.accounts[a.id]
                if snap.fx_error:
                    found.append(_unvalued(spec, a, snap.fx_error))
                    continue
                # Every currency the account holds, in its base currency: settled cash and
                # what its booked trades will still pay or receive (the cash rule's view).
                cash = snap.cash_projected
                if cash < 0:
                    found.append(
                        Found(
                            spec,
                            a.id,
                            a.currency,
                            cash,
                            ZERO,
                            f"{a.code} has negative cash: {fmt(cash)} {a.currency} "
                            "(settled and to settle, in its base currency).",
                            frozenset(),
                        )
                    )
    return found


def _unvalued(spec: RuleSpec, account: AccountInfo, reason: str) -> Found:
    """An account the rule cannot value: a rate missing from the FX rates table."""
    return Found(
        spec,
        account.id,
        "FX rate",
        None,
        None,
        f"{account.code} cannot be checked: {reason}",
        frozenset(),
    )


def _restricted(spec, covered, by_account, securities, as_of):
    day = as_of.date()
    entries = RestrictedEntry.objects.filter(start_date__lte=day).filter(
        Q(end_date__isnull=True) | Q(end_date__gte=day)
    )
    by_security = {e.security_id: e for e in entries if e.security_id}
    by_issuer = {e.issuer_id: e for e in entries if e.issuer_id}
    out = []
    for a in covered:
        for security_id, qty in by_account[a.id]:
            sec = securities[security_id]
            entry = by_security.get(security_id) or by_issuer.get(sec.issuer_id)
            if entry is not None:
                out.append(
                    Found(
                        spec,
                        a.id,
                        sec.symbol,
                        qty,
                        None,
                        f"{a.code} holds {fmt(qty)} {sec.symbol}, which is on the restricted "
                        f"list: {entry.reason} (since {entry.start_date.isoformat()})",
                        frozenset({security_id}),
                    )
                )
    return out


def _concentration(spec, covered, by_account, securities, snapshot: PortfolioSnapshot, day):
    by_issuer = spec.kind == RuleKind.ISSUER_CONCENTRATION
    limit = spec.dec("max_pct")
    sectors = spec.params.get("sectors")
    out = []
    for a in covered:
        try:
            nav = snapshot.accounts[a.id].nav
        except MissingFxRate as exc:
            out.append(_unvalued(spec, a, exc.message))
            continue
        if nav <= 0:
            continue
        exposure: dict[object, Decimal] = defaultdict(lambda: ZERO)
        members: dict[object, set[int]] = defaultdict(set)
        names: dict[object, str] = {}
        for security_id, qty in by_account[a.id]:
            sec = securities[security_id]
            if sec.price is None:
                continue
            key = sec.issuer_id if by_issuer else sec.sector
            if not by_issuer and sectors and sec.sector not in sectors:
                continue
            names[key] = sec.issuer_name if by_issuer else sec.sector
            # The dirty value in the account's base currency, as the NAV it is divided by (a
            # bond: face per 100 plus accrued; a rate missing: the NAV above said so already).
            exposure[key] += snapshot.to_base(
                a.id, qty * sec.terms.unit_value(sec.price, day), sec.currency
            )
            members[key].add(security_id)
        for key, value in exposure.items():
            weight = pct(abs(value) / nav * HUNDRED)
            if weight > limit:
                what = "issuer" if by_issuer else "sector"
                out.append(
                    Found(
                        spec,
                        a.id,
                        names[key],
                        weight,
                        limit,
                        f"{a.code} holds {fmt(weight)}% of NAV in {what} {names[key]}, over the "
                        f"{fmt(limit)}% limit.",
                        frozenset(members[key]),
                    )
                )
    return out


def _ownership(spec, covered, by_account, securities):
    limit = spec.dec("max_pct")
    held_ids = {s for a in covered for (s, _q) in by_account[a.id]}
    firm = firm_quantities(security_ids=list(held_ids))
    out = []
    for security_id, qty in firm.items():
        sec = securities.get(security_id)
        if sec is None or sec.shares_outstanding <= 0:
            continue
        share = pct(qty / sec.shares_outstanding * HUNDRED)
        if share > limit:
            out.append(
                Found(
                    spec,
                    None,
                    sec.symbol,
                    share,
                    limit,
                    f"The firm owns {fmt(share)}% of {sec.symbol}'s shares outstanding, over the "
                    f"{fmt(limit)}% threshold.",
                    frozenset({security_id}),
                )
            )
    return out
