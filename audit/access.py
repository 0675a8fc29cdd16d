"""Refused requests on the audit trail: every 401 and 403, every 404 a signed-in user gets from
a view (that is how the OMS hides another PM's objects: it does not say they exist), CSRF
failures, and refused or revoked websockets. One action, "access.denied", with the path, the
method, the status and the reason."""

from __future__ import annotations

import json
import logging
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import DatabaseError
from django.http import Http404
from django.views.csrf import csrf_failure as django_csrf_failure

from . import context
from .services import audit_record

logger = logging.getLogger(__name__)

ACCESS_DENIED = "access.denied"
_REASON_ATTR = "_oms_denial_reason"


def access_denied_record(
    *,
    user: Any,
    channel: str,
    path: str,
    method: str,
    status: int,
    reason: str,
    ip: str = "",
) -> None:
    """Record one refusal. Never raises: the request is refused whether or not the record
    could be written (a database outage must not turn a 403 into a 500)."""
    authenticated = bool(getattr(user, "is_authenticated", False))
    current = context.current()
    token = context.bind(context.RequestContext(request_id=current.request_id, ip=ip or current.ip))
    try:
        audit_record(
            actor=user if authenticated else None,
            action=ACCESS_DENIED,
            object_type=channel,
            object_id=path[:64],
            object_repr=f"{method} {path}"[:200],
            after={
                "channel": channel,
                "path": path[:2000],
                "method": method,
                "status": status,
                "reason": reason[:500],
                "user": user.get_username() if authenticated else None,
            },
        )
    except DatabaseError:
        logger.exception("could not audit a refused %s %s (%s)", method, path, status)
    finally:
        context.reset(token)


def _reason(request, response) -> str:
    data = getattr(response, "data", None)  # a DRF response carries our error body
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        return f"{data['error'].get('code', '')}: {data['error'].get('message', '')}"
    stashed = getattr(request, _REASON_ATTR, "")
    if stashed:
        return stashed
    if response.get("Content-Type", "").startswith("application/json"):
        try:
            error = json.loads(response.content).get("error", {})
            return f"{error.get('code', '')}: {error.get('message', '')}"
        except (ValueError, AttributeError):
            pass
    return response.reason_phrase or str(response.status_code)


def _client_ip(request) -> str:
    return request.META.get("REMOTE_ADDR", "")


class AccessDeniedAuditMiddleware:
    """Sits after AuthenticationMiddleware. It looks at the final response, so it sees the
    refusals of pages, of the API (DRF sets request.user for token callers too) and of the
    CSRF check alike."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        status = response.status_code
        user = getattr(request, "user", None)
        signed_in = bool(getattr(user, "is_authenticated", False))
        # A 404 only counts when a view said it (the URL resolved): a missing favicon is not a
        # refusal, another PM's order id is.
        refused = status in (401, 403) or (
            status == 404 and signed_in and getattr(request, "resolver_match", None) is not None
        )
        if refused:
            access_denied_record(
                user=user,
                channel="http",
                path=request.get_full_path(),
                method=request.method,
                status=status,
                reason=_reason(request, response),
                ip=_client_ip(request),
            )
        return response

    def process_exception(self, request, exception):
        if isinstance(exception, PermissionDenied | Http404):
            setattr(
                request,
                _REASON_ATTR,
                f"{type(exception).__name__}: {exception}"
                if str(exception)
                else type(exception).__name__,
            )
        return None


def csrf_failure(request, reason: str = "", template_name: str = "403_csrf.html"):
    """Django's CSRF failure page, with the reason kept for the audit record."""
    setattr(request, _REASON_ATTR, f"CSRF: {reason}")
    return django_csrf_failure(request, reason=reason)
