from django import forms


class GenerateForm(forms.Form):
    trade_date = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}))


class AdjustForm(forms.Form):
    """One quantity field per order of the block, plus the reason."""

    reason = forms.CharField(max_length=500, widget=forms.TextInput(attrs={"size": 60}))

    def __init__(self, *args, allocations=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.order_fields = []
        for alloc in allocations:
            name = f"order_{alloc.order_id}"
            self.fields[name] = forms.DecimalField(
                min_value=0, max_digits=28, decimal_places=8, initial=alloc.quantity
            )
            self.order_fields.append((alloc, name))

    def quantities(self) -> dict:
        return {alloc.order_id: self.cleaned_data[name] for alloc, name in self.order_fields}
