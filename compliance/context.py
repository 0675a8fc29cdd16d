"""Everything the rules read, loaded set-wise up front (`Context`): accounts, securities, the
restricted list, other open orders, the portfolio snapshot and the program's own figures.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from decimal import Decimal

from django.contrib.postgres.aggregates import ArrayAgg
from django.db.models import Q

from oms.fields import ZERO
from oms.models import Account, Security
from oms.money import PLAIN, Terms
from orders.lifecycle import OPEN, OrderStatus
from orders.models import Order
from positions.selectors import MissingFxRate, firm_quantities, portfolio_snapshot

from .models import RestrictedEntry, RuleKind
from .specs import (
    FIRM_WIDE_KINDS,
    AccountInfo,
    Candidate,
    OpenOrder,
    RuleSpec,
    SecurityInfo,
    rule_result,
)


def accounts_of(account_ids: set[int]) -> dict[int, AccountInfo]:
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


def securities_of(security_ids: set[int]) -> dict[int, SecurityInfo]:
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
        self.accounts = accounts_of(account_ids)
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
        self.securities = securities_of(
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


def fx_unknown(ctx: Context, spec: RuleSpec, c: Candidate, limit: Decimal | None):
    """A figure that needs a missing FX rate blocks with the reason, never converts at 1."""
    account = ctx.accounts[c.account_id]
    return rule_result(
        spec,
        breached=True,
        message=f"{account.code} cannot be valued in {account.currency}: {ctx.fx_errors[c.account_id]}",
        limit=limit,
        max_passing_quantity=ZERO,
    )
