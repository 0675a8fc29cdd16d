from django.urls import path

from . import api

urlpatterns: list = [
    path("compliance/check/", api.ComplianceCheckView.as_view(), name="compliance-check"),
    path("compliance/overrides/", api.OverrideView.as_view(), name="compliance-override"),
]
