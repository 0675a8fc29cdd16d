from functools import wraps

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from oms.errors import DomainError
from oms.roles import ADMIN, OPERATIONS, has_role
from orders.models import Block

from . import selectors, services
from .api_views import settlement_file_response
from .forms import AdjustForm, GenerateForm
from .models import Allocation, AllocationPlan


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
    plans = list(selectors.plans_open()[:200])
    drift = {p.pk: selectors.plan_drift(plan=p) for p in plans}
    return render(
        request,
        "allocation/operations.html",
        {
            "form": form,
            "plans": [(p, drift[p.pk], p.block.status in services.DONE_STATUSES) for p in plans],
            "files": selectors.settlement_files()[:200],
        },
    )


@operations_only
@require_POST
def finalise(request, block_id: int):
    block = get_object_or_404(Block, pk=block_id)
    try:
        services.allocation_finalise(block=block, as_of=timezone.now(), actor=request.user)
        messages.success(request, f"Block {block_id} finalised.")
    except DomainError as exc:
        messages.error(request, exc.message)
    return redirect("allocation:operations")


@operations_only
def block_allocations(request, block_id: int):
    plan = get_object_or_404(
        AllocationPlan.objects.select_related("block__security"), block_id=block_id
    )
    allocations = list(
        Allocation.objects.filter(plan=plan).select_related("account", "order").order_by("order")
    )
    form = AdjustForm(request.POST or None, allocations=allocations)
    if request.method == "POST" and form.is_valid():
        try:
            services.allocation_adjust(
                block_id=block_id,
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
            "plan": plan,
            "block": plan.block,
            "form": form,
            "rows": [(a, form[name]) for a, name in form.order_fields],
            "drift": selectors.plan_drift(plan=plan),
        },
    )


@operations_only
def settlement_file_download(request, file_id: int):
    sf = services.settlement_file_download(
        file_id=file_id, actor=request.user, as_of=timezone.now()
    )
    return settlement_file_response(sf)
