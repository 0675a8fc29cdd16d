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

import functools
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from typing import Any

from django.contrib.postgres.aggregates import ArrayAgg
from django.db.models import Q

from oms.fields import ZERO
from oms.models import Account, Security
from oms.money import PLAIN, Terms
from orders.lifecycle import OPEN, OrderStatus
from orders.models import BUY_SIDES, Order
from positions.selectors import MissingFxRate, firm_quantities, portfolio_snapshot

from .models import RestrictedEntry, Rule, RuleKind, Scope, Severity, Verdict

HUNDRED = Decimal(100)
PCT_PLACES = Decimal("0.0001")
MONEY_PLACES = Decimal("0.01")
FIRM_WIDE_KINDS = frozenset(
    {RuleKind.FIRM_OWNERSHIP, RuleKind.OPPOSITE_SIDE, RuleKind.ADV_PARTICIPATION}
)
RANK = {Verdict.PASS: 0, Verdict.WARN: 1, Verdict.BLOCK: 2}
# What a blocked sell changes (Context.index_program): the program's net quantities, cash and
# exposures. Only rules reading those can change their outcome in a later round of the fixed
# point; the others (short sale counts every sell, ADV and opposite side every order) keep
# their first result, so a round costs a few rules per order, not all of them.
ACCOUNT_PROGRAM_KINDS = frozenset(
    {RuleKind.CASH, RuleKind.ISSUER_CONCENTRATION, RuleKind.SECTOR_CONCENTRATION}
)
SECURITY_PROGRAM_KINDS = frozenset({RuleKind.FIRM_OWNERSHIP})


@dataclass(frozen=True)
class Candidate:
    """An order being checked: saved (order_id) or a what-if (order_id None)."""

    key: int
    account_id: int
    security_id: int
    side: str
    quantity: Decimal
    order_type: str = "MARKET"
    limit_price: Decimal | None = None
    pm_id: int | None = None
    order_id: int | None = None

    @property
    def sign(self) -> int:
        return 1 if self.side in BUY_SIDES else -1


@dataclass(frozen=True)
class RuleSpec:
    """A rule as its current version froze it."""

    rule_id: int
    version_id: int
    number: int
    name: str
    kind: str
    params: dict[str, Any]
    scope: str
    account_ids: frozenset[int]
    tag_id: int | None
    severity: str
    active: bool
    effective_from: date | None
    effective_to: date | None

    @classmethod
    def from_snapshot(cls, *, rule_id: int, version_id: int, number: int, snap: dict):
        return cls(
            rule_id=rule_id,
            version_id=version_id,
            number=number,
            name=snap["name"],
            kind=snap["kind"],
            params=snap.get("parameters") or {},
            scope=snap["scope"],
            account_ids=frozenset(snap.get("account_ids") or ()),
            tag_id=snap.get("tag_id"),
            severity=snap["severity"],
            active=snap["active"],
            effective_from=date.fromisoformat(snap["effective_from"])
            if snap.get("effective_from")
            else None,
            effective_to=date.fromisoformat(snap["effective_to"])
            if snap.get("effective_to")
            else None,
        )

    def in_force(self, day: date) -> bool:
        if not self.active:
            return False
        if self.effective_from and day < self.effective_from:
            return False
        return not (self.effective_to and day > self.effective_to)

    def covers(self, account: AccountInfo) -> bool:
        if self.scope == Scope.ALL:
            return True
        if self.scope == Scope.ACCOUNTS:
            return account.id in self.account_ids
        return self.tag_id is not None and self.tag_id in account.tag_ids

    def dec(self, name: str) -> Decimal | None:
        raw = self.params.get(name)
        return _param_decimal(str(raw)) if raw is not None else None


@functools.lru_cache(maxsize=1024)
def _param_decimal(raw: str) -> Decimal:
    # A rule's limits are read for every order it checks: parse each distinct text once.
    return Decimal(raw)


@dataclass
class AccountInfo:
    id: int
    code: str
    currency: str
    may_short: bool
    is_cash: bool
    tag_ids: set[int] = field(default_factory=set)


@dataclass
class SecurityInfo:
    id: int
    symbol: str
    issuer_id: int
    issuer_name: str
    sector: str
    price: Decimal | None
    lot: Decimal
    shares_outstanding: Decimal
    adv: Decimal
    currency: str = "USD"
    terms: Terms = PLAIN


@dataclass
class OpenOrder:
    id: int
    account_id: int
    security_id: int
    side: str
    remaining: Decimal
    quantity: Decimal
    limit_price: Decimal | None
    pm_id: int
    account_code: str
    pm_name: str
    received_at: datetime
    status: str

    @property
    def sign(self) -> int:
        return 1 if self.side in BUY_SIDES else -1


def fmt(value: Decimal | None) -> str | None:
    """Decimal as a plain string (no exponent, no trailing zeros)."""
    if value is None:
        return None
    if not value:
        return "0"
    # A result carries up to seven figures and a program has hundreds of thousands of
    # results: the integral case (quantities, most limits) skips the string surgery.
    if value == value.to_integral_value():
        return str(int(value))
    return format(value, "f").rstrip("0")


def pct(value: Decimal) -> Decimal:
    return value.quantize(PCT_PLACES)


def floor_lot(quantity: Decimal, lot: Decimal) -> Decimal:
    if quantity <= 0:
        return ZERO
    lot = lot if lot > 0 else Decimal(1)
    return (quantity / lot).to_integral_value(rounding=ROUND_FLOOR) * lot


def rules_in_force(*, as_of: datetime, rule_ids: list[int] | None = None) -> list[RuleSpec]:
    """The current version of every rule in force on as_of's date (one query)."""
    qs = Rule.objects.select_related("current_version").exclude(current_version=None)
    if rule_ids is not None:
        qs = qs.filter(pk__in=rule_ids)
    day = as_of.date()
    specs = []
    for rule in qs.order_by("pk"):
        v = rule.current_version
        spec = RuleSpec.from_snapshot(
            rule_id=rule.pk, version_id=v.pk, number=v.number, snap=v.snapshot
        )
        if spec.in_force(day):
            specs.append(spec)
    return specs


def _accounts(account_ids: set[int]) -> dict[int, AccountInfo]:
    # The tags come with the account (one query: a single check runs a dozen, each counts).
    rows = (
        Account.objects.filter(pk__in=account_ids)
        .order_by()
        .annotate(tag_ids=ArrayAgg("tags__id", filter=Q(tags__isnull=False), default=[]))
        .values_list("id", "code", "base_currency", "may_short", "is_cash_account", "tag_ids")
    )
    return {
        pk: AccountInfo(
            id=pk, code=code, currency=base, may_short=short, is_cash=cash, tag_ids=set(tags)
        )
        for pk, code, base, short, cash, tags in rows
    }


def _securities(security_ids: set[int]) -> dict[int, SecurityInfo]:
    rows = Security.objects.filter(pk__in=security_ids).values_list(
        "id",
        "symbol",
        "issuer_id",
        "issuer__name",
        "sector",
        "reference_price",
        "lot_size",
        "shares_outstanding",
        "avg_daily_volume",
        "currency",
        *Terms.FIELDS,
    )
    return {r[0]: SecurityInfo(*r[:10], terms=Terms.from_values(*r[10:])) for r in rows}


# The columns an OpenOrder is read from, and the reading (remaining = quantity - cum_qty).
_ORDER_ROW = (
    "id",
    "account_id",
    "security_id",
    "side",
    "quantity",
    "cum_qty",
    "limit_price",
    "pm_id",
    "account__code",
    "pm__username",
    "received_at",
    "status",
)


def _open_order(r: tuple) -> OpenOrder:
    return OpenOrder(
        id=r[0],
        account_id=r[1],
        security_id=r[2],
        side=r[3],
        remaining=r[4] - r[5],
        quantity=r[4],
        limit_price=r[6],
        pm_id=r[7],
        account_code=r[8],
        pm_name=r[9],
        received_at=r[10],
        status=r[11],
    )


NEVER_WERE = frozenset({OrderStatus.REJECTED, OrderStatus.CANCELLED})


def _other_orders(
    *,
    account_ids: set[int],
    security_ids: set[int],
    exclude_ids: set[int],
    firm_wide: bool,
    window: tuple[datetime, datetime] | None,
) -> tuple[list[OpenOrder], list[OpenOrder]]:
    """(open orders, recent orders) other than the ones being checked, in one query: the open
    orders of the accounts, or with firm_wide of anyone in the securities; and for the
    duplicate rule, the accounts' orders received in the window (since, until], filled or
    working, except ones that never were (an order exactly `window` old is not a duplicate)."""
    where = Q()
    if firm_wide:
        where |= Q(account_id__in=account_ids, status__in=OPEN)
        where |= Q(security_id__in=security_ids, status__in=OPEN)
    if window is not None:
        since, until = window
        where |= Q(account_id__in=account_ids, received_at__gt=since, received_at__lte=until)
    if not where:
        return [], []
    open_orders, recent = [], []
    # The orders being checked are left out here rather than in SQL: a NOT IN of thousands of
    # ids costs more than skipping them. Newest first (the model's order): a conflict names the
    # latest order.
    for r in Order.objects.filter(where).values_list(*_ORDER_ROW):
        if r[0] in exclude_ids:
            continue
        order = _open_order(r)
        if firm_wide and order.status in OPEN and order.remaining > 0:
            open_orders.append(order)
        if (
            window is not None
            and order.account_id in account_ids
            and window[0] < order.received_at <= window[1]
            and order.status not in NEVER_WERE
        ):
            recent.append(order)
    return open_orders, recent


class Context:
    """Everything the rules read about the accounts, securities and orders involved."""

    def __init__(self, *, candidates: list[Candidate], rules: list[RuleSpec], as_of: datetime):
        self.as_of = as_of
        self._unit_values: dict[tuple[int, Decimal], Decimal] = {}
        self.candidates = candidates
        self.rules = rules
        kinds = {r.kind for r in rules}
        account_ids = {c.account_id for c in candidates}
        security_ids = {c.security_id for c in candidates}
        exclude = {c.order_id for c in candidates if c.order_id is not None}
        self.accounts = _accounts(account_ids)
        self.needs_holdings = needs_holdings = bool(
            kinds & {RuleKind.ISSUER_CONCENTRATION, RuleKind.SECTOR_CONCENTRATION}
        )
        # Every per-account figure (holdings, cash with unsettled trades, open orders'
        # commitments, NAV, all in the account's base currency) comes from the money view.
        self.snapshot = portfolio_snapshot(
            account_ids=list(account_ids),
            as_of=as_of,
            exclude_order_ids=exclude,
            with_ladder=False,
            base_currencies={a.id: a.currency for a in self.accounts.values()},
        )
        self.positions = {
            (a, sec): q
            for a, snap in self.snapshot.accounts.items()
            for sec, q in snap.holdings.items()
        }
        windows = [
            int(r.params.get("window_minutes", 0))
            for r in rules
            if r.kind == RuleKind.DUPLICATE_ORDER
        ]
        # The accounts' own open orders are in the snapshot; only firm-wide rules need the
        # other accounts' orders (and each order's owner), and the duplicate rule the recent.
        self.open_orders, self.recent = _other_orders(
            account_ids=account_ids,
            security_ids=security_ids,
            exclude_ids=exclude,
            firm_wide=bool(kinds & FIRM_WIDE_KINDS),
            window=(as_of - timedelta(minutes=max(windows)), as_of) if windows else None,
        )
        held = {s for (_a, s) in self.positions} if needs_holdings else set()
        opened = {
            sec
            for snap in self.snapshot.accounts.values()
            for sec in (*snap.open_buys, *snap.open_sells)
        }
        self.securities = _securities(
            security_ids | held | opened | {o.security_id for o in self.open_orders}
        )
        self.firm_held = (
            firm_quantities(security_ids=list(security_ids))
            if RuleKind.FIRM_OWNERSHIP in kinds
            else {}
        )
        self.restricted = self._restricted() if RuleKind.RESTRICTED_LIST in kinds else {}
        self._index()

    def _restricted(self) -> dict[tuple[str, int], list[RestrictedEntry]]:
        day = self.as_of.date()
        issuers = {self.securities[c.security_id].issuer_id for c in self.candidates}
        entries = RestrictedEntry.objects.filter(
            Q(security_id__in={c.security_id for c in self.candidates}) | Q(issuer_id__in=issuers),
            start_date__lte=day,
        ).filter(Q(end_date__isnull=True) | Q(end_date__gte=day))
        out: dict[tuple[str, int], list[RestrictedEntry]] = defaultdict(list)
        for e in entries.order_by("start_date", "pk"):
            if e.security_id:
                out[("security", e.security_id)].append(e)
            else:
                out[("issuer", e.issuer_id)].append(e)
        return out

    def price(self, security_id: int) -> Decimal | None:
        return self.securities[security_id].price

    def order_price(self, side_limit: Decimal | None, security_id: int) -> Decimal | None:
        return side_limit if side_limit is not None else self.price(security_id)

    def unit_value(self, security_id: int, price: Decimal) -> Decimal:
        """What one unit of quantity is worth at `price` (a quoted price) in the security's
        currency: a bond's quantity is face quoted per 100, plus accrued interest to as_of's
        date (the dirty value); a contract's price times its multiplier (oms.money.Terms)."""
        terms = self.securities[security_id].terms
        if terms is PLAIN:
            return price
        key = (security_id, price)
        value = self._unit_values.get(key)
        if value is None:
            value = self._unit_values[key] = terms.unit_value(price, self.as_of.date())
        return value

    def _index(self) -> None:
        """Sums the rules look up: per security, what the firm's other open orders will do."""
        firm_open: dict[int, Decimal] = defaultdict(lambda: ZERO)
        firm_side_open: dict[tuple[int, int], Decimal] = defaultdict(lambda: ZERO)
        by_security: dict[int, list[OpenOrder]] = defaultdict(list)
        for o in self.open_orders:
            firm_open[o.security_id] += o.sign * o.remaining
            firm_side_open[(o.security_id, o.sign)] += o.remaining
            by_security[o.security_id].append(o)
        self.acct_open: dict[tuple[int, int], Decimal] = {}
        self.acct_open_sells: dict[tuple[int, int], Decimal] = {}
        for account_id, snap in self.snapshot.accounts.items():
            for security_id, q in snap.open_buys.items():
                self.acct_open[(account_id, security_id)] = q
            for security_id, q in snap.open_sells.items():
                key = (account_id, security_id)
                self.acct_open[key] = self.acct_open.get(key, ZERO) - q
                self.acct_open_sells[key] = q
        self.firm_open, self.firm_side_open = firm_open, firm_side_open
        self.open_by_security = by_security
        self.recent_by_key: dict[tuple, list[OpenOrder]] = defaultdict(list)
        for o in self.recent:
            self.recent_by_key[(o.account_id, o.security_id, o.side, o.quantity)].append(o)
        self.first_index_by_key: dict[tuple, int] = {}
        for index, c in enumerate(self.candidates):
            self.first_index_by_key.setdefault(
                (c.account_id, c.security_id, c.side, c.quantity), index
            )
        self.index_program(blocked=set())

    def to_base(self, account_id: int, amount: Decimal, security_id: int) -> Decimal:
        """A value in the security's currency, in the account's base currency."""
        return self.snapshot.to_base(account_id, amount, self.securities[security_id].currency)

    def index_program(self, *, blocked: set[int]) -> None:
        """What the program adds, per account and security and per account's cash. A blocked
        sell will not trade: its proceeds fund no buy and its quantity offsets no limit (it
        still counts against what may be sold, and a blocked buy still counts everywhere, so
        each round can only block more and the rounds reach a fixed point)."""
        prog: dict[tuple[int, int], Decimal] = defaultdict(lambda: ZERO)
        prog_sells: dict[tuple[int, int], Decimal] = defaultdict(lambda: ZERO)
        prog_cash: dict[int, Decimal] = defaultdict(lambda: ZERO)
        firm_prog: dict[int, Decimal] = defaultdict(lambda: ZERO)
        firm_side_prog: dict[tuple[int, int], Decimal] = defaultdict(lambda: ZERO)
        cand_by_security: dict[int, list[Candidate]] = defaultdict(list)
        self.fx_errors: dict[int, str] = {
            a: snap.fx_error for a, snap in self.snapshot.accounts.items() if snap.fx_error
        }
        for c in self.candidates:
            key = (c.account_id, c.security_id)
            firm_side_prog[(c.security_id, c.sign)] += c.quantity
            cand_by_security[c.security_id].append(c)
            if c.sign < 0:
                prog_sells[key] += c.quantity
            if c.sign < 0 and c.key in blocked:
                continue
            prog[key] += c.sign * c.quantity
            firm_prog[c.security_id] += c.sign * c.quantity
            price = self.order_price(c.limit_price, c.security_id)
            if price is not None:
                try:
                    prog_cash[c.account_id] -= self.to_base(
                        c.account_id,
                        c.sign * c.quantity * self.unit_value(c.security_id, price),
                        c.security_id,
                    )
                except MissingFxRate as exc:
                    self.fx_errors.setdefault(c.account_id, exc.message)
        self.prog, self.prog_sells, self.prog_cash = prog, prog_sells, prog_cash
        self.firm_prog, self.firm_side_prog = firm_prog, firm_side_prog
        self.cand_by_security = cand_by_security
        self.dropped = {c.key for c in self.candidates if c.sign < 0 and c.key in blocked}
        self.blocked_sells = {c.account_id for c in self.candidates if c.key in self.dropped}
        # Exposure per (account, issuer) and (account, sector) in the account's base currency,
        # before and after the program.
        self.issuer_exp: dict[tuple[int, int], list[Decimal]] = defaultdict(lambda: [ZERO, ZERO])
        self.sector_exp: dict[tuple[int, str], list[Decimal]] = defaultdict(lambda: [ZERO, ZERO])
        self.unpriced: dict[int, set[int]] = defaultdict(set)
        if not self.needs_holdings:
            return
        for account_id, security_id in set(self.positions) | set(self.acct_open) | set(prog):
            if account_id not in self.accounts:
                continue
            sec = self.securities[security_id]
            before = self.positions.get((account_id, security_id), ZERO) + self.acct_open.get(
                (account_id, security_id), ZERO
            )
            after = before + prog.get((account_id, security_id), ZERO)
            if sec.price is None:
                if before or after:
                    self.unpriced[account_id].add(security_id)
                continue
            try:
                price = self.to_base(
                    account_id, self.unit_value(security_id, sec.price), security_id
                )
            except MissingFxRate as exc:
                self.fx_errors.setdefault(account_id, exc.message)
                continue
            for table, k in (
                (self.issuer_exp, (account_id, sec.issuer_id)),
                (self.sector_exp, (account_id, sec.sector)),
            ):
                table[k][0] += before * price
                table[k][1] += after * price

    def nav(self, account_id: int) -> Decimal:
        snap = self.snapshot.accounts.get(account_id)
        return ZERO if snap is None or snap.fx_error else snap.nav


def _result(
    spec: RuleSpec,
    *,
    breached: bool,
    message: str,
    value_before: Decimal | None = None,
    value_after: Decimal | None = None,
    limit: Decimal | None = None,
    headroom: Decimal | None = None,
    max_passing_quantity: Decimal | None = None,
    detail: str | None = None,
) -> dict[str, Any]:
    outcome = (
        (Verdict.BLOCK if spec.severity == Severity.BLOCK else Verdict.WARN)
        if breached
        else Verdict.PASS
    )
    result = {
        "rule": spec.name,
        "rule_id": spec.rule_id,
        "version": spec.number,
        "rule_version_id": spec.version_id,
        "kind": spec.kind,
        "severity": spec.severity,
        "outcome": str(outcome),
        "message": message,
        "value_before": fmt(value_before),
        "value_after": fmt(value_after),
        "limit": fmt(limit),
        "headroom": fmt(headroom),
        "max_passing_quantity": fmt(max_passing_quantity),
    }
    if detail is not None:
        # What the desk and compliance read in place of the message (see results_for_viewer).
        result["detail"] = detail
    return result


# --- the eleven kinds -------------------------------------------------------------------------


def _restricted_list(ctx: Context, spec: RuleSpec, c: Candidate, sec: SecurityInfo):
    sides = spec.params.get("sides")
    if sides and c.side not in sides:
        return None
    entries = ctx.restricted.get(("security", c.security_id), []) + ctx.restricted.get(
        ("issuer", sec.issuer_id), []
    )
    if not entries:
        return _result(
            spec,
            breached=False,
            message=f"{sec.symbol} is not on the restricted list.",
        )
    e = entries[0]
    what = sec.symbol if e.security_id else f"{sec.symbol} (issuer {sec.issuer_name})"
    until = f" until {e.end_date.isoformat()}" if e.end_date else ""
    return _result(
        spec,
        breached=True,
        message=(
            f"{what} is on the restricted list: {e.reason} "
            f"(since {e.start_date.isoformat()}{until})"
        ),
        max_passing_quantity=ZERO,
    )


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
        return _fx_unknown(ctx, spec, c, limit)
    nav = ctx.nav(c.account_id)
    account = ctx.accounts[c.account_id]
    if nav <= 0:
        return _result(
            spec,
            breached=c.sign > 0,
            message=f"{account.code} has no positive NAV; its {label} weight cannot be measured.",
            limit=limit,
            max_passing_quantity=ZERO if c.sign > 0 else None,
        )
    if sec.price is None:
        return _result(
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
    return _result(
        spec,
        breached=breached,
        message=message,
        value_before=before,
        value_after=after,
        limit=limit,
        headroom=limit - after,
        max_passing_quantity=max_q,
    )


def _firm_ownership(ctx: Context, spec: RuleSpec, c: Candidate, sec: SecurityInfo):
    limit = spec.dec("max_pct")
    if sec.shares_outstanding <= 0:
        return _result(
            spec,
            breached=c.sign > 0,
            message=f"{sec.symbol} has no shares outstanding on file; ownership cannot be measured.",
            limit=limit,
            max_passing_quantity=ZERO if c.sign > 0 else None,
        )
    held = ctx.firm_held.get(c.security_id, ZERO)
    before_qty = held + ctx.firm_open.get(c.security_id, ZERO)
    after_qty = before_qty + ctx.firm_prog.get(c.security_id, ZERO)
    without = after_qty - c.sign * c.quantity
    so = sec.shares_outstanding
    before, after = pct(before_qty / so * HUNDRED), pct(after_qty / so * HUNDRED)
    breached = c.sign > 0 and after > limit
    cap = limit * so / HUNDRED
    max_q = floor_lot(cap - without, sec.lot) if c.sign > 0 else None
    if breached:
        message = (
            f"The firm would own {fmt(after)}% of {sec.symbol}'s shares outstanding, over the "
            f"{fmt(limit)}% threshold (before: {fmt(before)}%)."
        )
    else:
        message = f"The firm would own {fmt(after)}% of {sec.symbol}, within {fmt(limit)}%."
    return _result(
        spec,
        breached=breached,
        message=message,
        value_before=before,
        value_after=after,
        limit=limit,
        headroom=limit - after,
        max_passing_quantity=max_q,
    )


def _order_size(ctx: Context, spec: RuleSpec, c: Candidate, sec: SecurityInfo):
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
    return _result(
        spec,
        breached=bool(problems),
        message=message,
        value_after=value,
        limit=limit,
        headroom=headroom,
        max_passing_quantity=max_q,
    )


def _price_band(ctx: Context, spec: RuleSpec, c: Candidate, sec: SecurityInfo):
    if c.limit_price is None:
        return None
    limit = spec.dec("max_deviation_pct")
    if sec.price is None:
        return _result(
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
    return _result(
        spec,
        breached=breached,
        message=message,
        value_after=deviation,
        limit=limit,
        headroom=limit - deviation,
        max_passing_quantity=ZERO if breached else None,
    )


def _adv(ctx: Context, spec: RuleSpec, c: Candidate, sec: SecurityInfo):
    limit = spec.dec("max_pct")
    if sec.adv <= 0:
        return _result(
            spec,
            breached=True,
            message=f"{sec.symbol} has no average daily volume on file.",
            limit=limit,
            max_passing_quantity=ZERO,
        )
    # The firm's whole interest on this side of the security: it reaches the market as one.
    side_key = (c.security_id, c.sign)
    before_qty = ctx.firm_side_open.get(side_key, ZERO)
    after_qty = before_qty + ctx.firm_side_prog.get(side_key, ZERO)
    before, after = pct(before_qty / sec.adv * HUNDRED), pct(after_qty / sec.adv * HUNDRED)
    breached = after > limit
    max_q = floor_lot(limit * sec.adv / HUNDRED - (after_qty - c.quantity), sec.lot)
    if breached:
        message = (
            f"The firm's {c.side.lower()} interest in {sec.symbol} would be {fmt(after)}% of its "
            f"average daily volume, over the {fmt(limit)}% limit."
        )
    else:
        message = f"{sec.symbol}: {fmt(after)}% of average daily volume, within {fmt(limit)}%."
    return _result(
        spec,
        breached=breached,
        message=message,
        value_before=before,
        value_after=after,
        limit=limit,
        headroom=limit - after,
        max_passing_quantity=max_q,
    )


def _no_short(ctx: Context, spec: RuleSpec, c: Candidate, sec: SecurityInfo):
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
        return _result(
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
    return _result(
        spec,
        breached=breached,
        message=message,
        value_before=available,
        value_after=after,
        limit=ZERO,
        headroom=after,
        max_passing_quantity=max_q,
    )


def _cash(ctx: Context, spec: RuleSpec, c: Candidate, sec: SecurityInfo):
    account = ctx.accounts[c.account_id]
    if c.sign < 0 or not account.is_cash:
        return None
    price = ctx.order_price(c.limit_price, c.security_id)
    if price is None:
        return _result(
            spec,
            breached=True,
            message=f"{sec.symbol} has no reference price; the cash this buy needs is unknown.",
            limit=ZERO,
            max_passing_quantity=ZERO,
        )
    if c.account_id in ctx.fx_errors:
        return _fx_unknown(ctx, spec, c, ZERO)
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
    return _result(
        spec,
        breached=breached,
        message=message,
        value_before=available.quantize(MONEY_PLACES),
        value_after=after,
        limit=ZERO,
        headroom=after,
        max_passing_quantity=max_q,
    )


def _fx_unknown(ctx: Context, spec: RuleSpec, c: Candidate, limit: Decimal | None):
    """A figure that needs a missing FX rate blocks with the reason, never converts at 1."""
    account = ctx.accounts[c.account_id]
    return _result(
        spec,
        breached=True,
        message=f"{account.code} cannot be valued in {account.currency}: {ctx.fx_errors[c.account_id]}",
        limit=limit,
        max_passing_quantity=ZERO,
    )


def _opposite_side(ctx: Context, spec: RuleSpec, c: Candidate, sec: SecurityInfo):
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
        return _result(spec, breached=False, message=f"No opposite-side orders in {sec.symbol}.")
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
    return _result(spec, breached=True, message=message, max_passing_quantity=ZERO, detail=detail)


def _duplicate(ctx: Context, spec: RuleSpec, c: Candidate, sec: SecurityInfo, index: int):
    window = int(spec.params["window_minutes"])
    since = ctx.as_of - timedelta(minutes=window)
    key = (c.account_id, c.security_id, c.side, c.quantity)
    same = [o for o in ctx.recent_by_key.get(key, ()) if o.received_at > since]
    if same:
        o = same[0]
        return _result(
            spec,
            breached=True,
            message=(
                f"Possible duplicate of order {o.id}: {o.side} {fmt(o.quantity)} {sec.symbol} "
                f"for {o.account_code} at {o.received_at:%H:%M:%S} UTC, within {window} min."
            ),
        )
    if ctx.first_index_by_key[key] < index:
        return _result(
            spec,
            breached=True,
            message=(
                f"Possible duplicate: this program has {c.side} {fmt(c.quantity)} "
                f"{sec.symbol} twice for {ctx.accounts[c.account_id].code}."
            ),
        )
    return _result(spec, breached=False, message="No duplicate order in the window.")


def _evaluate_one(ctx: Context, spec: RuleSpec, c: Candidate, sec: SecurityInfo, index: int):
    kind = spec.kind
    if kind == RuleKind.RESTRICTED_LIST:
        return _restricted_list(ctx, spec, c, sec)
    if kind == RuleKind.ISSUER_CONCENTRATION:
        return _concentration(ctx, spec, c, sec, by_issuer=True)
    if kind == RuleKind.SECTOR_CONCENTRATION:
        return _concentration(ctx, spec, c, sec, by_issuer=False)
    if kind == RuleKind.FIRM_OWNERSHIP:
        return _firm_ownership(ctx, spec, c, sec)
    if kind == RuleKind.ORDER_SIZE:
        return _order_size(ctx, spec, c, sec)
    if kind == RuleKind.PRICE_BAND:
        return _price_band(ctx, spec, c, sec)
    if kind == RuleKind.ADV_PARTICIPATION:
        return _adv(ctx, spec, c, sec)
    if kind == RuleKind.NO_SHORT:
        return _no_short(ctx, spec, c, sec)
    if kind == RuleKind.CASH:
        return _cash(ctx, spec, c, sec)
    if kind == RuleKind.OPPOSITE_SIDE:
        return _opposite_side(ctx, spec, c, sec)
    if kind == RuleKind.DUPLICATE_ORDER:
        return _duplicate(ctx, spec, c, sec, index)
    raise ValueError(f"unknown rule kind {kind}")


def program_evaluate(
    *, candidates: list[Candidate], as_of: datetime, rules: list[RuleSpec] | None = None
) -> dict[int, tuple[str, list[dict[str, Any]]]]:
    """{candidate key: (verdict, results)} for the candidates checked as one program."""
    if rules is None:
        rules = rules_in_force(as_of=as_of)
    if not candidates:
        return {}
    ctx = Context(candidates=candidates, rules=rules, as_of=as_of)
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
