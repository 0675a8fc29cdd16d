from django.urls import path

from . import api_views

urlpatterns = [
    path("marketdata/quotes/", api_views.QuotesView.as_view(), name="marketdata-quotes"),
    path("tca/", api_views.TcaView.as_view(), name="tca"),
    path("tca/blocks/<str:block_id>/fills/", api_views.TcaFillsView.as_view(), name="tca-fills"),
]
