from django.apps import AppConfig


class FixgatewayConfig(AppConfig):
    name = "fixgateway"
