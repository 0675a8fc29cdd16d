from __future__ import annotations

import json

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.html import format_html

from audit.admin import AuditedAdminMixin, ReadOnlyAdmin

from .models import Breach, CheckRun, OrderCheck, Override, RestrictedEntry, Rule, RuleVersion
from .parameters import EXAMPLES
from .services import rule_validate, rule_version_record


class RuleForm(forms.ModelForm):
    class Meta:
        model = Rule
        fields = [
            "name",
            "kind",
            "parameters",
            "scope",
            "accounts",
            "tag",
            "severity",
            "active",
            "effective_from",
            "effective_to",
            "mandate",
        ]
        help_texts = {
            "parameters": "JSON per kind, e.g. "
            + "; ".join(f"{kind}: {json.dumps(example)}" for kind, example in EXAMPLES.items())
        }

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        rule = Rule(
            kind=cleaned.get("kind"),
            parameters=cleaned.get("parameters"),
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
                self.add_error(field if field in self.fields else None, messages)
        else:
            cleaned["parameters"] = rule.parameters
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
