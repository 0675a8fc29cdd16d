"""Pre-trade compliance: rules and their versions, checking orders, overrides, post-trade runs."""

from __future__ import annotations

from datetime import date, datetime
from datetime import time as dtime
from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import Q

from audit.services import audit_record
from oms.bulk_rows import rows_insert
from oms.db import retry_on_conflict
from oms.errors import Conflict, DomainError, NotFound, NotPermitted
from oms.models import Security
from oms.money import Terms, money_round, notional
from oms.roles import COMPLIANCE, has_role, sees_all_accounts
from oms.selectors import account_not_found, accounts_visible_to
from orders.lifecycle import OrderStatus
from orders.models import Order, OrderType, Side
from orders.services import (
    order_lock,
    order_terms_validate,
    order_transition,
    orders_lock,
    orders_stage,
    orders_transition_bulk,
)
from positions.selectors import PortfolioSnapshot, order_weight

from .engine import context_evaluate, program_context, program_evaluate
from .models import (
    Breach,
    CheckRun,
    OrderCheck,
    Override,
    RestrictedEntry,
    Rule,
    RuleHit,
    RuleVersion,
    Scope,
    Verdict,
)
from .parameters import rule_parameters_clean
from .posttrade import portfolio_breaches
from .selectors import results_for_viewer
from .specs import Candidate, rules_in_force

# pg_advisory_xact_lock(namespace, account_id): checks of one account run one at a time, so two
# baskets checked at once cannot both spend the same cash or headroom.
ACCOUNT_LOCK_NAMESPACE = 4_004
# pg_advisory_xact_lock(namespace, slot of a security): firm-wide rules (firm ownership, ADV,
# opposite side) add up every account's orders in a security, so checks touching the same
# security run one at a time too; otherwise two PMs could each pass a limit only one fits.
# Securities share SECURITY_LOCK_SLOTS slots so a basket of thousands of names takes a bounded
# number of locks (a shared slot only serialises a little more).
SECURITY_LOCK_NAMESPACE = 4_005
SECURITY_LOCK_SLOTS = 1_024


# --- rules ------------------------------------------------------------------------------------


def rule_snapshot(*, rule: Rule) -> dict[str, Any]:
    return {
        "name": rule.name,
        "kind": rule.kind,
        "parameters": rule.parameters,
        "scope": rule.scope,
        "account_ids": sorted(rule.accounts.values_list("pk", flat=True))
        if rule.pk and rule.scope == Scope.ACCOUNTS
        else [],
        "tag_id": rule.tag_id if rule.scope == Scope.TAG else None,
        "severity": rule.severity,
        "active": rule.active,
        "effective_from": rule.effective_from.isoformat() if rule.effective_from else None,
        "effective_to": rule.effective_to.isoformat() if rule.effective_to else None,
        "mandate": rule.mandate,
    }


def rule_validate(*, rule: Rule, account_count: int | None = None) -> None:
    """Raise ValidationError (per field) if the rule is not coherent."""
    errors: dict[str, list[str]] = {}
    try:
        rule.parameters = rule_parameters_clean(kind=rule.kind, parameters=rule.parameters)
    except ValidationError as exc:
        errors["parameters"] = exc.messages
    if rule.scope == Scope.TAG and rule.tag_id is None:
        errors["tag"] = ["Choose the account tag this rule applies to."]
    if rule.scope == Scope.ACCOUNTS and account_count == 0:
        errors["accounts"] = ["Choose at least one account, or scope the rule to all accounts."]
    if rule.effective_from and rule.effective_to and rule.effective_from > rule.effective_to:
        errors["effective_to"] = ["The rule cannot end before it starts."]
    if errors:
        raise ValidationError(errors)


@retry_on_conflict
def rule_version_record(*, rule_id: int, actor, as_of: datetime) -> RuleVersion | None:
    """Freeze the rule as it now stands into a new version (None if nothing changed)."""
    rule = Rule.objects.select_for_update().get(pk=rule_id)
    snapshot = rule_snapshot(rule=rule)
    last = rule.versions.order_by("-number").first()
    if last is not None and last.snapshot == snapshot:
        return None
    version = RuleVersion.objects.create(
        rule=rule,
        number=(last.number + 1) if last else 1,
        snapshot=snapshot,
        created_at=as_of,
        created_by=actor if getattr(actor, "pk", None) else None,
    )
    rule.current_version = version
    rule.save(update_fields=["current_version", "updated_at"])
    audit_record(
        actor=actor,
        action="compliance.rule_version",
        obj=rule,
        occurred_at=as_of,
        before=last.snapshot if last else None,
        after={"version": version.number, **snapshot},
    )
    return version


@retry_on_conflict
def rule_create(
    *,
    actor,
    as_of: datetime,
    name: str,
    kind: str,
    parameters: dict[str, Any] | None = None,
    severity: str = "BLOCK",
    scope: str = Scope.ALL,
    account_ids: list[int] | None = None,
    tag_id: int | None = None,
    active: bool = True,
    effective_from: date | None = None,
    effective_to: date | None = None,
    mandate: str = "",
) -> Rule:
    rule = Rule(
        name=name,
        kind=kind,
        parameters=parameters or {},
        severity=severity,
        scope=scope,
        tag_id=tag_id,
        active=active,
        effective_from=effective_from,
        effective_to=effective_to,
        mandate=mandate,
    )
    rule_validate(rule=rule, account_count=len(account_ids or []))
    rule.save()
    if account_ids:
        rule.accounts.set(account_ids)
    audit_record(
        actor=actor,
        action="compliance.rule_create",
        obj=rule,
        occurred_at=as_of,
        after=rule_snapshot(rule=rule),
    )
    rule_version_record(rule_id=rule.pk, actor=actor, as_of=as_of)
    rule.refresh_from_db()
    return rule


@retry_on_conflict
def rule_update(*, rule_id: int, actor, as_of: datetime, **changes: Any) -> Rule:
    """Change a rule's fields (account_ids for the listed accounts) and version it."""
    rule = Rule.objects.select_for_update().get(pk=rule_id)
    account_ids = changes.pop("account_ids", None)
    for name, value in changes.items():
        if name not in {f.name for f in Rule._meta.concrete_fields} or name == "current_version":
            raise DomainError(f"Rules have no editable field {name!r}.")
        setattr(rule, name, value)
    count = len(account_ids) if account_ids is not None else rule.accounts.count()
    rule_validate(rule=rule, account_count=count)
    rule.save()
    if account_ids is not None:
        rule.accounts.set(account_ids)
    rule_version_record(rule_id=rule.pk, actor=actor, as_of=as_of)
    rule.refresh_from_db()
    return rule


@retry_on_conflict
def restricted_entry_add(
    *,
    actor,
    as_of: datetime,
    reason: str,
    start_date: date,
    security_id: int | None = None,
    issuer_id: int | None = None,
    end_date: date | None = None,
) -> RestrictedEntry:
    if (security_id is None) == (issuer_id is None):
        raise DomainError("Restrict either one security or one issuer.")
    if not reason.strip():
        raise DomainError("A restriction needs a reason.")
    entry = RestrictedEntry.objects.create(
        security_id=security_id,
        issuer_id=issuer_id,
        reason=reason.strip(),
        start_date=start_date,
        end_date=end_date,
    )
    audit_record(
        actor=actor,
        action="compliance.restrict",
        obj=entry,
        occurred_at=as_of,
        after={
            "security": security_id,
            "issuer": issuer_id,
            "reason": entry.reason,
            "start_date": start_date,
            "end_date": end_date,
        },
    )
    return entry


# --- checking orders ----------------------------------------------------------------------------


def _check_locks(*, account_ids: set[int], security_ids: set[int]) -> None:
    """Take every account's and security slot's check lock in one round trip: accounts first,
    then security slots, each in id order (the subquery's ORDER BY fixes the order the locks
    are taken in, so two checks never deadlock)."""
    if not account_ids:
        return
    slots = sorted({s % SECURITY_LOCK_SLOTS for s in security_ids})
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_advisory_xact_lock(k.ns, k.id)) FROM ("
            " SELECT %s AS ns, id FROM unnest(%s::integer[]) AS a(id)"
            " UNION ALL SELECT %s, id FROM unnest(%s::integer[]) AS s(id)"
            " ORDER BY 1, 2) AS k",
            [ACCOUNT_LOCK_NAMESPACE, sorted(account_ids), SECURITY_LOCK_NAMESPACE, slots],
        )


def _candidate(order) -> Candidate:
    return Candidate(
        key=order.pk,
        order_id=order.pk,
        account_id=order.account_id,
        security_id=order.security_id,
        side=order.side,
        quantity=order.quantity - order.cum_qty,
        order_type=order.order_type,
        limit_price=order.limit_price,
        pm_id=order.pm_id,
    )


def _stage(*, order_ids: list[int], actor, as_of: datetime) -> None:
    """Send approved orders to the desk (an override frees one)."""
    if not order_ids:
        return
    orders_stage(order_ids=order_ids, actor=actor, as_of=as_of)


TARGET = {
    Verdict.PASS: ("APPROVED", "compliance_pass"),
    Verdict.WARN: ("AWAITING_OVERRIDE", "compliance_warn"),
    Verdict.BLOCK: ("BLOCKED", "compliance_block"),
}


@retry_on_conflict
def compliance_check_orders(*, order_ids: list[int], actor, as_of: datetime) -> dict[int, str]:
    """Check orders in PENDING_COMPLIANCE as one program and move each to APPROVED,
    AWAITING_OVERRIDE (a warning) or BLOCKED. Returns {order_id: "PASS"|"WARN"|"BLOCK"}.

    Approved orders stay APPROVED: the caller (orders.entry.orders_check_and_stage) stages
    them, in the same transaction."""
    orders = [
        o for o in orders_lock(order_ids=order_ids) if o.status == OrderStatus.PENDING_COMPLIANCE
    ]
    if not orders:
        return {}
    _check_locks(
        account_ids={o.account_id for o in orders}, security_ids={o.security_id for o in orders}
    )
    evaluated = program_evaluate(candidates=[_candidate(o) for o in orders], as_of=as_of)
    run = CheckRun.objects.create(
        kind=CheckRun.Kind.PRE_TRADE,
        as_of=as_of,
        actor=actor if getattr(actor, "pk", None) else None,
        order_count=len(orders),
    )
    # Rows as values (oms.bulk_rows.rows_insert): a 10,000-order program writes 10,000 checks
    # and tens of thousands of hits, and model instances cost more to build than to send.
    check_ids = rows_insert(
        OrderCheck,
        ["run_id", "order_id", "verdict", "results", "checked_at"],
        [(run.pk, o.pk, evaluated[o.pk][0], evaluated[o.pk][1], as_of) for o in orders],
    )
    rows_insert(
        RuleHit,
        [
            "order_check_id", "order_id", "rule_id", "rule_version_id", "outcome", "message",
            "checked_at",
        ],
        [
            # The hit is compliance's record: it keeps the detail a PM does not read.
            (check_id, o.pk, r["rule_id"], r["rule_version_id"], r["outcome"],
             r.get("detail", r["message"]), as_of)
            for check_id, o in zip(check_ids, orders, strict=True)
            for r in evaluated[o.pk][1]
            if r["outcome"] != Verdict.PASS
        ],
    )  # fmt: skip
    verdicts: dict[int, str] = {}
    details: dict[int, dict[str, Any]] = {}
    by_verdict: dict[str, list] = {}
    for order in orders:
        verdict, results = evaluated[order.pk]
        hits = [r["message"] for r in results if r["outcome"] != Verdict.PASS]
        details[order.pk] = (
            {"check_run": run.pk, "reasons": hits} if hits else {"check_run": run.pk}
        )
        by_verdict.setdefault(verdict, []).append(order)
        verdicts[order.pk] = verdict
    for verdict, group in by_verdict.items():
        to_status, kind = TARGET[Verdict(verdict)]
        orders_transition_bulk(
            orders=group,
            to_status=to_status,
            as_of=as_of,
            kind=kind,
            actor=actor,
            details_by_order=details,
            extra_fields_by_order={o.pk: {"compliance_status": verdict} for o in group},
        )
    return verdicts


def compliance_what_if(*, order_ids: list[int], actor, as_of: datetime) -> dict[int, str]:
    """Check existing orders again as one program, saving nothing: {order_id: verdict}.
    (The desk re-checks an internal cross this way.)"""
    orders = list(Order.objects.filter(pk__in=order_ids).order_by("pk"))
    evaluated = program_evaluate(candidates=[_candidate(o) for o in orders], as_of=as_of)
    return {key: verdict for key, (verdict, _results) in evaluated.items()}


def compliance_program_what_if(
    *, pm, as_of: datetime, lines: list[dict[str, Any]]
) -> dict[int, tuple[str, list[dict[str, Any]]]]:
    """What each line would get if `pm` submitted them together as one basket, saving nothing:
    {key: (verdict, results as pm reads them)}. A line: key, account_id, security_id, side,
    quantity, order_type, limit_price."""
    candidates = [Candidate(pm_id=pm.pk, **line) for line in lines]
    evaluated = program_evaluate(candidates=candidates, as_of=as_of)
    return {
        key: (verdict, results_for_viewer(results=results, user=pm))
        for key, (verdict, results) in evaluated.items()
    }


def _decimal(value: Any, name: str, errors: dict[str, list[str]]) -> Decimal | None:
    if value in (None, ""):
        return None
    try:
        result = Decimal(str(value))
    except InvalidOperation:
        errors[name] = [f"{value!r} is not a number."]
        return None
    if not result.is_finite() or result <= 0:
        errors[name] = ["Must be a positive number."]
        return None
    return result


def compliance_ticket_check(
    *,
    actor,
    as_of: datetime,
    account: str,
    symbol: str,
    side: str,
    quantity: Any,
    order_type: str = "MARKET",
    limit_price: Any = None,
    stop_price: Any = None,
    time_in_force: str = "DAY",
    expire_date: Any = None,
) -> dict[str, Any]:
    """The order ticket's Check button: what would this order get, saving nothing.
    {"verdict": "PASS"|"WARN"|"BLOCK", "results": [...]}."""
    errors: dict[str, list[str]] = {}
    if side not in Side.values:
        errors["side"] = [f"Side must be one of {', '.join(Side.values)}."]
    if order_type not in OrderType.values:
        errors["order_type"] = [f"Order type must be one of {', '.join(OrderType.values)}."]
    qty = _decimal(quantity, "quantity", errors)
    if qty is None and "quantity" not in errors:
        errors["quantity"] = ["Quantity is required."]
    limit = _decimal(limit_price, "limit_price", errors)
    stop = _decimal(stop_price, "stop_price", errors)
    code = str(account or "").strip()
    acct = accounts_visible_to(actor).filter(code=code).first() if code else None
    if acct is not None and has_role(actor, "PM") and not has_role(actor, "Admin", COMPLIANCE):
        # A PM who also holds a firm-wide role sees every account but checks only their own.
        if sees_all_accounts(actor) and not acct.managers.filter(pk=actor.pk).exists():
            acct = None
    if not code:
        errors["account"] = ["An account is required."]
    elif acct is None:
        raise account_not_found(code)
    security = Security.objects.filter(symbol=str(symbol or "").strip().upper()).first()
    if security is None:
        errors["symbol"] = [f"Unknown symbol {symbol!r}."]
    # Submit's own quantity and price checks: a field already refused keeps its first message.
    terms = order_terms_validate(
        security=security, order_type=order_type, quantity=qty, limit_price=limit, stop_price=stop
    )
    for field, messages in terms.items():
        errors.setdefault(field, messages)
    if errors:
        raise ValidationError(errors)
    candidate = Candidate(
        key=0,
        account_id=acct.pk,
        security_id=security.pk,
        side=side,
        quantity=qty,
        order_type=order_type,
        limit_price=limit,
        pm_id=actor.pk,
    )
    ctx = program_context(candidates=[candidate], as_of=as_of)
    verdict, results = context_evaluate(ctx)[0]
    return {
        "verdict": verdict,
        "results": results_for_viewer(results=results, user=actor),
        "review": _ticket_review(
            account=acct,
            security=security,
            quantity=qty,
            limit=limit,
            as_of=as_of,
            snapshot=ctx.snapshot,
        ),
    }


def _ticket_review(
    *, account, security, quantity: Decimal, limit, as_of: datetime, snapshot: PortfolioSnapshot
) -> dict:
    """What the ticket's review step shows before submit: the notional at the limit (else the
    reference) price in the security's currency, then in the account's currency and as a % of
    its NAV. No price: no notional, said so."""
    price = limit if limit is not None else security.reference_price
    review: dict[str, Any] = {
        "security_currency": security.currency,
        "price": price,
        "price_source": "limit" if limit is not None else "reference",
        "notional_security": None,
        "currency": account.base_currency,
        "notional": None,
        "nav": None,
        "pct_nav": None,
    }
    if price is None:
        return review
    price = Decimal(price)
    # The dirty amount, as every rule values it (oms.money.notional): a bond's face per 100
    # plus accrued interest, a contract's multiplier.
    amount = notional(
        terms=Terms.of(security), quantity=quantity, price=price, on=as_of.date()
    ).total
    review["notional_security"] = money_round(amount, security.currency)
    review.update(
        order_weight(
            account_id=account.pk, amount=amount, currency=security.currency, snapshot=snapshot
        )
    )
    # Decimals as strings, as the API gives every amount (no float on the way).
    return {k: str(v) if isinstance(v, Decimal) else v for k, v in review.items()}


# --- overrides --------------------------------------------------------------------------------


@retry_on_conflict
def compliance_override(*, order_id: int, actor, reason: str, as_of: datetime) -> Override:
    """Lift a warning (the order's PM) or a block (a Compliance user who is not the order's PM),
    with a reason; the order is approved and sent to the desk."""
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": ["An override needs a reason."]})
    try:
        order = order_lock(order_id=order_id)
    except Order.DoesNotExist:
        raise NotFound(f"Order {order_id} not found.") from None
    if order.status == OrderStatus.AWAITING_OVERRIDE:
        verdict = Verdict.WARN
        if actor.pk != order.pm_id:
            raise NotPermitted("Only the order's portfolio manager may override a warning.")
    elif order.status == OrderStatus.BLOCKED:
        verdict = Verdict.BLOCK
        if not has_role(actor, COMPLIANCE):
            raise NotPermitted("Only Compliance may override a block.")
        if actor.pk == order.pm_id:
            raise NotPermitted("Compliance may not override a block on their own order.")
    else:
        raise Conflict(
            f"Order {order_id} is {order.status}; only warned or blocked orders are overridden.",
            code="not_overridable",
        )
    check = OrderCheck.objects.filter(order_id=order.pk).order_by("-id").first()
    override = Override.objects.create(
        order=order, order_check=check, verdict=verdict, reason=reason, actor=actor, at=as_of
    )
    order_transition(
        order=order,
        to_status=OrderStatus.APPROVED,
        as_of=as_of,
        kind="compliance_override",
        actor=actor,
        details={"override": override.pk, "verdict": str(verdict), "reason": reason},
    )
    audit_record(
        actor=actor,
        action="compliance.override",
        obj=override,
        occurred_at=as_of,
        before={"order": order.pk, "status": str(TARGET[verdict][0])},
        after={"order": order.pk, "verdict": str(verdict), "reason": reason},
    )
    _stage(order_ids=[order.pk], actor=actor, as_of=as_of)
    return override


MAX_BULK_OVERRIDES = 500


@retry_on_conflict
def compliance_override_many(
    *, order_ids: list[int], actor, reason: str, as_of: datetime
) -> tuple[list[int], dict[int, str]]:
    """Override each order as compliance_override would, one audited override per order.
    An order the actor may not override (or no longer awaiting) is refused on its own and the
    rest go through: returns (overridden ids, {refused id: why})."""
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": ["An override needs a reason."]})
    ids = sorted(set(order_ids))
    if not ids:
        raise ValidationError({"order_ids": ["Pick at least one order to override."]})
    if len(ids) > MAX_BULK_OVERRIDES:
        raise ValidationError(
            {"order_ids": [f"At most {MAX_BULK_OVERRIDES} orders can be overridden at once."]}
        )
    done: list[int] = []
    refused: dict[int, str] = {}
    # Ascending ids: every bulk override locks its orders in the same order.
    for order_id in ids:
        # compliance_override runs in its own savepoint here: a refusal undoes only its order.
        try:
            compliance_override(order_id=order_id, actor=actor, reason=reason, as_of=as_of)
        except DomainError as exc:
            refused[order_id] = exc.message
        else:
            done.append(order_id)
    return done, refused


# --- post-trade ---------------------------------------------------------------------------------


@retry_on_conflict
def compliance_post_trade_run(*, actor, as_of: datetime, rule_id: int | None = None) -> CheckRun:
    """Run every rule in force (or one) against the portfolios as they stand and record the
    breaches, each with its likely cause: new since the last run with no trading in what it
    concerns means a price move."""
    if rule_id is not None and not Rule.objects.filter(pk=rule_id).exists():
        raise NotFound(f"Rule {rule_id} not found.")
    rules = rules_in_force(as_of=as_of, rule_ids=[rule_id] if rule_id is not None else None)
    previous_runs = CheckRun.objects.filter(kind=CheckRun.Kind.POST_TRADE, as_of__lte=as_of)
    previous_runs = previous_runs.filter(
        Q(rule=None) | Q(rule_id=rule_id) if rule_id is not None else Q(rule=None)
    )
    previous = previous_runs.order_by("-as_of", "-id").first()
    found = portfolio_breaches(rules=rules, as_of=as_of)
    run = CheckRun.objects.create(
        kind=CheckRun.Kind.POST_TRADE,
        as_of=as_of,
        actor=actor if getattr(actor, "pk", None) else None,
        rule_id=rule_id,
        breach_count=len(found),
    )
    seen = set()
    if previous is not None:
        seen = set(previous.breaches.values_list("rule_id", "account_id", "key"))
    since = (
        previous.as_of
        if previous is not None
        else datetime.combine(as_of.date(), dtime.min, tzinfo=as_of.tzinfo)
    )
    involved = {s for f in found for s in f.security_ids}
    traded = set(
        Order.objects.filter(
            security_id__in=involved, cum_qty__gt=0, updated_at__gte=since
        ).values_list("account_id", "security_id")
    )
    traded_securities = {s for (_a, s) in traded}
    breaches = []
    for f in found:
        if (f.spec.rule_id, f.account_id, f.key) in seen:
            cause = Breach.Cause.CARRIED
        elif (f.account_id is None and f.security_ids & traded_securities) or any(
            (f.account_id, s) in traded for s in f.security_ids
        ):
            cause = Breach.Cause.TRADING
        else:
            cause = Breach.Cause.PRICE_MOVE
        breaches.append(
            Breach(
                run=run,
                rule_id=f.spec.rule_id,
                rule_version_id=f.spec.version_id,
                account_id=f.account_id,
                key=f.key[:200],
                value=f.value,
                limit=f.limit,
                message=f.message,
                cause=cause,
            )
        )
    Breach.objects.bulk_create(breaches)
    audit_record(
        actor=actor,
        action="compliance.post_trade_run",
        obj=run,
        occurred_at=as_of,
        after={
            "rule": rule_id,
            "rules": [r.rule_id for r in rules],
            "breaches": len(breaches),
            "price_moves": sum(1 for b in breaches if b.cause == Breach.Cause.PRICE_MOVE),
        },
    )
    return run
