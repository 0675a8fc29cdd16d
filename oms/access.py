"""Who may still follow a live feed: a websocket checks access when it opens and again whenever
the user's access changes (roles, deactivation, logout), and every refusal is audited.

Each connection joins its user's own channel-layer group; user_access_changed publishes to it
after the change commits, and the consumer re-checks against the database and closes if the
user lost access. Role changes and deactivation happen in Django's own auth models (the admin,
or a shell), which have no service of ours to call, so their signals are the hook.
"""

from __future__ import annotations

import logging
from urllib.parse import urlparse

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer
from channels.security.websocket import OriginValidator
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.sessions.backends.base import SessionBase
from django.db import transaction
from django.utils.module_loading import import_string

from audit.access import access_denied_record

from .publish import submit
from .roles import user_roles

logger = logging.getLogger(__name__)

# Custom close codes, mirroring HTTP: the pages stop reconnecting on these.
CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403


def user_group(user_id: int) -> str:
    return f"user.{user_id}"


def user_access_changed(*, user_id: int) -> None:
    """Tell every open websocket of this user to re-check its access, once the change commits."""

    def publish() -> None:
        submit(
            lambda: get_channel_layer().group_send(user_group(user_id), {"type": "access.changed"}),
            what="an access change",
        )

    transaction.on_commit(publish)


def _user_saved(sender, instance, **kwargs) -> None:
    user_access_changed(user_id=instance.pk)


def _user_groups_changed(sender, instance, action, reverse, pk_set, **kwargs) -> None:
    if action not in ("post_add", "post_remove", "post_clear", "pre_clear"):
        return
    if not reverse:
        user_access_changed(user_id=instance.pk)
        return
    # group.user_set.remove(...): the users are in pk_set (clear on a group gives none, so
    # pre_clear collects them while they are still members).
    user_ids = pk_set if pk_set else set(instance.user_set.values_list("pk", flat=True))
    for user_id in user_ids:
        user_access_changed(user_id=user_id)


def _logged_out(sender, request, user, **kwargs) -> None:
    if user is not None:
        user_access_changed(user_id=user.pk)


def access_signals_connect() -> None:
    """Called from OmsConfig.ready."""
    from django.contrib.auth.signals import user_logged_out
    from django.db.models.signals import m2m_changed, post_delete, post_save

    user_model = get_user_model()
    post_save.connect(_user_saved, sender=user_model, dispatch_uid="oms_access_user_saved")
    post_delete.connect(_user_saved, sender=user_model, dispatch_uid="oms_access_user_deleted")
    m2m_changed.connect(
        _user_groups_changed,
        sender=user_model.groups.through,
        dispatch_uid="oms_access_user_groups",
    )
    user_logged_out.connect(_logged_out, dispatch_uid="oms_access_logged_out")


def _client_ip(scope) -> str:
    client = scope.get("client") or ("", 0)
    return str(client[0] or "")


def websocket_denial_record(scope, *, status: int, reason: str) -> None:
    access_denied_record(
        user=scope.get("user"),
        channel="websocket",
        path=scope.get("path", ""),
        method="WEBSOCKET",
        status=status,
        reason=reason,
        ip=_client_ip(scope),
    )


class AuditedOriginValidator(OriginValidator):
    """Channels' origin check (the hosts in ALLOWED_HOSTS), with the refusal audited. Placed
    inside the auth middleware so the record names the user whose session was being used."""

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket":
            origin = next((v for k, v in scope.get("headers", []) if k == b"origin"), None)
            parsed = urlparse(origin.decode("latin1")) if origin is not None else None
            if not self.valid_origin(parsed):
                await database_sync_to_async(websocket_denial_record)(
                    scope,
                    status=403,
                    reason=f"foreign origin: {origin.decode('latin1') if origin else 'none'}",
                )
        return await super().__call__(scope, receive, send)


def audited_origin_validator(application):
    allowed = settings.ALLOWED_HOSTS
    if settings.DEBUG and not allowed:
        allowed = ["localhost", "127.0.0.1", "[::1]"]
    return AuditedOriginValidator(application, allowed)


def _session_alive(session_key: str | None) -> bool:
    if not session_key:
        return False
    store: type[SessionBase] = import_string(f"{settings.SESSION_ENGINE}.SessionStore")
    return store().exists(session_key)


def _token_user(key: str):
    """The active user an API token belongs to (DRF's own check, as the REST API makes it), or
    an anonymous one (a refused connection)."""
    from django.contrib.auth.models import AnonymousUser
    from rest_framework.authentication import TokenAuthentication
    from rest_framework.exceptions import AuthenticationFailed

    try:
        return TokenAuthentication().authenticate_credentials(key)[0]
    except AuthenticationFailed:
        return AnonymousUser()


class TokenAuthMiddleware:
    """API-token clients follow the feeds too, with `Authorization: Token <key>` on the
    handshake (never the token in the URL, where logs and proxies keep it). A header present
    decides who connects, whatever session cookie comes with it."""

    def __init__(self, inner):
        self.inner = inner

    async def __call__(self, scope, receive, send):
        header = next((v for k, v in scope.get("headers", []) if k == b"authorization"), None)
        if header is not None:
            kind, _, key = header.decode("latin1").partition(" ")
            key = key.strip() if kind.lower() == "token" else ""
            user = await database_sync_to_async(_token_user)(key)
            scope = {**scope, "user": user, "auth_token": key, "session": None}
        return await self.inner(scope, receive, send)


def _token_alive(key: str, user_id: int) -> bool:
    from rest_framework.authtoken.models import Token

    return Token.objects.filter(key=key, user_id=user_id).exists()


def _fresh_user(user_id: int):
    """The user as the database has them now (roles are cached on the scope's user object)."""
    return get_user_model().objects.filter(pk=user_id, is_active=True).first()


class AccessCheckedConsumer(AsyncWebsocketConsumer):
    """Base of the live feeds. Subclasses say who may follow (may_follow, a sync function
    run in a thread) and what to join (join / leave)."""

    access_group: str | None = None

    def may_follow(self, user) -> bool:
        raise NotImplementedError

    async def refuse(self, code: int, reason: str) -> None:
        await database_sync_to_async(websocket_denial_record)(
            scope=self.scope, status=code, reason=reason
        )
        await self.close(code=code)

    async def open_checked(self) -> bool:
        """Accept, then check: a refused handshake carries no close code, an accepted one
        does, and the page stops reconnecting on 4401/4403. True when the user may follow."""
        user = self.scope.get("user")
        await self.accept()
        if user is None or not user.is_authenticated:
            await self.refuse(CLOSE_UNAUTHENTICATED, "not signed in")
            return False
        if not await database_sync_to_async(self._allowed)(user):
            await self.refuse(CLOSE_FORBIDDEN, "not permitted")
            return False
        self.access_group = user_group(user.pk)
        await self.channel_layer.group_add(self.access_group, self.channel_name)
        return True

    def _allowed(self, user) -> bool:
        return bool(user_roles(user)) and self.may_follow(user)

    def _still_allowed(self) -> tuple[bool, str]:
        user = self.scope["user"]
        session = self.scope.get("session")
        token = self.scope.get("auth_token")
        if token is not None:
            if not _token_alive(token, user.pk):
                return False, "token revoked"
        elif session is not None and not _session_alive(session.session_key):
            return False, "session ended"
        fresh = _fresh_user(user.pk)
        if fresh is None:
            return False, "user deactivated"
        if not self._allowed(fresh):
            return False, "access revoked"
        return True, ""

    async def access_changed(self, event: dict) -> None:
        allowed, reason = await database_sync_to_async(self._still_allowed)()
        if not allowed:
            await self.refuse(CLOSE_FORBIDDEN, reason)

    async def disconnect(self, code: int) -> None:
        if self.access_group:
            await self.channel_layer.group_discard(self.access_group, self.channel_name)
            self.access_group = None
