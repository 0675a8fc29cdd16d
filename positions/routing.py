from django.urls import path

from . import consumers

websocket_urlpatterns: list = [
    path("ws/positions/", consumers.PositionsConsumer.as_asgi()),
]
