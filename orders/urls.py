from django.urls import include, path

app_name = "orders"

# Order capture pages (issue 3) go in `urlpatterns`; the trader's blotter (issue 6) keeps its
# pages in orders/blotter_urls.py.
urlpatterns: list = [
    path("", include("orders.blotter_urls")),
]
