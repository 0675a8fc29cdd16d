"""Test data for the blotter: orders already through compliance and staged on the desk."""

from __future__ import annotations

import json
import urllib.request
from decimal import Decimal

from django.test import Client
from django.utils import timezone
from websockets.sync.client import connect

from orders.lifecycle import OrderStatus
from orders.models import Order


def staged_order(
    account,
    security,
    side: str = "BUY",
    quantity: str = "100",
    *,
    pm=None,
    order_type: str = "MARKET",
    limit_price: str | None = None,
    status: str = OrderStatus.STAGED,
) -> Order:
    return Order.objects.create(
        account=account,
        security=security,
        side=side,
        quantity=Decimal(quantity),
        order_type=order_type,
        limit_price=Decimal(limit_price) if limit_price else None,
        status=status,
        pm=pm or account.managers.first(),
        received_at=timezone.now(),
        leaves_qty=Decimal(quantity),
    )


def session_cookie(user) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


def ws_connect(server: str, path: str, *, cookie: str | None = None, origin: str | None = None):
    headers = {"Cookie": f"sessionid={cookie}"} if cookie else {}
    return connect(
        server.replace("http://", "ws://") + path,
        additional_headers=headers,
        origin=origin or server,
        open_timeout=10,
    )


def ws_json(ws, timeout: float = 5.0) -> dict:
    return json.loads(ws.recv(timeout=timeout))


def api_get(server: str, path: str, cookie: str) -> dict:
    request = urllib.request.Request(server + path, headers={"Cookie": f"sessionid={cookie}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


class FeedClient:
    """What the page does, in Python: apply messages in sequence, and on a gap take a fresh
    snapshot (rows plus the sequence number they are current to)."""

    def __init__(self, server: str, path: str, scope: str, cookie: str):
        self.server, self.path, self.scope, self.cookie = server, path, scope, cookie
        self.rows: dict[int, dict] = {}
        self.seq = 0
        self.snapshots = 0
        self.ws = None

    def open(self) -> None:
        self.ws = ws_connect(self.server, self.path, cookie=self.cookie)
        assert ws_json(self.ws)["type"] == "subscribed"

    def snapshot(self) -> None:
        body = api_get(self.server, f"/api/blotter/snapshot/?scope={self.scope}", self.cookie)
        self.rows = {row["id"]: row for row in body["rows"]}
        self.seq = body["seq"]
        self.snapshots += 1

    def handle(self, message: dict) -> None:
        if message["seq"] <= self.seq:
            return  # already in the snapshot
        if message["seq"] != self.seq + 1:
            self.snapshot()
            return
        for row in message["rows"]:
            current = self.rows.get(row["id"])
            if current is None or current["version"] <= row["version"]:
                self.rows[row["id"]] = row
        self.seq = message["seq"]

    def receive(self, timeout: float = 5.0) -> dict:
        message = ws_json(self.ws, timeout)
        self.handle(message)
        return message

    def close(self) -> None:
        if self.ws is not None:
            self.ws.close()
