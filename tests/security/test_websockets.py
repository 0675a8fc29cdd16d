"""Every websocket route against every role, a foreign Origin, and access taken away while
connected (role removed, user deactivated, logged out): closed within 5 s, every refusal
audited. Over a real Daphne serving the test database."""

from __future__ import annotations

import time

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from websockets.exceptions import ConnectionClosed, InvalidStatus

from audit.models import AuditEvent
from oms.routing import websocket_urlpatterns
from tests.blotter.helpers import session_cookie, ws_connect, ws_json

from .conftest import ROLES

pytestmark = pytest.mark.django_db(transaction=True)

OK = "subscribed"
REVOKE_WITHIN = 5.0

# fmt: off
# route                           pm      oPM     trd     cmp     ops     adm     anon
WEBSOCKETS = [
    ("/ws/blotter/",              4403,   4403,   OK,     OK,     OK,     OK,     4401),
    ("/ws/orders/mine/",          OK,     OK,     OK,     OK,     OK,     OK,     4401),
    ("/ws/positions/",            OK,     OK,     OK,     OK,     OK,     OK,     4401),
    ("/ws/positions/?account={acct1}", OK, 4403,  OK,     OK,     OK,     OK,     4401),
]
# fmt: on


def _outcome(ws) -> int | str:
    try:
        return ws_json(ws)["type"]
    except ConnectionClosed as closed:
        return closed.rcvd.code


def _denials(path: str):
    return AuditEvent.objects.filter(
        action="access.denied", object_type="websocket", after__path=path
    )


def test_the_table_covers_every_websocket_route():
    routes = {"/" + str(p.pattern) for p in websocket_urlpatterns}
    assert routes == {row[0].split("?")[0] for row in WEBSOCKETS}


def test_every_role_against_every_websocket_route(oms_server, world):
    cookies = {r: session_cookie(world.user(r)) if world.user(r) else None for r in ROLES}
    problems = []
    cases = 0
    for template, *expected_codes in WEBSOCKETS:
        path = template.format(acct1=world.ref.acct1.pk)
        for role, expected in zip(ROLES, expected_codes, strict=True):
            cases += 1
            before = _denials(path.split("?")[0]).count()
            with ws_connect(oms_server, path, cookie=cookies[role]) as ws:
                got = _outcome(ws)
            audited = _denials(path.split("?")[0]).count() - before
            if got != expected:
                problems.append(f"{path} as {role}: {got}, expected {expected}")
            elif expected != OK and audited != 1:
                problems.append(f"{path} as {role}: refusal {got} audited {audited} times")
            elif expected == OK and audited:
                problems.append(f"{path} as {role}: accepted but audited as refused")
    assert not problems, "\n".join(problems)
    print(f"\nFIGURE websockets: {len(WEBSOCKETS)} routes x {len(ROLES)} roles = {cases} cases")


def test_a_user_without_any_role_is_refused_everywhere(oms_server, world, make_user):
    nobody = make_user("norole")
    cookie = session_cookie(nobody)
    for template, *_ in WEBSOCKETS:
        with ws_connect(oms_server, template.format(acct1=world.ref.acct1.pk), cookie=cookie) as ws:
            assert _outcome(ws) == 4403


@pytest.mark.parametrize("path", [row[0] for row in WEBSOCKETS if "?" not in row[0]])
def test_a_foreign_origin_is_refused_and_audited(oms_server, world, path):
    cookie = session_cookie(world.ref.admin)
    with pytest.raises(InvalidStatus) as refused:
        ws_connect(oms_server, path, cookie=cookie, origin="http://evil.example")
    assert refused.value.response.status_code == 403
    event = _denials(path).order_by("-chain_seq").first()
    assert event is not None and "evil.example" in event.after["reason"]
    assert event.actor_id == world.ref.admin.pk
    # The same session from the page's own origin is accepted.
    with ws_connect(oms_server, path, cookie=cookie) as ws:
        assert _outcome(ws) == OK


def _closed_within(ws, seconds: float) -> tuple[int, float]:
    start = time.monotonic()
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            ws.recv(timeout=max(0.01, seconds - (time.monotonic() - start)))
    return closed.value.rcvd.code, time.monotonic() - start


def _still_open(ws) -> bool:
    try:
        ws.recv(timeout=1.0)
    except TimeoutError:
        return True
    except ConnectionClosed:
        return False
    return True


def _open(oms_server, path, user):
    ws = ws_connect(oms_server, path, cookie=session_cookie(user))
    assert ws_json(ws)["type"] == OK
    return ws


REVOKE_TIMES: list[float] = []


def test_removing_the_traders_role_closes_the_blotter(oms_server, world):
    ref = world.ref
    desk = _open(oms_server, "/ws/blotter/", ref.trader)
    other = _open(oms_server, "/ws/blotter/", ref.compliance)
    try:
        ref.trader.groups.remove(Group.objects.get(name="Trader"))
        code, took = _closed_within(desk, REVOKE_WITHIN)
        assert code == 4403
        REVOKE_TIMES.append(took)
        assert _still_open(other), "someone else's feed was closed too"
        event = _denials("/ws/blotter/").order_by("-chain_seq").first()
        assert event.actor_id == ref.trader.pk and event.after["reason"] == "access revoked"
    finally:
        desk.close()
        other.close()


def test_removing_the_pm_role_closes_positions_and_own_orders(oms_server, world):
    ref = world.ref
    feeds = [_open(oms_server, p, ref.pm1) for p in ("/ws/positions/", "/ws/orders/mine/")]
    try:
        # From the group's side this time (as the admin's group page does it).
        Group.objects.get(name="PM").user_set.remove(ref.pm1)
        for ws in feeds:
            code, took = _closed_within(ws, REVOKE_WITHIN)
            assert code == 4403
            REVOKE_TIMES.append(took)
    finally:
        for ws in feeds:
            ws.close()


def test_deactivating_a_user_closes_every_feed_they_have_open(oms_server, world):
    ref = world.ref
    feeds = [
        _open(oms_server, p, ref.pm1)
        for p in ("/ws/orders/mine/", "/ws/positions/", f"/ws/positions/?account={ref.acct1.pk}")
    ]
    bystander = _open(oms_server, "/ws/orders/mine/", ref.pm2)
    try:
        ref.pm1.is_active = False
        ref.pm1.save(update_fields=["is_active"])
        for ws in feeds:
            code, took = _closed_within(ws, REVOKE_WITHIN)
            assert code == 4403
            REVOKE_TIMES.append(took)
        assert _still_open(bystander)
        reasons = {
            e.after["reason"]
            for e in AuditEvent.objects.filter(action="access.denied", actor_id=ref.pm1.pk)
        }
        assert reasons == {"user deactivated"}
    finally:
        for ws in (*feeds, bystander):
            ws.close()


def test_logging_out_closes_the_sessions_feeds(oms_server, world):
    ref = world.ref
    cookie = session_cookie(ref.pm1)
    ws = ws_connect(oms_server, "/ws/orders/mine/", cookie=cookie)
    other_session = _open(oms_server, "/ws/orders/mine/", ref.pm1)
    try:
        assert ws_json(ws)["type"] == OK
        browser = Client()
        browser.cookies["sessionid"] = cookie
        assert browser.post("/logout/").status_code == 302
        code, took = _closed_within(ws, REVOKE_WITHIN)
        assert code == 4403
        REVOKE_TIMES.append(took)
        # The same user's other session (another browser) is still signed in.
        assert _still_open(other_session)
    finally:
        ws.close()
        other_session.close()
    print(
        f"\nFIGURE websocket revocation: {len(REVOKE_TIMES)} feeds closed, slowest "
        f"{max(REVOKE_TIMES):.2f} s (limit {REVOKE_WITHIN:.0f} s)"
    )
