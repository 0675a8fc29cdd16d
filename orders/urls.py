from django.urls import include, path

from . import views

app_name = "orders"

# Order capture pages (issue 3) go in `urlpatterns`; the trader's blotter (issue 6) keeps its
# pages in orders/blotter_urls.py.
urlpatterns: list = [
    path("", include("orders.blotter_urls")),
    path("orders/ticket/", views.ticket, name="ticket"),
    path("orders/mine/", views.my_orders, name="my_orders"),
    path("orders/baskets/", views.basket_upload, name="basket_upload"),
]
