"""What a request that fails outside a view's own handling gets: never a debug page, JSON under
/api/ and a page elsewhere, and 503 with Retry-After when the database is only busy (the pool
had no free connection in time, the server had no slot, a deadlock outlived its retries)."""

from __future__ import annotations

import sys

from django.db import DatabaseError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template import loader

from .db import CONFLICT_SQLSTATES, exception_causes
from .query import QueryInvalid

RETRY_AFTER_SECONDS = 2
# SQLSTATEs of a server that is busy rather than broken: a conflict that outlived its retries
# (deadlock, serialization failure), too many connections, lock not available, cannot connect
# now (starting up or shutting down).
_BUSY_SQLSTATES = CONFLICT_SQLSTATES | {"53300", "55P03", "57P03"}


def database_busy(exc: BaseException | None) -> bool:
    """Whether `exc` (or what caused it) says the database is busy: worth retrying later."""
    return any(
        type(cause).__name__ == "PoolTimeout"
        or getattr(cause, "sqlstate", None) in _BUSY_SQLSTATES
        or (isinstance(cause, OperationalError) and "too many clients" in str(cause))
        for cause in exception_causes(exc, with_context=True)
    )


def _answer(request: HttpRequest, status: int, code: str, message: str) -> HttpResponse:
    if request.path.startswith("/api/"):
        response: HttpResponse = JsonResponse(
            {"error": {"code": code, "message": message}}, status=status
        )
    else:
        template = loader.get_template("error.html")
        response = HttpResponse(
            template.render({"status": status, "message": message}), status=status
        )
    return response


def busy_response(request: HttpRequest) -> HttpResponse:
    """503 with Retry-After: nothing of the request was committed; it may simply be sent again."""
    response = _answer(request, 503, "busy", "The OMS is busy right now; try again in a moment.")
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def server_error(request: HttpRequest) -> HttpResponse:
    exc = sys.exc_info()[1]
    if database_busy(exc):
        return busy_response(request)
    if isinstance(exc, DatabaseError):
        response = _answer(request, 503, "unavailable", "The database is unavailable.")
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response
    return _answer(request, 500, "error", "Something went wrong; it has been logged.")


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    # Only our own message is shown: a SuspiciousOperation's says more than a caller needs.
    if isinstance(exception, QueryInvalid):
        return _answer(request, 400, "invalid", str(exception))
    return _answer(request, 400, "invalid", "The request could not be understood.")


def permission_denied(request: HttpRequest, exception: Exception) -> HttpResponse:
    return _answer(request, 403, "permission_denied", "You do not have access to this page.")


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    return _answer(request, 404, "not_found", "There is nothing at this address.")
