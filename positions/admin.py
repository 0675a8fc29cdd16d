from django.contrib import admin

from audit.admin import AuditedAdminMixin, ReadOnlyAdmin

from .models import CashBalance, CashMovement, FxRate, Position, PositionFill


@admin.register(FxRate)
class FxRateAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = ["base", "quote", "rate", "as_of_date"]
    list_filter = ["base", "quote"]
    ordering = ["base", "quote", "-as_of_date"]


# Positions, cash and the ledger change only through the services (fills, the SOD load).


@admin.register(Position)
class PositionAdmin(ReadOnlyAdmin):
    list_display = ["account", "security", "quantity", "avg_cost", "realized_pnl", "updated_at"]
    list_filter = ["account"]
    search_fields = ["security__symbol", "account__code"]


@admin.register(CashBalance)
class CashBalanceAdmin(ReadOnlyAdmin):
    list_display = ["account", "currency", "settled", "projected", "updated_at"]
    list_filter = ["currency"]


@admin.register(PositionFill)
class PositionFillAdmin(ReadOnlyAdmin):
    list_display = ["fill_ref", "seq", "account", "security", "side", "quantity", "price"]
    search_fields = ["fill_ref"]
    list_select_related = ["account", "security"]


@admin.register(CashMovement)
class CashMovementAdmin(ReadOnlyAdmin):
    list_display = ["account", "currency", "amount", "settle_date", "kind", "ref", "is_settled"]
    list_filter = ["kind", "is_settled", "currency"]
    search_fields = ["ref"]
