from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from oms.errors import DomainError
from oms.roles import ADMIN, COMPLIANCE, has_role

from . import selectors, services
from .models import Rule


def _require_compliance(user) -> None:
    if not has_role(user, COMPLIANCE, ADMIN):
        raise PermissionDenied


@login_required
def dashboard(request):
    _require_compliance(request.user)
    run, breaches = selectors.post_trade_latest()
    return render(
        request,
        "compliance/dashboard.html",
        {
            "rules": selectors.rules_with_hits(),
            "awaiting": selectors.orders_awaiting_override(),
            "run": run,
            "breaches": breaches,
            "all_rules": Rule.objects.order_by("name"),
        },
    )


@login_required
@require_POST
def post_trade_run(request):
    _require_compliance(request.user)
    raw = request.POST.get("rule", "").strip()
    rule_id = int(raw) if raw.isdigit() else None
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
            order_id=int(raw) if raw.isdigit() else 0,
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
