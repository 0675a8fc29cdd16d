from __future__ import annotations

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.html import format_html

from audit.admin import AuditedAdminMixin, ReadOnlyAdmin

from .models import (
    Breach,
    CheckRun,
    OrderCheck,
    Override,
    RestrictedEntry,
    Rule,
    RuleKind,
    RuleVersion,
)
from .parameters import SCHEMAS
from .services import rule_validate, rule_version_record


def _kinds_using(name: str) -> list[str]:
    return [kind for kind, schema in SCHEMAS.items() if name in schema().fields]


# One form field per parameter any kind takes, shown for the kinds that use it
# (static/js/compliance/rule_admin.js); the values still go through rule_parameters_clean,
# so the admin refuses exactly what the services refuse. Text inputs, not DecimalFields:
# "10", "10.0" and "1E+1" reach the one validator as typed.
PARAMETER_FIELDS: dict[str, forms.Field] = {
    "max_pct": forms.CharField(
        required=False,
        label="Max % (0-100)",
        widget=forms.TextInput(attrs={"inputmode": "decimal"}),
    ),
    "sectors": forms.CharField(
        required=False,
        label="Sectors",
        help_text="Comma-separated; empty: every sector.",
    ),
    "sides": forms.MultipleChoiceField(
        required=False,
        label="Sides",
        choices=[(s, s) for s in ("BUY", "SELL", "SELL_SHORT", "BUY_TO_COVER")],
        widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: every side.",
    ),
    "max_quantity": forms.CharField(
        required=False, label="Max quantity", widget=forms.TextInput(attrs={"inputmode": "decimal"})
    ),
    "max_notional": forms.CharField(
        required=False, label="Max notional", widget=forms.TextInput(attrs={"inputmode": "decimal"})
    ),
    "max_deviation_pct": forms.CharField(
        required=False,
        label="Max deviation from reference (%)",
        widget=forms.TextInput(attrs={"inputmode": "decimal"}),
    ),
    "window_minutes": forms.CharField(
        required=False,
        label="Window (minutes)",
        widget=forms.TextInput(attrs={"inputmode": "numeric"}),
    ),
}


def _param_field(name: str) -> str:
    return f"param_{name}"


class RuleForm(forms.ModelForm):
    class Meta:
        model = Rule
        fields = [
            "name",
            "kind",
            "scope",
            "accounts",
            "tag",
            "severity",
            "active",
            "effective_from",
            "effective_to",
            "mandate",
        ]

    class Media:
        js = ["js/compliance/rule_admin.js"]

    # Declared here (the admin builds its form from declared fields); __init__ labels them.
    param_max_pct = PARAMETER_FIELDS["max_pct"]
    param_sectors = PARAMETER_FIELDS["sectors"]
    param_sides = PARAMETER_FIELDS["sides"]
    param_max_quantity = PARAMETER_FIELDS["max_quantity"]
    param_max_notional = PARAMETER_FIELDS["max_notional"]
    param_max_deviation_pct = PARAMETER_FIELDS["max_deviation_pct"]
    param_window_minutes = PARAMETER_FIELDS["window_minutes"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        current = self.instance.parameters if self.instance and self.instance.pk else {}
        for name in PARAMETER_FIELDS:
            field = self.fields[_param_field(name)]  # the form's own copy
            kinds = _kinds_using(name)
            field.widget.attrs["data-kinds"] = " ".join(kinds)
            used_by = "For: " + ", ".join(RuleKind(k).label for k in kinds)
            field.help_text = f"{field.help_text} {used_by}".strip()
            value = (current or {}).get(name)
            if name == "sectors" and isinstance(value, list):
                value = ", ".join(value)
            field.initial = value

    def _parameters(self, kind: str) -> dict:
        """The kind's parameters from their fields; an empty field is a parameter not given."""
        schema = SCHEMAS.get(kind)
        out: dict = {}
        for name in schema().fields if schema else ():
            value = self.cleaned_data.get(_param_field(name))
            if name == "sectors" and value:
                value = [s.strip() for s in value.split(",") if s.strip()]
            if value in (None, "", []):
                continue
            out[name] = value
        return out

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        kind = cleaned.get("kind")
        rule = Rule(
            kind=kind,
            parameters=self._parameters(kind),
            scope=cleaned.get("scope"),
            tag=cleaned.get("tag"),
            effective_from=cleaned.get("effective_from"),
            effective_to=cleaned.get("effective_to"),
        )
        accounts = cleaned.get("accounts")
        try:
            rule_validate(rule=rule, account_count=accounts.count() if accounts is not None else 0)
        except ValidationError as exc:
            for field, messages in exc.message_dict.items():
                if field == "parameters":
                    # Under the kind's first parameter field (the message names the parameter).
                    names = list(SCHEMAS[kind]().fields) if kind in SCHEMAS else []
                    field = _param_field(names[0]) if names else None
                self.add_error(field if field in self.fields else None, messages)
        else:
            # Not a form field any more: the canonical parameters go onto the rule directly.
            self.instance.parameters = rule.parameters
        return cleaned


class RuleVersionInline(admin.TabularInline):
    model = RuleVersion
    fields = ["number", "created_at", "created_by", "snapshot"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ["-number"]

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Rule)
class RuleAdmin(AuditedAdminMixin, admin.ModelAdmin):
    form = RuleForm
    list_display = ["name", "kind", "severity", "scope", "active", "version", "effective"]
    list_filter = ["kind", "severity", "scope", "active"]
    search_fields = ["name", "mandate"]
    filter_horizontal = ["accounts"]
    inlines = [RuleVersionInline]
    fieldsets = [
        (None, {"fields": ["name", "kind"]}),
        ("Parameters", {"fields": [_param_field(name) for name in PARAMETER_FIELDS]}),
        (
            None,
            {
                "fields": [
                    "scope",
                    "accounts",
                    "tag",
                    "severity",
                    "active",
                    "effective_from",
                    "effective_to",
                    "mandate",
                ]
            },
        ),
    ]

    @admin.display(description="version")
    def version(self, obj):
        return obj.current_version.number if obj.current_version_id else "—"

    @admin.display(description="effective")
    def effective(self, obj):
        return format_html(
            "{} → {}", obj.effective_from or "always", obj.effective_to or "open-ended"
        )

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("current_version")

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        # Every edit is frozen into a new version after its accounts are saved too.
        rule_version_record(rule_id=form.instance.pk, actor=request.user, as_of=timezone.now())

    def has_delete_permission(self, request, obj=None):
        # Checks cite rule versions: retire a rule (inactive, or an end date), never delete it.
        return False


@admin.register(RuleVersion)
class RuleVersionAdmin(admin.ModelAdmin):
    list_display = ["rule", "number", "created_at", "created_by"]
    list_filter = ["rule"]
    readonly_fields = ["rule", "number", "snapshot", "created_at", "created_by"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class RestrictedEntryForm(forms.ModelForm):
    class Meta:
        model = RestrictedEntry
        fields = ["security", "issuer", "reason", "start_date", "end_date"]

    def clean(self):
        cleaned = super().clean()
        if bool(cleaned.get("security")) == bool(cleaned.get("issuer")):
            raise ValidationError("Restrict either one security or one whole issuer, not both.")
        start, end = cleaned.get("start_date"), cleaned.get("end_date")
        if start and end and end < start:
            self.add_error("end_date", "The restriction cannot end before it starts.")
        return cleaned


@admin.register(RestrictedEntry)
class RestrictedEntryAdmin(AuditedAdminMixin, admin.ModelAdmin):
    form = RestrictedEntryForm
    list_display = ["security", "issuer", "reason", "start_date", "end_date"]
    search_fields = ["security__symbol", "issuer__name", "reason"]
    autocomplete_fields: list[str] = []
    raw_id_fields = ["security"]


@admin.register(CheckRun)
class CheckRunAdmin(ReadOnlyAdmin):
    list_display = ["id", "kind", "as_of", "actor", "order_count", "breach_count", "rule"]
    list_filter = ["kind"]


@admin.register(OrderCheck)
class OrderCheckAdmin(ReadOnlyAdmin):
    list_display = ["order", "verdict", "checked_at", "run"]
    list_filter = ["verdict"]
    raw_id_fields = ["order", "run"]


@admin.register(Override)
class OverrideAdmin(ReadOnlyAdmin):
    list_display = ["order", "verdict", "actor", "at", "reason"]
    list_filter = ["verdict"]


@admin.register(Breach)
class BreachAdmin(ReadOnlyAdmin):
    list_display = ["run", "rule", "account", "key", "value", "limit", "cause"]
    list_filter = ["cause", "rule"]
