from django.contrib.auth.decorators import login_required
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from .health import health_report
from .selectors import accounts_visible_to


@login_required
def home(request):
    return render(request, "oms/home.html")


@login_required
def account_list(request):
    accounts = accounts_visible_to(request.user).prefetch_related("managers")
    return render(request, "oms/account_list.html", {"accounts": accounts})


@login_required
def account_detail(request, code: str):
    # A foreign account is a 404, not a 403: its existence is not the PM's business either.
    account = get_object_or_404(accounts_visible_to(request.user), code=code)
    return render(request, "oms/account_detail.html", {"account": account})


@require_GET
def healthz(request):
    healthy, report = health_report()
    return JsonResponse(
        {"status": "ok" if healthy else "degraded", **report}, status=200 if healthy else 503
    )
