from django.urls import path

from . import api

urlpatterns = [
    path("positions/", api.PositionListView.as_view(), name="positions-list"),
    path("cash/", api.CashListView.as_view(), name="cash-list"),
    path("exposure/", api.ExposureListView.as_view(), name="exposure-list"),
]
