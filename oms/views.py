import json
from functools import wraps

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.templatetags.static import static
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from . import services
from .errors import DomainError, NotFound
from .forms import ExceptionFilterForm, ExceptionResolveForm
from .health import health_report
from .models import ExceptionKind, OpsException
from .query import page_query, page_status
from .roles import EXCEPTION_READERS, EXCEPTION_RESOLVERS, has_role
from .selectors import accounts_visible_to, exception_get, exceptions_list, exceptions_open_counts

EXCEPTIONS_PER_PAGE = 50


@login_required
def home(request):
    return render(request, "oms/home.html")


@login_required
def account_list(request):
    accounts = accounts_visible_to(request.user).prefetch_related("managers")
    return render(request, "oms/account_list.html", {"accounts": accounts})


@login_required
def account_detail(request, code: str):
    if "\x00" in code:  # no code holds one, and Postgres text cannot
        raise Http404("No such account.")
    # A foreign account is a 404, not a 403: its existence is not the PM's business either.
    account = get_object_or_404(accounts_visible_to(request.user), code=code)
    return render(request, "oms/account_detail.html", {"account": account})


@require_GET
def favicon(request):
    # Browsers ask for /favicon.ico on every page whatever the <link> says; send them to the icon.
    return redirect(static("favicon.svg"))


@require_GET
def healthz(request):
    healthy, report = health_report()
    return JsonResponse(
        {"status": "ok" if healthy else "degraded", **report}, status=200 if healthy else 503
    )


# --- The exceptions queue -----------------------------------------------------------------------


def _exceptions_role(roles: frozenset[str]):
    def decorate(view):
        @wraps(view)
        @login_required
        def wrapped(request, *args, **kwargs):
            if not has_role(request.user, *roles):
                raise PermissionDenied
            return view(request, *args, **kwargs)

        return wrapped

    return decorate


def _exception_or_404(exception_id: int) -> OpsException:
    try:
        return exception_get(exception_id=exception_id)
    except NotFound as exc:
        raise Http404(exc.message) from None


def _detail_rows(detail) -> list[tuple[str, str, bool]]:
    """The detail JSON as (key, text, is_block) rows: text as it is, anything else as
    indented JSON (a block when it is a list or an object)."""
    if not isinstance(detail, dict):
        return [("", json.dumps(detail, indent=2, ensure_ascii=False), True)]
    rows = []
    for key, value in detail.items():
        if isinstance(value, str):
            rows.append((key, value, "\n" in value))
        else:
            nested = isinstance(value, dict | list)
            text = json.dumps(value, indent=2 if nested else None, ensure_ascii=False)
            rows.append((key, text, nested))
    return rows


@_exceptions_role(EXCEPTION_READERS)
def exceptions_page(request):
    form = page_query(ExceptionFilterForm, request.GET)
    if form.is_valid():
        qs = exceptions_list(**form.selector_kwargs())
    else:
        qs = OpsException.objects.none()
    page = Paginator(qs, EXCEPTIONS_PER_PAGE).get_page(request.GET.get("page"))
    counts = exceptions_open_counts()
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "oms/exceptions.html",
        {
            "form": form,
            "page": page,
            "query": query.urlencode(),
            "open_total": sum(counts.values()),
            "open_by_kind": sorted(counts.items()),
            "kinds": sorted(set(ExceptionKind.KNOWN) | set(counts)),
        },
        status=page_status(form),
    )


def _render_detail(request, exception: OpsException, form: ExceptionResolveForm | None = None):
    may_resolve = exception.is_open and has_role(request.user, *EXCEPTION_RESOLVERS)
    return render(
        request,
        "oms/exception_detail.html",
        {
            "exception": exception,
            "detail_rows": _detail_rows(exception.detail),
            "form": (form or ExceptionResolveForm()) if may_resolve else None,
        },
    )


@_exceptions_role(EXCEPTION_READERS)
def exception_detail(request, exception_id: int):
    return _render_detail(request, _exception_or_404(exception_id))


@_exceptions_role(EXCEPTION_RESOLVERS)
@require_POST
def exception_resolve(request, exception_id: int):
    exception = _exception_or_404(exception_id)
    form = ExceptionResolveForm(request.POST)
    if not form.is_valid():
        return _render_detail(request, exception, form)
    try:
        services.exception_resolve(
            exception_id=exception.pk,
            note=form.cleaned_data["note"],
            actor=request.user,
            as_of=timezone.now(),
        )
    except DomainError as exc:
        messages.error(request, exc.message)
        return redirect("exception_detail", exception_id=exception.pk)
    messages.success(request, f"Exception {exception.pk} resolved.")
    return redirect("exceptions")
