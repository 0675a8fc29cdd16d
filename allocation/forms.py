from django import forms


class GenerateForm(forms.Form):
    trade_date = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}))


class AdjustForm(forms.Form):
    """One quantity field per order sharing the open trading day, plus the reason."""

    reason = forms.CharField(max_length=500, widget=forms.TextInput(attrs={"size": 60}))

    def __init__(self, *args, shares=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.order_fields = []
        for share in shares:
            name = f"order_{share.order_id}"
            self.fields[name] = forms.DecimalField(
                min_value=0, max_digits=28, decimal_places=8, initial=share.quantity
            )
            self.order_fields.append((share, name))

    def quantities(self) -> dict:
        return {share.order_id: self.cleaned_data[name] for share, name in self.order_fields}
