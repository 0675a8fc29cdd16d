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
    path("fix-sessions/", v.SessionListView.as_view(), name="fix-session-list"),
    path(
        "fix-sessions/<int:broker_id>/reset-sequence/",
        v.SessionSequenceResetView.as_view(),
        name="fix-session-reset-sequence",
    ),
    path("unconfirmed-orders/", v.UnconfirmedOrderListView.as_view(), name="unconfirmed-list"),
    path(
        "unconfirmed-orders/<int:block_id>/cancel/",
        v.UnconfirmedCancelView.as_view(),
        name="unconfirmed-cancel",
    ),
    path(
        "unconfirmed-orders/<int:block_id>/confirm/",
        v.UnconfirmedConfirmView.as_view(),
        name="unconfirmed-confirm",
    ),
    path(
        "unconfirmed-orders/<int:block_id>/resend/",
        v.UnconfirmedResendView.as_view(),
        name="unconfirmed-resend",
    ),
]
