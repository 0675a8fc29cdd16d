from django.urls import path

from . import consumers

websocket_urlpatterns: list = [
    path("ws/blotter/", consumers.BlotterConsumer.as_asgi()),
    path("ws/orders/mine/", consumers.OrdersConsumer.as_asgi()),
]
