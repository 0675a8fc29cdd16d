from django.apps import AppConfig


class OmsConfig(AppConfig):
    name = "oms"
    verbose_name = "Reference data"

    def ready(self) -> None:
        # Bind @shared_task to our Celery app in every process (web included), without
        # importing it from oms/__init__ where the launcher would pick up its settings default.
        from . import celery  # noqa: F401
        from .access import access_signals_connect

        access_signals_connect()
