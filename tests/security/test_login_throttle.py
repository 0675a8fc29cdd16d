"""Brute force is throttled; logout and deactivation end sessions; every denial is audited."""

import uuid

import pytest
from django.test import Client

from audit.models import AuditEvent

pytestmark = pytest.mark.django_db


def _fresh(name: str) -> str:
    # Failure counters live in the shared Redis cache for 15 minutes: a new name per run.
    return f"{name}-{uuid.uuid4().hex[:8]}"


def test_five_failed_logins_lock_the_username_even_with_the_right_password(client, make_user):
    victim = _fresh("victim")
    make_user(victim, "PM")
    for _ in range(5):
        response = client.post("/login/", {"username": victim, "password": "guess"})
    assert response.status_code == 429
    locked = client.post("/login/", {"username": victim, "password": "test-pass-123"})
    assert locked.status_code == 429
    assert b"Too many failed logins" in locked.content
    assert "_auth_user_id" not in client.session
    assert AuditEvent.objects.filter(action="auth.locked_out", actor_username=victim).exists()
    assert (
        AuditEvent.objects.filter(action="auth.login_failed", actor_username=victim).count() == 6
    )  # 5 guesses + the locked try


def test_token_endpoint_is_throttled_too(make_user):
    victim = _fresh("victim")
    make_user(victim, "PM")
    api = Client()
    statuses = [
        api.post("/api/auth/token/", {"username": victim, "password": "guess"}).status_code
        for _ in range(6)
    ]
    assert statuses[:4] == [400, 400, 400, 400]
    assert 429 in statuses[4:]
    right = api.post("/api/auth/token/", {"username": victim, "password": "test-pass-123"})
    assert right.status_code == 429


def test_logout_ends_the_session(client, make_user):
    name = _fresh("pmx")
    make_user(name, "PM")
    assert (
        client.post("/login/", {"username": name, "password": "test-pass-123"}).status_code == 302
    )
    assert client.get("/accounts/").status_code == 200
    client.post("/logout/")
    assert client.get("/accounts/").status_code == 302


def test_deactivation_ends_sessions_and_tokens(client, make_user):
    user = make_user(_fresh("pmy"), "PM")
    client.force_login(user)
    token = (
        Client()
        .post("/api/auth/token/", {"username": user.username, "password": "test-pass-123"})
        .json()["token"]
    )
    api = Client(HTTP_AUTHORIZATION=f"Token {token}")
    assert api.get("/api/accounts/").status_code == 200
    user.is_active = False
    user.save(update_fields=["is_active"])
    assert client.get("/accounts/").status_code == 302
    assert api.get("/api/accounts/").status_code in (401, 403)
