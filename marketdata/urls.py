from django.urls import path

from . import views

app_name = "marketdata"

urlpatterns = [
    path("tca/", views.tca_page, name="tca"),
    path("tca/export.csv", views.tca_export, name="tca_export"),
]
