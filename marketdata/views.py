"""The TCA page (Traders, Compliance, Admin) and its CSV export. Thin: the figures are the
API's (marketdata.tca_selectors); the page's charts fetch /api/tca/."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.shortcuts import render
from django.utils import timezone
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request

from fixgateway.models import Broker
from oms.csvio import write_csv
from oms.roles import ADMIN, COMPLIANCE, PM, TRADER, has_role

from . import selectors, tca_selectors
from .api_views import tca_filter

PAGE_ROLES = (TRADER, COMPLIANCE, ADMIN)


@login_required
def tca_page(request):
    if not has_role(request.user, *PAGE_ROLES):
        raise PermissionDenied
    try:
        flt, by = tca_filter(Request(request))
    except ValidationError as exc:
        return render(request, "marketdata/tca.html", {"errors": exc.detail}, status=400)
    from django.contrib.auth import get_user_model

    pms = (
        get_user_model()
        .objects.filter(groups__name=PM)
        .order_by("username")
        .values_list("username", flat=True)
    )
    return render(
        request,
        "marketdata/tca.html",
        {
            "flt": flt,
            "by": by,
            "dimensions": tca_selectors.DIMENSIONS,
            "brokers": Broker.objects.order_by("code").values_list("code", flat=True),
            "pms": pms,
            "strategies": ["DMA", "VWAP", "TWAP", "POV"],
            "market": selectors.market_status(as_of=timezone.now()),
        },
    )


ORDER_COLUMNS = [
    "order", "block", "account", "pm", "trader", "broker", "strategy", "symbol", "side",
    "quantity", "filled", "avg_price", "status", "received_at", "arrival_desk", "arrival_route",
    "arrival_source", "interval_vwap", "close", "shortfall_arrival_bps", "shortfall_vwap_bps",
    "shortfall_close_bps", "fill_rate", "first_fill_seconds", "notional",
]  # fmt: skip


@login_required
def tca_export(request):
    """The figures on the page as CSV: per order (by=order) or per group."""
    if not has_role(request.user, *PAGE_ROLES):
        raise PermissionDenied
    try:
        flt, by = tca_filter(Request(request))
    except ValidationError as exc:
        return HttpResponse(f"Bad parameters: {exc.detail}", status=400, content_type="text/plain")
    rows = tca_selectors.tca_orders(user=request.user, flt=flt, as_of=timezone.now())
    if by == "order":
        header, data = ORDER_COLUMNS, rows
    else:
        data = tca_selectors.tca_summary(rows, by=by)
        header = list(data[0]) if data else [by, "orders"]
    text = write_csv(header, ([row.get(c) for c in header] for row in data))
    response = HttpResponse(text, content_type="text/csv")
    name = f"tca-{by}-{flt.date_from}-{flt.date_to}.csv"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response
