from django.apps import AppConfig


class FixgatewayConfig(AppConfig):
    name = "fixgateway"

    def ready(self) -> None:
        from oms.health import register_probe

        from .selectors import broker_sessions

        def fix_sessions() -> dict:
            sessions = broker_sessions()
            down = [s["broker"] for s in sessions if not s["logged_on"]]
            return {"ok": not down, "down": down, "sessions": len(sessions)}

        register_probe("fix_sessions", fix_sessions)
