"""What the rule engine works on: the candidates (orders being checked), the rules in force
(`RuleSpec`, `rules_in_force`), the accounts and securities as rules see them, and how a
rule's result is written (`rule_result`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import ROUND_FLOOR, Decimal
from typing import Any

from oms.fields import ZERO
from oms.money import PLAIN, Terms
from orders.models import BUY_SIDES

from .models import Rule, RuleKind, Scope, Severity, Verdict

HUNDRED = Decimal(100)
PCT_PLACES = Decimal("0.0001")
MONEY_PLACES = Decimal("0.01")
FIRM_WIDE_KINDS = frozenset(
    {RuleKind.FIRM_OWNERSHIP, RuleKind.OPPOSITE_SIDE, RuleKind.ADV_PARTICIPATION}
)


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


def rule_result(
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
