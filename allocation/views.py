from functools import wraps

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.dateparse import parse_date
from django.views.decorators.http import require_POST

from oms.errors import DomainError, NotFound
from oms.roles import ADMIN, OPERATIONS, has_role
from orders.models import Block

from . import selectors, services
from .api_views import settlement_file_response
from .forms import AdjustForm, GenerateForm
from .models import BlockDay


def operations_only(view):
    @wraps(view)
    @login_required
    def wrapped(request, *args, **kwargs):
        if not has_role(request.user, OPERATIONS, ADMIN):
            raise PermissionDenied
        return view(request, *args, **kwargs)

    return wrapped


@operations_only
def operations(request):
    form = GenerateForm(request.POST or None, initial={"trade_date": timezone.now().date()})
    if request.method == "POST" and form.is_valid():
        results = services.settlement_files_generate(
            trade_date=form.cleaned_data["trade_date"], as_of=timezone.now(), actor=request.user
        )
        written = sum(1 for _, created in results if created)
        messages.success(
            request, f"{written} new file version(s); {len(results) - written} unchanged."
        )
        return redirect("allocation:operations")
    now = timezone.now()
    days = list(selectors.block_days(status=BlockDay.Status.OPEN)[:200])
    return render(
        request,
        "allocation/operations.html",
        {
            "form": form,
            "days": [(d, services.day_finalisable(d, d.block, now)) for d in days],
            "files": selectors.settlement_files()[:200],
        },
    )


@operations_only
@require_POST
def finalise(request, block_id: int):
    get_object_or_404(Block, pk=block_id)
    trade_date = parse_date(request.POST.get("trade_date") or "")
    try:
        if trade_date is None:
            raise DomainError("Say which trade date to finalise.", code="invalid")
        services.allocation_day_finalise(
            block_id=block_id, trade_date=trade_date, as_of=timezone.now(), actor=request.user
        )
        messages.success(request, f"Block {block_id} on {trade_date} finalised.")
    except DomainError as exc:
        messages.error(request, exc.message)
    return redirect("allocation:operations")


@operations_only
def block_allocations(request, block_id: int):
    block = get_object_or_404(Block.objects.select_related("security"), pk=block_id)
    days = list(selectors.block_days(block_id=block_id).order_by("trade_date"))
    open_day = next((d for d in days if d.status == BlockDay.Status.OPEN), None)
    shares = list(selectors.day_shares(block_id=block_id))
    open_shares = [s for s in shares if open_day and s.day_id == open_day.pk]
    form = AdjustForm(request.POST or None, shares=open_shares)
    if request.method == "POST" and open_day and form.is_valid():
        try:
            services.allocation_adjust(
                block_id=block_id,
                trade_date=open_day.trade_date,
                quantities=form.quantities(),
                reason=form.cleaned_data["reason"],
                actor=request.user,
                as_of=timezone.now(),
            )
            messages.success(request, "Allocation adjusted.")
            return redirect("allocation:block", block_id=block_id)
        except DomainError as exc:
            form.add_error(None, exc.message)
    return render(
        request,
        "allocation/block.html",
        {
            # Not "block": inside a template's {% block %}, that name is the block tag itself.
            "trading_block": block,
            "days": days,
            "open_day": open_day,
            "shares": shares,
            "allocations": list(selectors.allocations(block_id=block_id, include_replaced=True)),
            "form": form,
            "rows": [(share, form[name]) for share, name in form.order_fields],
        },
    )


@operations_only
def settlement_file_download(request, file_id: int):
    try:
        sf = services.settlement_file_download(
            file_id=file_id, actor=request.user, as_of=timezone.now()
        )
    except NotFound as exc:
        raise Http404(exc.message) from exc
    return settlement_file_response(sf)
