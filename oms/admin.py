from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group, User

from audit.admin import AuditedAdminMixin

from .models import Account, AccountTag, Custodian, Issuer, Security


@admin.register(Security)
class SecurityAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = [
        "symbol",
        "name",
        "asset_class",
        "sector",
        "currency",
        "reference_price",
        "reference_price_at",
        "active",
    ]
    list_filter = ["asset_class", "sector", "currency", "active"]
    search_fields = ["symbol", "name", "isin"]
    autocomplete_fields = ["issuer"]


@admin.register(Issuer)
class IssuerAdmin(AuditedAdminMixin, admin.ModelAdmin):
    search_fields = ["name"]


@admin.register(Custodian)
class CustodianAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = ["code", "name", "bic"]


@admin.register(AccountTag)
class AccountTagAdmin(AuditedAdminMixin, admin.ModelAdmin):
    search_fields = ["name"]


@admin.register(Account)
class AccountAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = [
        "code",
        "name",
        "base_currency",
        "custodian",
        "is_cash_account",
        "may_short",
        "active",
    ]
    list_filter = ["custodian", "is_cash_account", "active", "tags"]
    search_fields = ["code", "name"]
    filter_horizontal = ["managers", "tags"]


admin.site.unregister(User)
admin.site.unregister(Group)


@admin.register(User)
class AuditedUserAdmin(AuditedAdminMixin, UserAdmin):
    pass


@admin.register(Group)
class AuditedGroupAdmin(AuditedAdminMixin, GroupAdmin):
    pass
