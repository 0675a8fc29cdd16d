from django.contrib import admin

from audit.admin import AuditedAdminMixin

from .models import Broker


@admin.register(Broker)
class BrokerAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = [
        "code",
        "name",
        "host",
        "port",
        "fix_version",
        "sender_comp_id",
        "target_comp_id",
        "active",
    ]
    list_filter = ["active", "fix_version"]
