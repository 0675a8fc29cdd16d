"""Live updates through the real stack: Daphne, the Redis channel layer, a websocket client,
and real Chromium on the positions page."""

import json
import time
from datetime import UTC, date, datetime
from decimal import Decimal as D
from urllib.parse import urlparse

import pytest
from django.conf import settings
from django.test import Client
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from positions.services import position_fill_apply

pytestmark = pytest.mark.django_db(transaction=True)

AS_OF = datetime(2025, 6, 2, 14, tzinfo=UTC)


def fill(acct, sec, qty="10", ref="live-1"):
    position_fill_apply(
        account_id=acct.pk,
        security_id=sec.pk,
        side="BUY",
        quantity=D(qty),
        price=D("100"),
        trade_date=date(2025, 6, 2),
        settle_date=date(2025, 6, 3),
        fill_ref=ref,
        as_of=AS_OF,
    )


def ws_connect(server: str, user=None, *, path="/ws/positions/", origin=None):
    headers = {}
    if user is not None:
        client = Client()
        client.force_login(user)
        headers["Cookie"] = (
            f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"
        )
    netloc = urlparse(server).netloc
    return connect(
        f"ws://{netloc}{path}",
        additional_headers=headers,
        origin=origin or server,
        open_timeout=10,
    )


def test_fill_reaches_a_websocket_client_within_one_second(oms_server, refdata):
    with ws_connect(oms_server, refdata.pm1) as ws:
        hello = json.loads(ws.recv(timeout=5))
        assert hello == {"type": "subscribed", "accounts": [refdata.acct1.pk]}
        started = time.monotonic()
        fill(refdata.acct1, refdata.aapl)
        message = json.loads(ws.recv(timeout=1))
        elapsed = time.monotonic() - started
        assert message == {"type": "changed", "account": refdata.acct1.pk}
        assert elapsed < 1.0


def test_pm_is_not_told_about_other_accounts_and_cannot_follow_them(oms_server, refdata):
    with ws_connect(oms_server, refdata.pm1) as ws:
        ws.recv(timeout=5)
        fill(refdata.acct2, refdata.aapl, ref="other")
        with pytest.raises(TimeoutError):
            ws.recv(timeout=0.7)
    with ws_connect(
        oms_server, refdata.pm1, path=f"/ws/positions/?account={refdata.acct2.pk}"
    ) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)
        assert closed.value.rcvd.code == 4403


def test_anonymous_and_foreign_origin_are_refused(oms_server, refdata):
    with ws_connect(oms_server) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)
        assert closed.value.rcvd.code == 4401
    with pytest.raises(InvalidStatus):
        with ws_connect(oms_server, refdata.pm1, origin="http://evil.example"):
            pass


def test_positions_page_shows_a_fill_live(oms_server, refdata, page, login):
    login("pm1")
    page.goto(f"{oms_server}/positions/")
    page.wait_for_selector("[data-testid=live-status][data-state=live]")
    assert page.locator("[data-testid=position-ACCT1-MSFT]").count() == 0
    started = time.monotonic()
    fill(refdata.acct1, refdata.msft, qty="25", ref="page-1")
    row = page.locator("[data-testid=position-ACCT1-MSFT] [data-field=quantity]")
    row.wait_for(timeout=1000)
    elapsed = time.monotonic() - started
    assert row.inner_text() == "25"
    assert elapsed < 1.0
