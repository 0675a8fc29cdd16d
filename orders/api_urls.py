from django.urls import include, path

# Order capture API (issue 3) goes in `urlpatterns`; blocks and blotter API (issue 6) live in
# orders/blotter_api_urls.py.
urlpatterns: list = [
    path("", include("orders.blotter_api_urls")),
]
