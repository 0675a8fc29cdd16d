"""The PM's pages: order ticket, My orders, basket and rebalance upload. The pages render the
frame; entry goes through the order API so the page and API share every check."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import render

from oms import roles
from oms.paging import page_of
from oms.query import page_query, page_status
from oms.roles import has_role
from oms.selectors import accounts_visible_to

from . import basket_services, selectors
from .forms import OrderFilterForm
from .lifecycle import OrderStatus
from .models import Order, OrderType, Side, TimeInForce
from .services import ORDER_INPUT_FIELDS


def _capture_allowed(request) -> None:
    if not has_role(request.user, roles.PM, roles.ADMIN):
        raise PermissionDenied("Only portfolio managers enter orders.")


def _tradable_accounts(user):
    if has_role(user, roles.ADMIN):
        return accounts_visible_to(user).filter(active=True)
    return user.managed_accounts.filter(active=True).order_by("code")


@login_required
def ticket(request):
    _capture_allowed(request)
    return render(
        request,
        "orders/ticket.html",
        {
            "accounts": _tradable_accounts(request.user),
            "sides": Side.choices,
            "order_types": OrderType.choices,
            "tifs": TimeInForce.choices,
        },
    )


@login_required
def my_orders(request):
    _capture_allowed(request)
    form = page_query(OrderFilterForm, request.GET)
    # A bad filter lists nothing (it once listed every order, as if it had been applied).
    orders = (
        selectors.order_list_values(
            selectors.order_list(user=request.user, filters=form.cleaned_data)
        )
        if form.is_valid()
        else Order.objects.none()
    )
    page = page_of(orders, request.GET.get("page"), 100)
    page.object_list = selectors.order_page_rows(page.object_list)
    return render(
        request,
        "orders/my_orders.html",
        {"form": form, "page": page, "statuses": OrderStatus},
        status=page_status(form),
    )


@login_required
def basket_upload(request):
    _capture_allowed(request)
    return render(
        request,
        "orders/basket_upload.html",
        {
            "max_lines": basket_services.MAX_CSV_LINES,
            "max_mb": basket_services.MAX_CSV_BYTES // (1024 * 1024),
            "basket_columns": ",".join(ORDER_INPUT_FIELDS),
            "rebalance_columns": ",".join(basket_services.REBALANCE_COLUMNS),
        },
    )
