from django import forms
from django.contrib import admin

from audit.admin import AuditedAdminMixin
from oms.models import AssetClass

from .models import FeeRule


class FeeRuleForm(forms.ModelForm):
    asset_classes = forms.TypedMultipleChoiceField(
        choices=[c for c in AssetClass.choices if c[0] != AssetClass.CRYPTO],
        widget=forms.CheckboxSelectMultiple,
        help_text="Asset classes charged (crypto never is)",
    )

    class Meta:
        model = FeeRule
        fields = [
            "code",
            "name",
            "side",
            "exchange_mics",
            "isin_countries",
            "asset_classes",
            "basis",
            "rate",
            "minimum",
            "maximum",
            "currency",
            "valid_from",
            "valid_to",
            "source",
        ]


@admin.register(FeeRule)
class FeeRuleAdmin(AuditedAdminMixin, admin.ModelAdmin):
    """Operations keeps the fees here; every add, change and delete is audited. A new rate is
    a new row: end the old one (valid to = the new row's valid from) first."""

    form = FeeRuleForm
    list_display = [
        "code",
        "side",
        "basis",
        "rate",
        "minimum",
        "maximum",
        "currency",
        "valid_from",
        "valid_to",
    ]
    list_filter = ["code", "side", "currency"]
    search_fields = ["code", "name", "source"]
    ordering = ["code", "-valid_from"]
