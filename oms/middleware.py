from django.http import HttpResponse, JsonResponse

from .db import RETRY_AFTER_SECONDS, is_conflict

BUSY_MESSAGE = "The database is busy with conflicting changes; nothing was saved. Try again."


def busy_response(*, json: bool) -> HttpResponse:
    """503 with Retry-After: what a deadlock or serialization failure that outlived its
    retries answers (never a 500; nothing of the request was committed)."""
    if json:
        response: HttpResponse = JsonResponse(
            {"error": {"code": "database_busy", "message": BUSY_MESSAGE}}, status=503
        )
    else:
        response = HttpResponse(BUSY_MESSAGE, status=503, content_type="text/plain")
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


class RejectNulBytesMiddleware:
    """Postgres text cannot hold NUL; a query parameter or header carrying one is bad input
    (400 in the API's error format), not a database error."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        suspicious = (
            "%00" in request.META.get("QUERY_STRING", "")
            or any("\x00" in value for value in request.GET.values())
            or any("\x00" in str(value) for value in request.headers.values())
        )
        if suspicious:
            return JsonResponse(
                {"error": {"code": "invalid", "message": "NUL characters are not allowed."}},
                status=400,
            )
        return self.get_response(request)


class ConflictMiddleware:
    """A page or API view that a transaction conflict escaped (its use case ran out of
    retries, or it is not a use case that retries) answers 503 with Retry-After, not 500.
    The API's exception handler does the same for DRF views."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not is_conflict(exception):
            return None
        return busy_response(json=request.path.startswith("/api/"))
