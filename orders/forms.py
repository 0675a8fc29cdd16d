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
