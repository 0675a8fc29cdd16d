from django.urls import include, path
from rest_framework.routers import SimpleRouter

from . import api

router = SimpleRouter()
router.register("orders", api.OrderViewSet, basename="order")

# Order capture API (issue 3) goes in `urlpatterns`; blocks and blotter API (issue 6) live in
# orders/blotter_api_urls.py.
urlpatterns: list = [
    path("", include("orders.blotter_api_urls")),
    path("baskets/", api.BasketUploadView.as_view(), name="basket-upload"),
    path("baskets/rebalance/", api.RebalanceUploadView.as_view(), name="basket-rebalance"),
    path(
        "baskets/rebalance/drift.csv",
        api.RebalanceDriftView.as_view(),
        name="basket-rebalance-drift",
    ),
    *router.urls,
]
