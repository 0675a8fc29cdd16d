from django.contrib import admin

from audit.admin import ReadOnlyAdmin

from .models import Basket, Block, Order, OrderEvent


@admin.register(Order)
class OrderAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "received_at",
        "account",
        "security",
        "side",
        "quantity",
        "status",
        "cum_qty",
        "avg_price",
        "pm",
    ]
    list_filter = ["status", "side", "order_type"]
    search_fields = ["security__symbol", "account__code"]


@admin.register(Block)
class BlockAdmin(ReadOnlyAdmin):
    list_display = ["id", "security", "side", "quantity", "status", "broker", "cum_qty"]


@admin.register(Basket)
class BasketAdmin(ReadOnlyAdmin):
    list_display = ["id", "name", "kind", "created_by", "created_at", "line_count"]


@admin.register(OrderEvent)
class OrderEventAdmin(ReadOnlyAdmin):
    list_display = ["id", "order", "at", "kind", "from_status", "to_status", "actor"]
