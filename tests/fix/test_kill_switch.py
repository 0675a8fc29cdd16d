"""The kill switch through the API: engaged for something that exists only, listed for the
blotter header, released with a reason by traders and admins (audited), read by compliance and
operations."""

from __future__ import annotations

import pytest
from django.test import Client
from django.utils import timezone

from audit.models import AuditEvent
from fixgateway import killswitch, selectors
from fixgateway.models import Broker, KillSwitch
from oms.errors import DomainError, NotPermitted

pytestmark = pytest.mark.django_db


@pytest.fixture
def broker(refdata):
    return Broker.objects.create(
        code="BRKA", name="Broker A", port=1, sender_comp_id="OMS", target_comp_id="BRKA"
    )


def _as(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _engage(client, **body):
    return client.post("/api/blotter/kill-switch/", body, content_type="application/json")


@pytest.mark.parametrize(
    ("scope", "value"),
    [("account", "NOPE"), ("broker", "NOPE"), ("trader", "nobody"), ("account", "  ")],
)
def test_engaging_for_something_that_does_not_exist_is_a_400(refdata, broker, scope, value):
    response = _engage(_as(refdata.trader), scope=scope, value=value)
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] in ("unknown_scope_value", "invalid_scope")
    assert not KillSwitch.objects.exists()


def test_engaged_scopes_are_listed_and_released_with_a_reason(refdata, broker):
    trader = _as(refdata.trader)
    assert _engage(trader, scope="broker", value="BRKA").status_code == 200
    assert _engage(trader, scope="account", value="ACCT1").status_code == 200
    assert _engage(trader, scope="all").status_code == 200
    listed = trader.get("/api/kill-switches/").json()["engaged"]
    assert [(s["scope"], s["value"], s["label"], s["engaged_by"]) for s in listed] == [
        ("broker", "BRKA", "Broker BRKA", "trader1"),
        ("account", "ACCT1", "Account ACCT1", "trader1"),
        ("all", "", "Everything", "trader1"),
    ]
    broker_switch = listed[0]["id"]
    refused = trader.post(
        f"/api/kill-switches/{broker_switch}/release/", {}, content_type="application/json"
    )
    assert refused.status_code == 400  # a reason is required
    released = trader.post(
        f"/api/kill-switches/{broker_switch}/release/",
        {"reason": "broker confirmed the line is clean"},
        content_type="application/json",
    )
    assert released.status_code == 200, released.content
    assert released.json()["released"] is True
    assert [s["scope"] for s in selectors.kill_switch_scopes()] == ["account", "all"]
    event = AuditEvent.objects.get(action="fix.kill_switch_release")
    assert event.actor_id == refdata.trader.pk
    assert event.after == {
        "scope": "broker",
        "value": "BRKA",
        "reason": "broker confirmed the line is clean",
    }
    again = trader.post(
        f"/api/kill-switches/{broker_switch}/release/",
        {"reason": "twice"},
        content_type="application/json",
    )
    assert again.status_code == 404
    history = trader.get("/api/kill-switches/?history=1").json()["history"]
    assert {(h["scope"], h["engaged"], h["release_reason"]) for h in history} == {
        ("broker", False, "broker confirmed the line is clean"),
        ("account", True, ""),
        ("all", True, ""),
    }
    # Engaging the same scope again is a new switch.
    assert _engage(trader, scope="broker", value="BRKA").status_code == 200
    assert KillSwitch.objects.filter(scope="broker").count() == 2


def test_who_may_read_and_release(refdata, broker):
    switch = killswitch.kill_switch_engage(
        scope="all", value=None, actor=refdata.trader, as_of=timezone.now()
    )["switch"]
    release = f"/api/kill-switches/{switch}/release/"
    body = {"reason": "all clear"}
    for user, read, act in (
        (refdata.pm1, 403, 403),
        (refdata.compliance, 200, 403),
        (refdata.ops, 200, 403),
    ):
        client = _as(user)
        assert client.get("/api/kill-switches/").status_code == read, user
        assert client.post(release, body, content_type="application/json").status_code == act
    assert KillSwitch.objects.get(pk=switch).released_at is None
    assert (
        _as(refdata.admin).post(release, body, content_type="application/json").status_code == 200
    )
    assert Client().get("/api/kill-switches/").status_code == 401


def test_the_release_service_checks_the_actor_and_the_reason(refdata, broker):
    killswitch.kill_switch_engage(
        scope="broker", value="BRKA", actor=refdata.trader, as_of=timezone.now()
    )
    with pytest.raises(NotPermitted):
        killswitch.kill_switch_release(
            scope="broker", value="BRKA", reason="x", actor=refdata.ops, as_of=timezone.now()
        )
    with pytest.raises(DomainError) as err:
        killswitch.kill_switch_release(
            scope="broker", value="BRKA", reason="   ", actor=refdata.trader, as_of=timezone.now()
        )
    assert err.value.code == "reason_required"
    result = killswitch.kill_switch_release(
        scope="broker", value="BRKA", reason="ok", actor=refdata.trader, as_of=timezone.now()
    )
    assert result["scope"] == "broker"
    assert KillSwitch.objects.get().release_reason == "ok"
