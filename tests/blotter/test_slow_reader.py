"""A page that stops reading its feed is dropped within the keep-alive bound (oms.web), so the
web process does not buffer the feed for it without limit; a page on the same feed that reads
keeps its socket and every message."""

from __future__ import annotations

import base64
import json
import os
import socket
import threading
import time

import psutil
import pytest
import redis
from django.conf import settings
from websockets.exceptions import ConnectionClosed

from oms import fanout
from orders.blotter_selectors import feed_for
from tests.conftest import _test_database_url, daphne_serving

from .helpers import session_cookie, ws_connect, ws_json

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

PING_INTERVAL_S, PING_TIMEOUT_S = 1, 2
MESSAGES, PAD = 400, 32_000  # 12.8 MB of feed, far beyond the socket buffers
# Interval + timeout, plus Daphne's 2 s check and the 4 s of publishing: long before Daphne's
# own defaults (20 + 30 s) would drop it.
DROP_WITHIN_S = 12


def _stalled_page(url: str, path: str, cookie: str) -> socket.socket:
    """A websocket page that completes the handshake and then never reads again: a tiny
    receive buffer, so what the server sends piles up on the server's side."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Origin: {url}\r\nCookie: sessionid={cookie}\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def _server_holds(port: int, peer: socket.socket) -> bool:
    """Whether the web process still has the connection from `peer` open."""
    peer_port = peer.getsockname()[1]
    return any(
        c.laddr
        and c.raddr
        and c.laddr.port == port
        and c.raddr.port == peer_port
        and c.status == psutil.CONN_ESTABLISHED
        for c in psutil.net_connections(kind="tcp")
    )


def test_a_page_that_stops_reading_is_dropped_and_one_that_reads_keeps_every_message(refdata):
    cookie = session_cookie(refdata.trader)
    channel = fanout.live_channel(feed_for(refdata.trader, scope="blotter"))
    publisher = redis.Redis.from_url(settings.REDIS_URL)
    env = {
        "OMS_WS_PING_INTERVAL": str(PING_INTERVAL_S),
        "OMS_WS_PING_TIMEOUT": str(PING_TIMEOUT_S),
    }
    with daphne_serving(_test_database_url(), **env) as url:
        port = int(url.rsplit(":", 1)[1])
        received: list[int] = []
        closed: list[BaseException] = []
        with ws_connect(url, "/ws/blotter/", cookie=cookie) as reader:
            assert ws_json(reader)["type"] == "subscribed"
            stalled = _stalled_page(url, "/ws/blotter/", cookie)

            def read() -> None:
                try:
                    while len(received) < MESSAGES + 1:
                        received.append(json.loads(reader.recv(timeout=30))["n"])
                except (ConnectionClosed, TimeoutError) as exc:
                    closed.append(exc)

            thread = threading.Thread(target=read)
            thread.start()
            try:
                time.sleep(0.5)  # both subscribed
                assert _server_holds(port, stalled)
                pad = "x" * PAD
                started = time.monotonic()
                for n in range(MESSAGES):
                    text = json.dumps({"type": "noise", "n": n, "pad": pad})
                    publisher.publish(channel, fanout.encode(0, text))
                    time.sleep(0.01)
                deadline = started + DROP_WITHIN_S
                while _server_holds(port, stalled) and time.monotonic() < deadline:
                    time.sleep(0.2)
                assert not _server_holds(port, stalled), "the stalled page is still served"
                # The page that reads was sent the same 12.8 MB, and is still followed.
                publisher.publish(channel, fanout.encode(0, json.dumps({"n": MESSAGES})))
                thread.join(60)
            finally:
                stalled.close()
        assert not closed, closed
        assert received == list(range(MESSAGES + 1))
