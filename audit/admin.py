from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.forms.models import model_to_dict

from .models import AuditEvent
from .services import audit_record


def snapshot(obj: Any) -> dict[str, Any]:
    data = model_to_dict(obj)
    for key, value in list(data.items()):
        if isinstance(value, list):
            data[key] = [getattr(item, "pk", item) for item in value]
        elif hasattr(value, "pk"):
            data[key] = value.pk
        elif hasattr(value, "name") and hasattr(value, "url"):  # file fields
            data[key] = value.name
    data.pop("password", None)
    return data


class AuditedAdminMixin:
    """Every admin add, change and delete leaves an audit event with before and after."""

    def save_model(self, request, obj, form, change):
        before = None
        if change and obj.pk is not None:
            previous = type(obj).objects.filter(pk=obj.pk).first()
            before = snapshot(previous) if previous is not None else None
        super().save_model(request, obj, form, change)
        request._audit_pending = (obj, before, change)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        obj, before, was_change = getattr(request, "_audit_pending", (form.instance, None, change))
        action = "admin.change" if was_change else "admin.add"
        saved = type(obj).objects.get(pk=obj.pk)  # as stored, so before and after compare alike
        audit_record(
            actor=request.user, action=action, obj=saved, before=before, after=snapshot(saved)
        )

    def delete_model(self, request, obj):
        before = snapshot(obj)
        pk, label, text = obj.pk, obj._meta.label_lower, str(obj)
        super().delete_model(request, obj)
        audit_record(
            actor=request.user,
            action="admin.delete",
            object_type=label,
            object_id=pk,
            object_repr=text,
            before=before,
        )

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            self.delete_model(request, obj)


class ReadOnlyAdmin(admin.ModelAdmin):
    """For records that change only through their services (or never): the admin shows them."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = [
        "chain_seq",
        "occurred_at",
        "actor_username",
        "action",
        "object_type",
        "object_id",
        "object_repr",
    ]
    list_filter = ["action", "object_type"]
    search_fields = ["actor_username", "object_id", "object_repr", "request_id"]
