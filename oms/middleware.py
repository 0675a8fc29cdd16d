from django.http import JsonResponse


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
