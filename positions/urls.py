from django.urls import path

from . import views

app_name = "positions"

urlpatterns = [
    path("positions/", views.positions_page, name="positions"),
    path("positions/cash/", views.cash_page, name="cash"),
    path("positions/exposure/", views.exposure_page, name="exposure"),
    path("positions/start-of-day/", views.sod_upload_page, name="sod_upload"),
]
