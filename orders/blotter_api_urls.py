from django.urls import path

from . import blotter_views as v

urlpatterns: list = [
    path("blotter/snapshot/", v.SnapshotView.as_view(), name="blotter-snapshot"),
    path("blotter/layout/", v.LayoutView.as_view(), name="blotter-layout"),
    path("blotter/sessions/", v.SessionsView.as_view(), name="blotter-sessions"),
    path("blotter/header/", v.HeaderView.as_view(), name="blotter-header"),
    path("blotter/brokers/", v.BrokersView.as_view(), name="blotter-brokers"),
    path("blotter/cross/", v.CrossView.as_view(), name="blotter-cross"),
    path("blotter/kill-switch/", v.KillSwitchView.as_view(), name="blotter-kill-switch"),
    path("blocks/", v.BlockCreateView.as_view(), name="block-create"),
    path("blocks/<int:block_id>/", v.BlockDetailView.as_view(), name="block-detail"),
    path("blocks/<int:block_id>/detail/", v.BlockHistoryView.as_view(), name="block-history"),
    path("blocks/<int:block_id>/route/", v.BlockRouteView.as_view(), name="block-route"),
    path("blocks/<int:block_id>/cancel/", v.BlockCancelView.as_view(), name="block-cancel"),
    path("blocks/<int:block_id>/replace/", v.BlockReplaceView.as_view(), name="block-replace"),
    path("blocks/<int:block_id>/dissolve/", v.BlockDissolveView.as_view(), name="block-dissolve"),
]
