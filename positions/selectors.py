"""Reading holdings and cash. Compliance and the order ticket read positions only through here."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from django.db.models import DecimalField, F, Q, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from oms.errors import DomainError
from oms.fields import ZERO
from oms.models import Account, Security
from oms.money import Quotation, Terms

from .models import CashBalance, CashMovement, FxRate, Position, PositionFill
from .replay import PositionState, position_state_apply, price_factors, replay_rows, replays

FIRM_CURRENCY = "USD"
HUNDRED = Decimal(100)
PCT = Decimal("0.0001")
CENTS = Decimal("0.01")


# --- the selectors compliance and the order ticket call (signatures fixed) -----------------


def position_quantities(*, account_ids: list[int]) -> dict[tuple[int, int], Decimal]:
    """{(account_id, security_id): quantity} for the accounts' non-zero positions."""
    # order_by(): the default ordering joins accounts and securities for nothing here.
    rows = Position.objects.filter(account_id__in=account_ids).exclude(quantity=0).order_by()
    return {(a, s): q for a, s, q in rows.values_list("account_id", "security_id", "quantity")}


def position_quantity(*, account_id: int, security_id: int) -> Decimal:
    row = (
        Position.objects.filter(account_id=account_id, security_id=security_id)
        .values_list("quantity", flat=True)
        .first()
    )
    return row if row is not None else ZERO


def firm_quantities(*, security_ids: list[int]) -> dict[int, Decimal]:
    """{security_id: quantity the whole firm holds}."""
    rows = (
        Position.objects.filter(security_id__in=security_ids)
        .order_by()
        .values("security_id")
        .annotate(total=Sum("quantity"))
    )
    return {r["security_id"]: r["total"] or ZERO for r in rows}


def cash_settled(*, account_ids: list[int], currency: str = "USD") -> dict[int, Decimal]:
    """{account_id: settled cash in `currency`} (movements not yet settled excluded)."""
    rows = CashBalance.objects.filter(account_id__in=account_ids, currency=currency).order_by()
    return dict(rows.values_list("account_id", "settled"))


def account_navs(*, account_ids: list[int], as_of: date | None = None) -> dict[int, Decimal]:
    """NAV per account in its base currency: positions at the reference price (a bond's
    dirty value: per 100 of face plus accrued interest to as_of) plus projected cash (a bought
    stock is already in the positions), other currencies converted through the FX rates
    table."""
    navs: dict[int, Decimal] = {account_id: ZERO for account_id in account_ids}
    if not navs:
        return navs
    # Plain holdings are valued by one aggregate query, per account and currency, summed in the
    # database (accounts of hundreds of positions); cash is the same query's second half.
    positions = Position.objects.filter(account_id__in=account_ids).exclude(quantity=0).order_by()
    # Securities priced per unit without a coupon sum in the database; the others (bonds per
    # 100 of face with accrued interest, contracts with a multiplier) through oms.money.Terms.
    plain = Q(security__price_quotation=Quotation.UNIT, security__coupon_rate__isnull=True)
    day = as_of or timezone.now().date()
    rates: FxTable | None = None
    for account_id, base, currency, quantity, price, *conventions in (
        positions.exclude(plain)
        .filter(security__reference_price__isnull=False)
        .values_list(
            "account_id", "account__base_currency", "security__currency", "quantity",
            "security__reference_price", *TERMS_COLUMNS,
        )
    ):  # fmt: skip
        value = quantity * Terms.from_values(*conventions).unit_value(price, day)
        if currency != base:
            rates = rates or FxTable.load(as_of=as_of)
            value = rates.convert(value, currency, base)
        navs[account_id] += value
    held = (
        positions.filter(plain)
        .values_list("account_id", "account__base_currency", "security__currency")
        .annotate(
            value=Sum(
                F("quantity") * Coalesce(F("security__reference_price"), Value(ZERO)),
                output_field=DecimalField(),
            )
        )
    )
    cash = (
        CashBalance.objects.filter(account_id__in=account_ids)
        .order_by()
        .values_list("account_id", "account__base_currency", "currency")
        .annotate(value=Sum("projected"))
    )
    for account_id, base, currency, value in held.union(cash, all=True):
        if value and currency != base:
            rates = rates or FxTable.load(as_of=as_of)
            value = rates.convert(value, currency, base)
        navs[account_id] += value or ZERO
    return navs


# --- FX ------------------------------------------------------------------------------------


class MissingFxRate(DomainError):
    code = "missing_fx_rate"


@dataclass
class FxTable:
    """The latest rate per pair (as of a date); converts directly, inverted, or through USD."""

    rates: dict[tuple[str, str], Decimal] = field(default_factory=dict)

    @classmethod
    def load(cls, *, as_of: date | None = None) -> FxTable:
        qs = FxRate.objects.order_by("base", "quote", "-as_of_date")
        if as_of is not None:
            qs = qs.filter(as_of_date__lte=as_of)
        rates: dict[tuple[str, str], Decimal] = {}
        for base, quote, rate in qs.values_list("base", "quote", "rate"):
            rates.setdefault((base, quote), rate)
        return cls(rates)

    def rate(self, from_ccy: str, to_ccy: str) -> Decimal:
        if from_ccy == to_ccy:
            return Decimal(1)
        if (from_ccy, to_ccy) in self.rates:
            return self.rates[(from_ccy, to_ccy)]
        if (to_ccy, from_ccy) in self.rates:
            return Decimal(1) / self.rates[(to_ccy, from_ccy)]
        if FIRM_CURRENCY not in (from_ccy, to_ccy):
            return self.rate(from_ccy, FIRM_CURRENCY) * self.rate(FIRM_CURRENCY, to_ccy)
        raise MissingFxRate(f"No FX rate for {from_ccy}/{to_ccy}: add one in the FX rates table.")

    def convert(self, amount: Decimal, from_ccy: str, to_ccy: str) -> Decimal:
        if amount == 0 or from_ccy == to_ccy:
            return amount
        return amount * self.rate(from_ccy, to_ccy)


# --- the money view: one snapshot every rule reads ------------------------------------------


@dataclass
class AccountSnapshot:
    """One account as the rules see it, every amount in its base currency.

    holdings: quantity per security at trade date (a fill counts the day it trades).
    holdings_settled: the same at settlement date (fills still to settle left out; read with
    the ladder, the rules do not need it).
    cash_settled: cash that has settled. cash_projected: settled plus every booked movement
    still to settle (unsettled fills), with cash_by_settle_date the running balance on each
    settlement date to come. buy_commitment / sell_proceeds: what the account's open orders
    will pay and receive at their limit (or reference) price. cash_available: projected cash
    less the open buys' commitment, what a new buy may spend. nav: holdings at reference price
    plus projected cash. fx_error says why nav (or a figure) could not be converted; a missing
    rate is never taken as 1."""

    account_id: int
    base_currency: str
    holdings: dict[int, Decimal] = field(default_factory=dict)
    holdings_settled: dict[int, Decimal] = field(default_factory=dict)
    cash_settled: Decimal = ZERO
    cash_projected: Decimal = ZERO
    cash_by_settle_date: dict[date, Decimal] = field(default_factory=dict)
    open_buys: dict[int, Decimal] = field(default_factory=dict)
    open_sells: dict[int, Decimal] = field(default_factory=dict)
    buy_commitment: Decimal = ZERO
    sell_proceeds: Decimal = ZERO
    unpriced_buy_order_ids: list[int] = field(default_factory=list)
    holdings_value: Decimal = ZERO
    fx_error: str | None = None

    @property
    def cash_available(self) -> Decimal:
        return self.cash_projected - self.buy_commitment

    @property
    def nav(self) -> Decimal:
        if self.fx_error:
            raise MissingFxRate(self.fx_error)
        return self.holdings_value + self.cash_projected


@dataclass
class PortfolioSnapshot:
    accounts: dict[int, AccountSnapshot]
    rates: FxTable
    # {security_id: (currency, reference price or None)} of every security the snapshot read.
    securities: dict[int, tuple[str, Decimal | None]]
    # {security_id: its conventions (oms.money.Terms)} of the same securities.
    terms: dict[int, Terms] = field(default_factory=dict)

    def to_base(self, account_id: int, amount: Decimal, currency: str) -> Decimal:
        """amount in the account's base currency; raises MissingFxRate without a rate."""
        return self.rates.convert(amount, currency, self.accounts[account_id].base_currency)


# The security columns a snapshot row reads for oms.money.Terms, in Terms.FIELDS order.
TERMS_COLUMNS = tuple(f"security__{name}" for name in Terms.FIELDS)


def portfolio_snapshot(
    *,
    account_ids: list[int],
    as_of: datetime,
    exclude_order_ids: set[int] | frozenset = frozenset(),
    with_ladder: bool = True,
    base_currencies: dict[int, str] | None = None,
) -> PortfolioSnapshot:
    """The money view of the accounts as of `as_of` (a fixed number of queries however many
    accounts): see AccountSnapshot. Orders in exclude_order_ids (the ones being checked) are
    left out of the open orders' figures. with_ladder=False skips cash_by_settle_date (the
    rules do not read it). base_currencies: {account_id: base currency} when the caller has
    read the accounts already (a query less)."""
    from orders.lifecycle import OPEN
    from orders.models import BUY_SIDES, Order

    ids = sorted(set(account_ids))
    if base_currencies is None:
        base_currencies = dict(
            Account.objects.filter(pk__in=ids).order_by().values_list("pk", "base_currency")
        )
    snaps = {
        pk: AccountSnapshot(account_id=pk, base_currency=base_currencies[pk])
        for pk in ids
        if pk in base_currencies
    }
    day = as_of.date()
    rates = FxTable.load(as_of=day)
    securities: dict[int, tuple[str, Decimal | None]] = {}
    terms: dict[int, Terms] = {}
    # What one unit is worth at a price, per security and price: a bond's quantity is face
    # quoted per 100, with accrued interest (the dirty value); a future's a contract.
    unit_values: dict[tuple[int, Decimal], Decimal] = {}

    def unit_value(security_id: int, price: Decimal) -> Decimal:
        key = (security_id, price)
        value = unit_values.get(key)
        if value is None:
            value = unit_values[key] = terms[security_id].unit_value(price, day)
        return value

    def add(snap: AccountSnapshot, attr: str, amount: Decimal, currency: str) -> bool:
        try:
            value = rates.convert(amount, currency, snap.base_currency)
        except MissingFxRate as exc:
            snap.fx_error = snap.fx_error or exc.message
            return False
        setattr(snap, attr, getattr(snap, attr) + value)
        return True

    held = (
        Position.objects.filter(account_id__in=ids)
        .exclude(quantity=0)
        .order_by()
        .values_list(
            "account_id",
            "security_id",
            "quantity",
            "security__currency",
            "security__reference_price",
            *TERMS_COLUMNS,
        )
    )
    for account_id, security_id, quantity, currency, price, *conventions in held:
        snap = snaps[account_id]
        snap.holdings[security_id] = quantity
        if security_id not in terms:
            securities[security_id] = (currency, price)
            terms[security_id] = Terms.from_values(*conventions)
        if price is not None:
            add(snap, "holdings_value", quantity * unit_value(security_id, price), currency)
    if with_ladder:
        _holdings_settled(snaps, ids, day)
    for account_id, currency, settled, projected in (
        CashBalance.objects.filter(account_id__in=ids)
        .order_by()
        .values_list("account_id", "currency", "settled", "projected")
    ):
        snap = snaps[account_id]
        add(snap, "cash_settled", settled, currency)
        add(snap, "cash_projected", projected, currency)
    ladder = (
        CashMovement.objects.filter(account_id__in=ids if with_ladder else [], is_settled=False)
        .order_by()
        .values_list("account_id", "currency", "settle_date")
        .annotate(total=Sum("amount"))
    )
    steps: dict[int, dict[date, Decimal]] = defaultdict(lambda: defaultdict(lambda: ZERO))
    for account_id, currency, settle_date, total in ladder:
        snap = snaps[account_id]
        try:
            steps[account_id][settle_date] += rates.convert(total, currency, snap.base_currency)
        except MissingFxRate as exc:
            snap.fx_error = snap.fx_error or exc.message
    for account_id, by_day in steps.items():
        running = snaps[account_id].cash_settled
        for day in sorted(by_day):
            running += by_day[day]
            snaps[account_id].cash_by_settle_date[day] = running
    open_rows = (
        Order.objects.filter(account_id__in=ids, status__in=OPEN)
        .annotate(remaining=F("quantity") - F("cum_qty"))
        .filter(remaining__gt=0)
        .order_by()
        .values_list(
            "id", "account_id", "security_id", "side", "remaining", "limit_price",
            "security__currency", "security__reference_price", *TERMS_COLUMNS,
        )
    )  # fmt: skip
    for pk, account_id, security_id, side, remaining, limit, currency, ref, *conv in open_rows:
        # Skipped here, not in SQL: a NOT IN of a basket's thousands of ids costs more.
        if pk in exclude_order_ids:
            continue
        snap = snaps[account_id]
        if security_id not in terms:
            securities[security_id] = (currency, ref)
            terms[security_id] = Terms.from_values(*conv)
        buy = side in BUY_SIDES
        book = snap.open_buys if buy else snap.open_sells
        book[security_id] = book.get(security_id, ZERO) + remaining
        price = limit if limit is not None else ref
        if price is None:
            if buy:
                snap.unpriced_buy_order_ids.append(pk)
            continue
        amount = remaining * unit_value(security_id, price)
        add(snap, "buy_commitment" if buy else "sell_proceeds", amount, currency)
    return PortfolioSnapshot(accounts=snaps, rates=rates, securities=securities, terms=terms)


def _holdings_settled(snaps: dict[int, AccountSnapshot], ids: list[int], day: date) -> None:
    """Each account's holdings at settlement date: its trade-date holdings less the bookings
    of the ledger that settle after `day` (a buy adds, a sell takes away; a reversal undoes
    its booking). One query."""
    from orders.models import BUY_SIDES

    for snap in snaps.values():
        snap.holdings_settled = dict(snap.holdings)
    pending = (
        PositionFill.objects.filter(account_id__in=ids, settle_date__gt=day)
        .order_by()
        .values_list("account_id", "security_id", "side")
        .annotate(total=Sum("quantity"))
    )
    for account_id, security_id, side, total in pending:
        settled = snaps[account_id].holdings_settled
        signed = total if side in BUY_SIDES else -total
        quantity = settled.get(security_id, ZERO) - signed
        if quantity:
            settled[security_id] = quantity
        else:
            settled.pop(security_id, None)


def order_weight(
    *, account_id: int, amount: Decimal, currency: str, snapshot: PortfolioSnapshot
) -> dict[str, Any]:
    """What an order of `amount` (in `currency`) weighs in the account, for the ticket's review:
    the amount in the account's base currency and as a % of its NAV (the money view's NAV, from
    a snapshot holding the account: the one compliance has just read). A missing FX rate is
    said, never taken as 1; an account without NAV has no %."""
    from oms.money import money_round

    snap = snapshot.accounts[account_id]
    base = snap.base_currency
    out: dict[str, Any] = {"currency": base, "notional": None, "nav": None, "pct_nav": None}
    try:
        notional = snapshot.to_base(account_id, amount, currency)
        out["notional"] = money_round(notional, base)
        nav = snap.nav
    except MissingFxRate as exc:
        out["fx_error"] = exc.message
        return out
    out["nav"] = money_round(nav, base)
    if nav > 0:
        out["pct_nav"] = (notional * 100 / nav).quantize(Decimal("0.01"))
    return out


# --- holdings with valuation ---------------------------------------------------------------


@dataclass
class HoldingRow:
    account_id: int
    account_code: str
    base_currency: str
    security_id: int
    symbol: str
    name: str
    sector: str
    issuer: str
    currency: str
    quantity: Decimal
    avg_cost: Decimal
    cost_basis: Decimal
    realized_pnl: Decimal
    price: Decimal | None
    market_value: Decimal | None
    unrealized_pnl: Decimal | None
    pct_nav: Decimal | None
    # Why pct_nav is missing when a rate is (the FX rates table has no rate for the pair).
    fx_error: str | None = None


def account_nav_figures(
    *, account_ids: list[int], as_of: datetime | None = None
) -> dict[int, tuple[Decimal | None, str | None]]:
    """{account_id: (NAV in its base currency, None) or (None, why not)}: the money view's NAV
    (portfolio_snapshot), for the pages. A rate missing from the FX rates table is said, never
    taken as 1."""
    snapshot = portfolio_snapshot(
        account_ids=account_ids, as_of=as_of or timezone.now(), with_ladder=False
    )
    out: dict[int, tuple[Decimal | None, str | None]] = {}
    for account_id, snap in snapshot.accounts.items():
        try:
            out[account_id] = (snap.nav.quantize(CENTS), None)
        except MissingFxRate as exc:
            out[account_id] = (None, exc.message)
    return out


def holdings(
    *,
    account_ids: list[int],
    security_query: str = "",
    sector: str = "",
    include_flat: bool = False,
) -> list[HoldingRow]:
    """Per account and security: quantity, average cost, cost basis, realized P&L, market value
    at the reference price (security currency), unrealized P&L, % of the account's NAV."""
    qs = Position.objects.filter(account_id__in=account_ids).select_related(
        "account", "security", "security__issuer"
    )
    if not include_flat:
        qs = qs.filter(~Q(quantity=0) | ~Q(realized_pnl=0))
    if security_query:
        qs = qs.filter(
            Q(security__symbol__istartswith=security_query)
            | Q(security__name__icontains=security_query)
        )
    if sector:
        qs = qs.filter(security__sector=sector)
    positions = list(qs.order_by("account__code", "security__symbol"))
    now = timezone.now()
    navs = account_nav_figures(account_ids=sorted({p.account_id for p in positions}), as_of=now)
    rates = FxTable.load(as_of=now.date())
    today = now.date()
    rows = []
    for p in positions:
        sec = p.security
        price = sec.reference_price
        terms = Terms.of(sec)
        # The dirty value: a bond's face per 100 plus accrued interest, a contract's multiplier.
        mv = (
            (p.quantity * terms.unit_value(price, today)).quantize(CENTS)
            if price is not None
            else None
        )
        # Against the clean cost basis, the clean value (a bond's accrued interest is not a
        # gain on its price).
        clean = (
            (p.quantity * price * terms.price_factor).quantize(CENTS) if price is not None else None
        )
        pct = None
        nav, fx_error = navs.get(p.account_id, (None, None))
        if mv is not None and nav and fx_error is None:
            try:
                in_base = rates.convert(mv, sec.currency, p.account.base_currency)
                pct = (in_base / nav * HUNDRED).quantize(PCT)
            except MissingFxRate as exc:
                fx_error = exc.message
        rows.append(
            HoldingRow(
                account_id=p.account_id,
                account_code=p.account.code,
                base_currency=p.account.base_currency,
                security_id=sec.pk,
                symbol=sec.symbol,
                name=sec.name,
                sector=sec.sector,
                issuer=sec.issuer.name,
                currency=sec.currency,
                quantity=p.quantity,
                avg_cost=p.avg_cost,
                cost_basis=p.cost_basis,
                realized_pnl=p.realized_pnl,
                price=price,
                market_value=mv,
                unrealized_pnl=(clean - p.cost_basis).quantize(CENTS)
                if clean is not None
                else None,
                pct_nav=pct,
                fx_error=fx_error,
            )
        )
    return rows


# --- cash ladder ---------------------------------------------------------------------------


@dataclass
class LadderStep:
    settle_date: date
    amount: Decimal
    projected: Decimal


@dataclass
class CashLadder:
    account_id: int
    account_code: str
    currency: str
    settled: Decimal
    projected: Decimal
    steps: list[LadderStep]


def cash_ladders(*, account_ids: list[int]) -> list[CashLadder]:
    """Per account and currency: settled cash, then each settlement date still to come with
    the money it moves and the projected balance after it."""
    pending: dict[tuple[int, str], dict[date, Decimal]] = defaultdict(dict)
    rows = (
        CashMovement.objects.filter(account_id__in=account_ids, is_settled=False)
        .values("account_id", "currency", "settle_date")
        .annotate(total=Sum("amount"))
        .order_by("settle_date")
    )
    for r in rows:
        pending[(r["account_id"], r["currency"])][r["settle_date"]] = r["total"]
    result = []
    balances = CashBalance.objects.filter(account_id__in=account_ids).select_related("account")
    for b in balances.order_by("account__code", "currency"):
        running = b.settled
        steps = []
        for day, amount in sorted(pending.get((b.account_id, b.currency), {}).items()):
            running += amount
            steps.append(LadderStep(day, amount, running))
        result.append(
            CashLadder(b.account_id, b.account.code, b.currency, b.settled, b.projected, steps)
        )
    return result


# --- firm-wide exposure ----------------------------------------------------------------------


@dataclass
class ExposureRow:
    key: str
    label: str
    long_value: Decimal
    short_value: Decimal

    @property
    def net_value(self) -> Decimal:
        return self.long_value + self.short_value

    @property
    def gross_value(self) -> Decimal:
        return self.long_value - self.short_value


def exposure(
    *,
    account_ids: list[int] | None = None,
    by: str = "security",
    fx_errors: list[str] | None = None,
) -> list[ExposureRow]:
    """Market value (firm currency, at the reference price; a bond's dirty value per 100 of
    face, a contract's multiplier) held long and short, grouped by security, issuer or sector,
    largest gross first. None for account_ids means the firm. A security whose currency has
    no rate to the firm's is left out and the reason added to `fx_errors` (never a rate of 1).
    """
    if by not in ("security", "issuer", "sector"):
        raise ValueError(f"Unknown exposure grouping {by!r}.")
    today = timezone.now().date()
    rates = FxTable.load(as_of=today)
    qs = Position.objects.exclude(quantity=0)
    if account_ids is not None:
        qs = qs.filter(account_id__in=account_ids)
    totals = qs.values("security_id").annotate(
        long=Sum("quantity", filter=Q(quantity__gt=0)),
        short=Sum("quantity", filter=Q(quantity__lt=0)),
    )
    securities = Security.objects.select_related("issuer").in_bulk(
        [t["security_id"] for t in totals]
    )
    groups: dict[str, ExposureRow] = {}
    for t in totals:
        sec = securities[t["security_id"]]
        try:
            price = rates.convert(
                Terms.of(sec).unit_value(sec.reference_price or ZERO, today),
                sec.currency,
                FIRM_CURRENCY,
            )
        except MissingFxRate as exc:
            if fx_errors is not None and exc.message not in fx_errors:
                fx_errors.append(exc.message)
            continue
        if by == "security":
            key, label = str(sec.pk), sec.symbol
        elif by == "issuer":
            key, label = str(sec.issuer_id), sec.issuer.name
        else:
            key, label = sec.sector, sec.sector
        row = groups.setdefault(key, ExposureRow(key, label, ZERO, ZERO))
        row.long_value += (t["long"] or ZERO) * price
        row.short_value += (t["short"] or ZERO) * price
    for row in groups.values():
        row.long_value = row.long_value.quantize(CENTS)
        row.short_value = row.short_value.quantize(CENTS)
    return sorted(groups.values(), key=lambda r: (-r.gross_value, r.label))


def firm_nav(
    *, account_ids: list[int] | None = None, fx_errors: list[str] | None = None
) -> Decimal:
    """Sum of the accounts' NAVs (the money view's) in the firm currency. An account that
    cannot be valued for a missing FX rate is left out and the reason added to `fx_errors`."""
    now = timezone.now()
    rates = FxTable.load(as_of=now.date())
    ids = (
        list(account_ids)
        if account_ids is not None
        else list(Account.objects.values_list("pk", flat=True))
    )
    snapshot = portfolio_snapshot(account_ids=ids, as_of=now, with_ladder=False)
    total = ZERO
    for snap in snapshot.accounts.values():
        try:
            total += rates.convert(snap.nav, snap.base_currency, FIRM_CURRENCY)
        except MissingFxRate as exc:
            if fx_errors is not None and exc.message not in fx_errors:
                fx_errors.append(exc.message)
    return total.quantize(CENTS)


def position_fills(*, account_id: int, security_id: int, limit: int = 200):
    return PositionFill.objects.filter(account_id=account_id, security_id=security_id).order_by(
        "-id"
    )[:limit]


# --- reconcile -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Difference:
    kind: str  # "position" or "cash" or "ledger"
    account_code: str
    key: str  # symbol or currency or fill reference
    field: str
    expected: Decimal | str
    actual: Decimal | str

    def __str__(self) -> str:
        return (
            f"{self.kind} {self.account_code} {self.key} {self.field}: "
            f"expected {self.expected}, kept {self.actual}"
        )


def reconcile_differences() -> list[Difference]:
    """Recompute every position and cash balance from the opening balances and the ledger and
    list what differs from the kept figures (empty when everything agrees)."""
    codes = dict(Account.objects.values_list("pk", "code"))
    symbols = dict(Security.objects.values_list("pk", "symbol"))
    factors = price_factors(symbols)
    diffs: list[Difference] = []

    positions = {(p.account_id, p.security_id): p for p in Position.objects.all()}
    states = {
        k: PositionState.opening(
            quantity=p.opening_quantity, avg_cost=p.opening_avg_cost, factor=factors[k[1]]
        )
        for k, p in positions.items()
    }
    for fill_id, account_id, security_id, delta, price, reverses_id in replay_rows(
        PositionFill.objects.all()
    ):
        key = (account_id, security_id)
        position = positions.get(key)
        opening_id = position.opening_ledger_id if position is not None else 0
        if replays(fill_id, reverses_id, opening_id):
            states[key] = position_state_apply(
                states.get(key, PositionState(factor=factors[security_id])),
                delta=delta,
                price=price,
            )
    for key, state in states.items():
        kept = positions.get(key)
        for name in ("quantity", "avg_cost", "cost_basis", "realized_pnl"):
            expected = getattr(state, name)
            actual = getattr(kept, name) if kept is not None else "missing"
            if actual != expected:
                diffs.append(
                    Difference("position", codes[key[0]], symbols[key[1]], name, expected, actual)
                )

    # Each booking and reversal moves its own net money exactly once.
    moved = dict(
        CashMovement.objects.filter(fill__isnull=False)
        .values("fill_id")
        .annotate(total=Sum("amount"))
        .values_list("fill_id", "total")
    )
    for fill_id, ref, account_id, net in PositionFill.objects.values_list(
        "id", "fill_ref", "account_id", "net_money"
    ).iterator(chunk_size=5000):
        if moved.get(fill_id) != net:
            diffs.append(
                Difference(
                    "ledger", codes[account_id], ref, "cash moved", net, moved.get(fill_id, "none")
                )
            )

    sums = defaultdict(lambda: [ZERO, ZERO])
    rows = (
        CashMovement.objects.filter(in_opening=False)
        .values("account_id", "currency", "is_settled")
        .annotate(total=Sum("amount"))
    )
    for r in rows:
        totals = sums[(r["account_id"], r["currency"])]
        totals[1] += r["total"]
        if r["is_settled"]:
            totals[0] += r["total"]
    balances = {(b.account_id, b.currency): b for b in CashBalance.objects.all()}
    for key in sorted(set(balances) | set(sums)):
        balance = balances.get(key)
        opening = balance.opening_settled if balance is not None else ZERO
        settled, projected = sums.get(key, (ZERO, ZERO))
        for name, expected in (("settled", opening + settled), ("projected", opening + projected)):
            actual = getattr(balance, name) if balance is not None else "missing"
            if actual != expected:
                diffs.append(Difference("cash", codes[key[0]], key[1], name, expected, actual))
    return diffs


def bookings_by_ref(*, refs: set[str]) -> dict[tuple[int, int, str], tuple[Decimal, Decimal]]:
    """(account, security, fill_ref) -> the ledger's total quantity and cash for those refs."""
    rows = (
        PositionFill.objects.filter(fill_ref__in=refs)
        .values("account_id", "security_id", "fill_ref")
        .annotate(quantity=Sum("quantity"), cash=Sum("net_money"))
    )
    return {
        (r["account_id"], r["security_id"], r["fill_ref"]): (r["quantity"], r["cash"]) for r in rows
    }


def cash_by_ref(*, refs: set[str]) -> dict[str, Decimal]:
    """Cash moved under each reference (commission and fees of an allocation, say)."""
    rows = CashMovement.objects.filter(ref__in=refs).values("ref").annotate(total=Sum("amount"))
    return {r["ref"]: r["total"] for r in rows}
