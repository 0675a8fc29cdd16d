"""Websocket routes: each app that pushes live updates lists its own in <app>/routing.py."""

from importlib import import_module

WEBSOCKET_APPS = ["orders", "positions", "fixgateway"]

websocket_urlpatterns: list = [
    route
    for app in WEBSOCKET_APPS
    for route in import_module(f"{app}.routing").websocket_urlpatterns
]
