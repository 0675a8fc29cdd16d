"""Reading compliance results: an order's latest check, hits per rule, overrides awaited."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db.models import Count, Q, QuerySet

from oms.roles import sees_all_accounts
from orders.lifecycle import OrderStatus
from orders.models import Order

from .models import Breach, CheckRun, OrderCheck, Override, Rule, RuleHit


def results_for_viewer(*, results: list[dict[str, Any]], user) -> list[dict[str, Any]]:
    """The results as `user` may read them: the desk and compliance get each rule's detail
    (another PM's order named), a PM only the message, which names no other PM's order."""
    firm_wide = user is not None and sees_all_accounts(user)
    shown = []
    for r in results:
        if "detail" not in r:
            shown.append(r)
            continue
        r = dict(r)
        detail = r.pop("detail")
        if firm_wide:
            r["message"] = detail
        shown.append(r)
    return shown


def order_compliance(*, order_id: int, user=None) -> dict[str, Any] | None:
    """{"verdict": "PASS"|"WARN"|"BLOCK", "results": [...]} of the order's latest check (plus
    when it ran and any overrides), or None if it was never checked. Without a user the
    results are as a PM reads them."""
    check = (
        OrderCheck.objects.filter(order_id=order_id)
        .order_by("-id")
        .only("verdict", "results", "checked_at")
        .first()
    )
    if check is None:
        return None
    overrides = [
        {
            "verdict": o.verdict,
            "reason": o.reason,
            "by": o.actor.get_username(),
            "at": o.at.isoformat(),
        }
        for o in Override.objects.filter(order_id=order_id).select_related("actor")
    ]
    return {
        "verdict": check.verdict,
        "results": results_for_viewer(results=check.results, user=user),
        "checked_at": check.checked_at.isoformat(),
        "overrides": overrides,
    }


def rules_with_hits(*, hits_per_rule: int = 20) -> list[dict[str, Any]]:
    """Every rule with its hit counts and its latest hits (order, outcome, message)."""
    rules = list(
        Rule.objects.select_related("current_version").annotate(
            warn_count=Count("hits", filter=Q(hits__outcome="WARN")),
            block_count=Count("hits", filter=Q(hits__outcome="BLOCK")),
        )
    )
    out = []
    for rule in rules:
        hits = list(
            RuleHit.objects.filter(rule=rule)
            .select_related("order__account", "order__security", "rule_version")
            .order_by("-checked_at", "-id")[:hits_per_rule]
        )
        out.append({"rule": rule, "hits": hits})
    return out


def orders_awaiting_override(
    *, account: str = "", rule_id: int | None = None, pm: str = ""
) -> QuerySet:
    """Warned and blocked orders, oldest first, narrowed by account code, a rule that warned or
    blocked them, and the PM's username."""
    qs = Order.objects.filter(
        status__in=[OrderStatus.AWAITING_OVERRIDE, OrderStatus.BLOCKED]
    ).select_related("account", "security", "pm")
    if account:
        qs = qs.filter(account__code=account)
    if pm:
        qs = qs.filter(pm__username=pm)
    if rule_id is not None:
        hit = RuleHit.objects.filter(rule_id=rule_id).exclude(outcome="PASS")
        qs = qs.filter(pk__in=hit.values("order_id"))
    return qs.order_by("received_at", "pk")


def override_reasons(*, orders: Iterable[Any]) -> list[dict[str, Any]]:
    """Each order with the messages of its latest check that did not pass (one query)."""
    orders = list(orders)
    latest: dict[int, OrderCheck] = {}
    for check in OrderCheck.objects.filter(order_id__in=[o.pk for o in orders]).order_by("id"):
        latest[check.order_id] = check
    return [
        {
            "order": o,
            "reasons": [
                r.get("detail", r["message"])
                for r in (latest[o.pk].results if o.pk in latest else [])
                if r["outcome"] != "PASS"
            ],
        }
        for o in orders
    ]


def post_trade_latest() -> tuple[CheckRun | None, list[Breach]]:
    run = CheckRun.objects.filter(kind=CheckRun.Kind.POST_TRADE).order_by("-as_of", "-id").first()
    if run is None:
        return None, []
    breaches = list(
        run.breaches.select_related("rule", "rule_version", "account").order_by(
            "rule__name", "account__code", "key"
        )
    )
    return run, breaches
