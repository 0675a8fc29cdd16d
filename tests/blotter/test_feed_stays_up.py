"""A live feed that stays up: an idle blotter keeps its one websocket past several of the
channel layer's blocking reads (redis-py 8's 5 s read timeout dropped it every ~6 s), and an
API-token client follows a feed with an Authorization header, never a token in the URL."""

from __future__ import annotations

import time

import pytest
from django.utils import timezone
from rest_framework.authtoken.models import Token
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from orders.block_services import block_create

from .helpers import session_cookie, staged_order, ws_connect, ws_json

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

IDLE_SECONDS = 17  # past three of the layer's 5 s blocking pops, and the old 5 s timeout


def _token_connect(server: str, path: str, header: str | None):
    return connect(
        server.replace("http://", "ws://") + path,
        additional_headers={"Authorization": header} if header else {},
        origin=server,
        open_timeout=10,
    )


def _close_code(ws) -> int:
    with pytest.raises(ConnectionClosed) as closed:
        ws.recv(timeout=5)
    return closed.value.rcvd.code


def test_an_idle_blotter_keeps_its_websocket_and_still_gets_changes(oms_server, refdata):
    order = staged_order(refdata.acct1, refdata.aapl)
    with ws_connect(oms_server, "/ws/blotter/", cookie=session_cookie(refdata.trader)) as ws:
        assert ws_json(ws)["type"] == "subscribed"
        # Nothing happens for a while: nothing arrives, and the socket is not closed.
        deadline = time.monotonic() + IDLE_SECONDS
        while time.monotonic() < deadline:
            with pytest.raises(TimeoutError):
                ws.recv(timeout=max(0.1, min(2.0, deadline - time.monotonic())))
        block_create(order_ids=[order.pk], actor=refdata.trader, as_of=timezone.now())
        message = ws_json(ws, timeout=10)
        assert [row["id"] for row in message["rows"]] == [order.pk]


def test_a_token_client_follows_its_feed_with_an_authorization_header(oms_server, refdata):
    order = staged_order(refdata.acct1, refdata.aapl)
    key = Token.objects.create(user=refdata.pm1).key
    with _token_connect(oms_server, "/ws/orders/mine/", f"Token {key}") as ws:
        assert ws_json(ws)["type"] == "subscribed"
        block_create(order_ids=[order.pk], actor=refdata.trader, as_of=timezone.now())
        assert [row["id"] for row in ws_json(ws, timeout=10)["rows"]] == [order.pk]
    # A PM's token is no key to the desk's feed; a wrong token, or one in the URL, is no key.
    with _token_connect(oms_server, "/ws/blotter/", f"Token {key}") as ws:
        assert _close_code(ws) == 4403
    with _token_connect(oms_server, "/ws/orders/mine/", "Token not-a-token") as ws:
        assert _close_code(ws) == 4401
    with _token_connect(oms_server, f"/ws/orders/mine/?token={key}", None) as ws:
        assert _close_code(ws) == 4401
