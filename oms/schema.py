"""The OpenAPI schema says what the API really answers. Every operation documents, besides its
own answers, the errors any endpoint of its kind gives, each with the one error body
(oms.api.exception_handler): 400 (a bad parameter or body, an unknown parameter, JSON nested
too deep), 401 (no or a bad token), 403 (a role the endpoint refuses), 404 (a path's id that
names nothing, a page past the last), 503 (the database busy: Retry-After). An operation
declares the rest itself (409, 429)."""

from __future__ import annotations

import re

from django import forms
from django.core.validators import RegexValidator
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import serializers
from rest_framework.permissions import AllowAny

from .api import HasRole


class ErrorBodyOut(serializers.Serializer):
    code = serializers.CharField(help_text="e.g. invalid, not_found, not_authenticated, busy")
    message = serializers.CharField()
    fields = serializers.DictField(
        child=serializers.JSONField(),
        required=False,
        help_text="400: each parameter or field in error, with what is wrong with it (a list "
        "of messages; for a list or an object, its items' errors keyed by index or name)",
    )
    details = serializers.DictField(required=False)


class ErrorOut(serializers.Serializer):
    error = ErrorBodyOut()


def error(description: str) -> OpenApiResponse:
    return OpenApiResponse(ErrorOut, description=description)


BAD_INPUT = "a parameter or field is unknown, given twice or invalid (error.fields names each)"
UNAUTHENTICATED = "no credentials, or a token that is not valid (WWW-Authenticate: Token)"
REFUSED = "signed in, but without a role this endpoint allows"
NOT_FOUND = "nothing with this id (or not visible to the caller), or a page past the last one"
BUSY = "the database is busy: nothing was done; try again after Retry-After seconds"
UNSUPPORTED = "the body is not in a media type this endpoint reads"


class OmsAutoSchema(AutoSchema):
    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction=direction)
        if direction != "response":
            return responses
        for code, description in self._error_codes().items():
            if code not in responses:
                responses[code] = self._get_response_for_code(error(description), code)
            elif "content" not in responses[code]:
                # Declared with a description only: the body is the error body all the same.
                described = responses[code].get("description") or description
                responses[code] = self._get_response_for_code(error(described), code)
        return responses

    def _error_codes(self) -> dict[str, str]:
        permissions = self.view.get_permissions()
        codes = {"400": BAD_INPUT}
        if not any(isinstance(p, AllowAny) for p in permissions):
            codes["401"] = UNAUTHENTICATED
        if any(isinstance(p, HasRole) for p in permissions):
            codes["403"] = REFUSED
        if self._has_path_parameters() or self._is_list_view():
            codes["404"] = NOT_FOUND
        if self.method in ("POST", "PUT", "PATCH") and self.view.parser_classes:
            codes["415"] = UNSUPPORTED
        codes["503"] = BUSY
        # What a view's own checks add (e.g. a 404 for an id named in the body).
        codes.update(getattr(self.view, "schema_errors", {}))
        return codes

    def _map_serializer(self, serializer, direction, bypass_extensions=False):
        schema = super()._map_serializer(serializer, direction, bypass_extensions)
        if direction == "request" and getattr(serializer, "refuses_unknown_fields", False):
            # It answers 400 to a field it does not take: say so, or a client (and a fuzzer)
            # would take extra fields for allowed.
            schema["additionalProperties"] = False
        if direction == "request":
            _non_blank_patterns(serializer, schema)
        return schema

    def _has_path_parameters(self) -> bool:
        return "{" in self.path


def _non_blank_patterns(serializer, schema: dict) -> None:
    """A text field that strips whitespace and refuses blank answers 400 to "  ": its schema
    says it needs a character that is not whitespace (minLength alone lets "  " through)."""
    properties = schema.get("properties", {})
    for name, field in getattr(serializer, "fields", {}).items():
        prop = properties.get(name)
        if (
            prop is not None
            and type(field) is serializers.CharField
            and field.trim_whitespace
            and not field.allow_blank
            and not field.read_only
            and prop.get("type") == "string"
            and "pattern" not in prop
        ):
            prop["pattern"] = r"\S"


def _form_field_schema(field: forms.Field) -> dict:
    if isinstance(field, forms.ChoiceField):
        return {"type": "string", "enum": [str(k) for k, _ in field.choices if k != ""]}
    if isinstance(field, forms.DateField):
        return {"type": "string", "format": "date"}
    if isinstance(field, forms.IntegerField):
        schema: dict = {"type": "integer"}
        if field.min_value is not None:
            schema["minimum"] = field.min_value
        if field.max_value is not None:
            schema["maximum"] = field.max_value
        return schema
    schema = {"type": "string"}
    if getattr(field, "max_length", None):
        schema["maxLength"] = field.max_length
    patterns = [
        v.regex.pattern
        for v in field.validators
        if isinstance(v, RegexValidator) and not v.inverse_match
    ]
    if patterns:
        schema["pattern"] = patterns[0]
    elif field.required:
        # A required text is more than whitespace (the form strips it).
        schema["pattern"] = r"\S"
    return schema


def form_parameters(form_class, **descriptions: str) -> list[OpenApiParameter]:
    """A Django form reading a query string, as the schema's query parameters: the same
    names, types, choices and lengths the form checks (query_or_400)."""
    repeatable = set(getattr(form_class, "repeatable", ()))
    params = []
    overrides = getattr(form_class, "query_schema", {})
    for name, field in form_class.base_fields.items():
        schema = overrides.get(name) or _form_field_schema(field)
        if name in repeatable:
            schema = {"type": "array", "items": schema}
        params.append(
            OpenApiParameter(
                name,
                schema,
                OpenApiParameter.QUERY,
                required=field.required,
                description=descriptions.get(name) or str(field.help_text or ""),
                explode=True if name in repeatable else None,
            )
        )
    return params


# drf-spectacular's pattern for a decimal string lets every digit be optional, so it admits ""
# and "-." (which no decimal field takes); this one wants a digit.
_LOOSE_DECIMAL_START = "^-?\\d{0,"


def _decimal_pattern(schema: dict) -> None:
    pattern = schema.get("pattern", "")
    bounds = re.findall(r"\{0,(\d+)\}", pattern)
    if not pattern.startswith(_LOOSE_DECIMAL_START) or len(bounds) != 2:
        return
    whole, places = bounds
    sign = "" if float(schema.get("minimum", -1)) >= 0 else "-?"
    schema["pattern"] = rf"^{sign}(\d{{1,{whole}}}(\.\d{{0,{places}}})?|\.\d{{1,{places}}})$"


def _walk(node) -> None:
    if isinstance(node, dict):
        if node.get("type") == "string" and node.get("format") == "decimal":
            _decimal_pattern(node)
        for value in node.values():
            _walk(value)
    elif isinstance(node, list):
        for value in node:
            _walk(value)


def postprocess(result, generator, request, public):
    """What the generated schema leaves unsaid: an optional query parameter given empty counts
    as not given everywhere (forms, filters, paging), and a decimal string has a digit."""
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []) if isinstance(operation, dict) else []:
                if parameter.get("in") == "query" and not parameter.get("required"):
                    parameter["allowEmptyValue"] = True
    _walk(result)
    return result
