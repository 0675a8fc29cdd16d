from django.urls import path

from . import api_views as v

urlpatterns: list = [
    path("kill-switches/", v.KillSwitchListView.as_view(), name="kill-switch-list"),
    path(
        "kill-switches/<int:switch_id>/release/",
        v.KillSwitchReleaseView.as_view(),
        name="kill-switch-release",
    ),
    path("held-orders/", v.HeldOrderListView.as_view(), name="held-order-list"),
    path(
        "held-orders/<int:block_id>/release/",
        v.HeldOrderReleaseView.as_view(),
        name="held-order-release",
    ),
    path(
        "held-orders/<int:block_id>/cancel/",
        v.HeldOrderCancelView.as_view(),
        name="held-order-cancel",
    ),
    path("fix/messages/", v.FixMessageListView.as_view(), name="fix-message-list"),
]
