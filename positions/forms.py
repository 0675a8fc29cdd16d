"""The query strings of the positions pages and API: the names each takes (an unknown or
repeated one is a 400, oms.query) and what their values may be."""

from __future__ import annotations

from django import forms

EXPOSURE_BY = ["security", "issuer", "sector"]


class CashQuery(forms.Form):
    # Account ids or codes, comma-separated or repeated.
    repeatable = ("account",)

    account = forms.CharField(required=False)


class HoldingsQuery(CashQuery):
    security = forms.CharField(required=False, max_length=200)
    sector = forms.CharField(required=False, max_length=64)


class ExposureQuery(CashQuery):
    by = forms.ChoiceField(choices=[(b, b) for b in EXPOSURE_BY], required=False)


class HoldingsPageQuery(forms.Form):
    account = forms.CharField(required=False)
    security = forms.CharField(required=False, max_length=200)
    sector = forms.CharField(required=False, max_length=64)
    partial = forms.CharField(required=False)  # the live refresh asks for the table alone


class CashPageQuery(forms.Form):
    account = forms.CharField(required=False)
    partial = forms.CharField(required=False)
