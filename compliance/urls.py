from django.urls import path

from . import views

app_name = "compliance"

urlpatterns = [
    path("compliance/", views.dashboard, name="dashboard"),
    path("compliance/post-trade/", views.post_trade_run, name="post_trade_run"),
    path("compliance/override/", views.override, name="override"),
    path("compliance/override/bulk/", views.override_bulk, name="override_bulk"),
]
