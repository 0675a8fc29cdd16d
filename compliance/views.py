from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from oms.api import ID_MAX
from oms.errors import DomainError
from oms.models import Account
from oms.query import page_query, problems_text
from oms.roles import ADMIN, COMPLIANCE, has_role

from . import selectors, services
from .models import Rule


def _require_compliance(user) -> None:
    if not has_role(user, COMPLIANCE, ADMIN):
        raise PermissionDenied


AWAITING_PER_PAGE = 50
QUEUE_FILTERS = ("account", "rule", "pm")


class QueueQuery(forms.Form):
    """The names the queue takes (values are read by _queue_filters)."""

    account = forms.CharField(required=False)
    rule = forms.CharField(required=False)
    pm = forms.CharField(required=False)


def _queue_filters(params) -> tuple[dict, str | None]:
    """The queue's filters from a query string, or a message naming the one that is wrong."""
    form = page_query(QueueQuery, params)  # an unknown or repeated name: a 400 page naming it
    if not form.is_valid():  # e.g. a NUL character, which Postgres text cannot hold
        return {}, problems_text(form.errors)
    raw_rule = params.get("rule", "").strip()
    if raw_rule and not _is_id(raw_rule):
        return {}, f"Rule must be a rule id, not {raw_rule[:40]!r}."
    return {
        "account": params.get("account", "").strip()[:64],
        "rule_id": int(raw_rule) if raw_rule else None,
        "pm": params.get("pm", "").strip()[:150],
    }, None


def _is_id(raw: str) -> bool:
    # isdigit() alone takes "²" (int() refuses it) and numbers past a bigint.
    return raw.isascii() and raw.isdigit() and 0 < int(raw) <= ID_MAX


def _queue_query(params) -> str:
    query = QueryDict(mutable=True)
    for name in QUEUE_FILTERS:
        if params.get(name):
            query[name] = params[name]
    return query.urlencode()


@login_required
def dashboard(request):
    _require_compliance(request.user)
    filters, error = _queue_filters(request.GET)
    awaiting = [] if error else selectors.orders_awaiting_override(**filters)
    page = Paginator(awaiting, AWAITING_PER_PAGE).get_page(request.GET.get("page"))
    run, breaches = selectors.post_trade_latest()
    return render(
        request,
        "compliance/dashboard.html",
        {
            "rules": selectors.rules_with_hits(),
            "page": page,
            "awaiting": selectors.override_reasons(orders=page),
            "filters": request.GET,
            "filter_error": error,
            "query": _queue_query(request.GET),
            "accounts": Account.objects.order_by("code").values_list("code", flat=True),
            "run": run,
            "breaches": breaches,
            "all_rules": Rule.objects.order_by("name"),
        },
        status=400 if error else 200,
    )


@login_required
@require_POST
def post_trade_run(request):
    _require_compliance(request.user)
    raw = request.POST.get("rule", "").strip()
    rule_id = int(raw) if _is_id(raw) else None
    try:
        run = services.compliance_post_trade_run(
            actor=request.user, as_of=timezone.now(), rule_id=rule_id
        )
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Post-trade run {run.pk}: {run.breach_count} breach(es).")
    return redirect("compliance:dashboard")


@login_required
@require_POST
def override(request):
    _require_compliance(request.user)
    raw = request.POST.get("order_id", "")
    try:
        services.compliance_override(
            order_id=int(raw) if _is_id(raw) else 0,
            reason=request.POST.get("reason", ""),
            actor=request.user,
            as_of=timezone.now(),
        )
    except DomainError as exc:
        messages.error(request, exc.message)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"Order {raw} approved by override.")
    return redirect("compliance:dashboard")


@login_required
@require_POST
def override_bulk(request):
    _require_compliance(request.user)
    ids = [int(v) for v in request.POST.getlist("order_ids") if _is_id(v)]
    try:
        done, refused = services.compliance_override_many(
            order_ids=ids,
            reason=request.POST.get("reason", ""),
            actor=request.user,
            as_of=timezone.now(),
        )
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        if done:
            messages.success(request, f"{len(done)} order(s) approved by override.")
        for order_id, why in refused.items():
            messages.error(request, f"Order {order_id} not overridden: {why}")
    # Back to the same filtered queue (only the known filters travel, never a free URL).
    query = _queue_query(QueryDict(request.POST.get("filters", "")))
    return redirect(reverse("compliance:dashboard") + (f"?{query}" if query else ""))
