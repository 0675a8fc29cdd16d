"""The gateway's pages: the FIX message monitor. Thin: read the filter, one selector call."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.shortcuts import render

from oms.query import page_query, page_status
from oms.roles import ADMIN, COMPLIANCE, OPERATIONS, TRADER, has_role

from . import selectors
from .forms import FixMessageFilterForm
from .models import Broker, FixMessage

MESSAGES_PER_PAGE = 50
MONITOR_READERS = (TRADER, ADMIN, COMPLIANCE, OPERATIONS)


@login_required
def messages_page(request):
    if not has_role(request.user, *MONITOR_READERS):
        raise PermissionDenied
    form = page_query(FixMessageFilterForm, request.GET)
    qs = (
        selectors.fix_messages(**form.selector_kwargs())
        if form.is_valid()
        else FixMessage.objects.none()
    )
    page = Paginator(qs, MESSAGES_PER_PAGE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "fixgateway/messages.html",
        {
            "form": form,
            "page": page,
            "rows": [selectors.fix_message_row(m) for m in page],
            "query": query.urlencode(),
            "brokers": Broker.objects.order_by("code").values_list("code", flat=True),
            "msg_types": sorted(selectors.MONITORED_MSG_TYPES.items()),
        },
        status=page_status(form),
    )
