from django.urls import path

from . import blotter_views

urlpatterns: list = [
    path("blotter/", blotter_views.blotter_page, name="blotter"),
]
