import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "oms.settings.dev")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from .access import TokenAuthMiddleware, audited_origin_validator  # noqa: E402
from .routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        # The origin check inside the session lookup, so a refusal names whose session it was.
        "websocket": AuthMiddlewareStack(
            TokenAuthMiddleware(audited_origin_validator(URLRouter(websocket_urlpatterns)))
        ),
    }
)
