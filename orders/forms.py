from django import forms

from .lifecycle import OrderStatus
from .models import Side


class OrderFilterForm(forms.Form):
    """The My orders filters (the same names as the API's list filters)."""

    status = forms.ChoiceField(choices=[("", "Any status"), *OrderStatus.choices], required=False)
    account = forms.CharField(required=False, max_length=32)
    symbol = forms.CharField(required=False, max_length=32)
    side = forms.ChoiceField(choices=[("", "Any side"), *Side.choices], required=False)
    date = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))


class OrderListQuery(forms.Form):
    """The API's order list filters, checked: a bad value is a 400 naming it (an impossible
    date once listed every order)."""

    status = forms.CharField(required=False, max_length=400)
    account = forms.CharField(required=False, max_length=32)
    security = forms.CharField(required=False, max_length=32)
    symbol = forms.CharField(required=False, max_length=32)
    side = forms.CharField(required=False, max_length=16)
    date = forms.DateField(required=False)
    date_from = forms.DateField(required=False)
    date_to = forms.DateField(required=False)

    def clean_status(self) -> str:
        wanted = [s.strip().upper() for s in self.cleaned_data["status"].split(",") if s.strip()]
        unknown = [s for s in wanted if s not in OrderStatus.values]
        if unknown:
            raise forms.ValidationError(f"Unknown status: {', '.join(unknown)}.")
        return ",".join(wanted)

    def clean_side(self) -> str:
        side = self.cleaned_data["side"].strip().upper()
        if side and side not in Side.values:
            raise forms.ValidationError(f"Unknown side: {side}.")
        return side


POSITIVE = r"^(0*[1-9][0-9]*(\.[0-9]*)?|0*\.0*[1-9][0-9]*)$"


class TicketInfoQuery(forms.Form):
    # Not found (404) for an account the caller may not trade or an unknown symbol.
    account = forms.CharField(max_length=32)
    symbol = forms.CharField(max_length=32)
    # Read by the view (a positive number, else a 400 naming it).
    quantity = forms.CharField(required=False, max_length=40)
    price = forms.CharField(required=False, max_length=40)

    query_schema = {name: {"type": "string", "pattern": POSITIVE} for name in ("quantity", "price")}
