from django.apps import AppConfig


class FixgatewayConfig(AppConfig):
    name = "fixgateway"

    def ready(self) -> None:
        from oms.health import register_probe

        from .selectors import session_statuses

        def fix_sessions() -> dict:
            sessions = session_statuses()
            down = [s["broker"] for s in sessions if s["status"] != "up"]
            return {
                "ok": not down,
                "down": down,
                "sessions": len(sessions),
                "status": {s["broker"]: s["status"] for s in sessions},
                "reasons": {s["broker"]: s["reason"] for s in sessions if s["reason"]},
            }

        register_probe("fix_sessions", fix_sessions)
