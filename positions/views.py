"""Pages: positions per account (live), the cash ladder, firm exposure with charts, and the
start-of-day upload for Operations."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils import timezone

from oms.errors import DomainError
from oms.query import NoQuery, QueryInvalid, page_query, problems_text
from oms.roles import ADMIN, OPERATIONS, has_role, sees_all_accounts
from oms.selectors import accounts_visible_to

from . import selectors
from .forms import CashPageQuery, HoldingsPageQuery
from .sod import sod_load

MAX_UPLOAD_BYTES = 20 * 1024 * 1024


def _chosen_accounts(request, query_form):
    form = page_query(query_form, request.GET)
    if not form.is_valid():
        raise QueryInvalid(problems_text(form.errors))
    visible = accounts_visible_to(request.user).order_by("code")
    code = request.GET.get("account", "").strip()
    if code:
        chosen = [a for a in visible if a.code == code]
        if not chosen:
            raise Http404("No such account.")
        return visible, chosen
    return visible, list(visible)


@login_required
def positions_page(request):
    visible, chosen = _chosen_accounts(request, HoldingsPageQuery)
    ids = [a.pk for a in chosen]
    rows = selectors.holdings(
        account_ids=ids,
        security_query=request.GET.get("security", "").strip(),
        sector=request.GET.get("sector", "").strip(),
    )
    navs = selectors.account_nav_figures(account_ids=ids)
    context = {
        "accounts": visible,
        "chosen": chosen,
        "rows": rows,
        # (account, NAV or None, why not: a rate missing from the FX rates table)
        "navs": [(a, *navs.get(a.pk, (None, None))) for a in chosen],
        "filters": {k: request.GET.get(k, "") for k in ("account", "security", "sector")},
        "account_ids": ",".join(str(i) for i in ids),
    }
    if request.GET.get("partial"):
        return render(request, "positions/_holdings.html", context)
    return render(request, "positions/positions.html", context)


@login_required
def cash_page(request):
    visible, chosen = _chosen_accounts(request, CashPageQuery)
    ladders = selectors.cash_ladders(account_ids=[a.pk for a in chosen])
    context = {
        "accounts": visible,
        "ladders": ladders,
        "filters": {"account": request.GET.get("account", "")},
        "account_ids": ",".join(str(a.pk) for a in chosen),
    }
    if request.GET.get("partial"):
        return render(request, "positions/_ladder.html", context)
    return render(request, "positions/cash.html", context)


@login_required
def exposure_page(request):
    page_query(NoQuery, request.GET)
    firm = sees_all_accounts(request.user)
    ids = None if firm else list(accounts_visible_to(request.user).values_list("pk", flat=True))
    # What could not be valued for a missing FX rate is left out and said on the page.
    fx_errors: list[str] = []
    by_sector = selectors.exposure(account_ids=ids, by="sector", fx_errors=fx_errors)
    by_issuer = selectors.exposure(account_ids=ids, by="issuer")[:15]
    by_security = selectors.exposure(account_ids=ids, by="security")[:25]
    nav = selectors.firm_nav(account_ids=ids, fx_errors=fx_errors)
    chart = {
        "sectors": [
            {"label": r.label, "long": str(r.long_value), "short": str(r.short_value)}
            for r in by_sector
        ],
        "issuers": [{"label": r.label, "net": str(r.net_value)} for r in by_issuer],
        "nav": str(nav) if nav else None,
    }
    return render(
        request,
        "positions/exposure.html",
        {
            "firm": firm,
            "nav": nav,
            "by_sector": by_sector,
            "by_issuer": by_issuer,
            "by_security": by_security,
            "chart": chart,
            "fx_errors": fx_errors,
        },
    )


class SodUploadForm(forms.Form):
    file = forms.FileField(help_text="Custodian start-of-day CSV")
    dry_run = forms.BooleanField(required=False, label="Validate only")


@login_required
def sod_upload_page(request):
    if not has_role(request.user, OPERATIONS, ADMIN):
        raise PermissionDenied
    errors: list[str] = []
    form = SodUploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        if upload.size > MAX_UPLOAD_BYTES:
            errors = ["The file is larger than 20 MB."]
        else:
            try:
                text = upload.read().decode("utf-8")
            except UnicodeDecodeError:
                text, errors = None, ["The file is not UTF-8 text."]
            if text is not None:
                errors = _sod_submit(request, text, upload.name, form.cleaned_data["dry_run"])
                if not errors:
                    return redirect("positions:sod_upload")
    return render(request, "positions/sod_upload.html", {"form": form, "errors": errors})


def _sod_submit(request, text: str, name: str, dry_run: bool) -> list[str]:
    from .sod import sod_parse

    if dry_run:
        parsed = sod_parse(text)
        if not parsed.errors:
            messages.success(
                request,
                f"{name} is valid: {len(parsed.positions)} position(s), "
                f"{len(parsed.cash)} cash line(s).",
            )
        return parsed.errors
    try:
        positions, cash = sod_load(text=text, as_of=timezone.now(), actor=request.user, source=name)
    except DomainError as exc:
        return exc.details.get("errors") or [exc.message]
    messages.success(request, f"Loaded {name}: {positions} position(s), {cash} cash balance(s).")
    return []
