"""The API's JSON parser. A module of its own: REST_FRAMEWORK names it in the settings, and
DRF's APIView reads those settings when rest_framework.views is first imported; a module that
imports rest_framework.views (oms.api) cannot also define a class the settings name."""

from __future__ import annotations

from rest_framework import parsers
from rest_framework.exceptions import ParseError

MAX_JSON_DEPTH = 32


def _json_depth_over(data, limit: int) -> bool:
    """Whether `data` nests lists and objects deeper than `limit` (walked without recursion)."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser with a nesting limit: no request of the OMS nests deeper than a few
    levels, and a body nested a thousand deep made the decoder recurse out of the stack (a
    500, even for the anonymous token endpoint)."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError as exc:
            raise ParseError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels.") from exc
        if _json_depth_over(data, MAX_JSON_DEPTH):
            raise ParseError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels.")
        return data


class UploadParser(parsers.MultiPartParser):
    """The multipart parser of the file uploads (baskets): the one body the API documents
    as other than JSON (SPECTACULAR_SETTINGS' PARSER_WHITELIST)."""
