"""A signed-in browser session cannot be made to change anything from another site (no CSRF
token: refused, audited, nothing written), and reading never writes."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client

from audit.models import AuditEvent

from .conftest import ROLES
from .test_access_matrix import API, MISSING, PAGES, _body, _fill

pytestmark = pytest.mark.django_db

# Reading may leave these behind: the audit trail (downloads are audited) and sessions.
MAY_CHANGE_ON_READ = {"audit_auditevent", "django_session"}


def table_fingerprints() -> dict[str, str]:
    """Every table's whole content as one hash: catches inserts, updates and deletes."""
    result = {}
    with connection.cursor() as cursor:
        for table in sorted(connection.introspection.table_names()):
            if table in MAY_CHANGE_ON_READ:
                continue
            quoted = connection.ops.quote_name(table)
            cursor.execute(
                f"SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM {quoted} t"
            )
            count, digest = cursor.fetchone()
            result[table] = f"{count}:{digest}"
    return result


def _changed(before: dict[str, str], after: dict[str, str]) -> list[str]:
    return sorted(t for t in before if before[t] != after.get(t))


# Page forms that change something, with a body that would be accepted (CSRF aside).
PAGE_POSTS = [
    ("/logout/", {}),
    ("/compliance/post-trade/", {}),
    ("/compliance/override/", {"order_id": "{order1}", "reason": "because"}),
    ("/operations/", {"trade_date": "2026-01-05"}),
    ("/operations/blocks/{block}/", {"reason": "move it"}),
    ("/operations/blocks/{block}/finalise/", {}),
    ("/positions/start-of-day/", {"dry_run": "on"}),
    ("/exceptions/{exc}/resolve/", {"note": "resolved from another site"}),
]
# API calls that would be accepted from the admin's session with a token.
API_VALID = {
    ("order-list", "POST"): {
        "account": "ACCT1",
        "symbol": "AAPL",
        "side": "BUY",
        "quantity": "10",
        "order_type": "MARKET",
    },
    ("blotter-layout", "PUT"): {"group_by": "symbol"},
    ("block-create", "POST"): {"order_ids": ["{order2}"]},
    ("block-dissolve", "POST"): {},
    ("blotter-kill-switch", "POST"): {"scope": "all"},
    ("kill-switch-release", "POST"): {"reason": "released from another site"},
    ("held-order-release", "POST"): {"note": "released from another site"},
    ("exception-resolve", "POST"): {"note": "resolved from another site"},
}


def _fill_any(value, world):
    if isinstance(value, str):
        return _fill(value.replace("{order2}", str(world.order2.pk)), world)
    if isinstance(value, list):
        return [_fill_any(v, world) for v in value]
    if isinstance(value, dict):
        return {k: _fill_any(v, world) for k, v in value.items()}
    return value


def test_session_requests_without_a_csrf_token_are_refused_and_change_nothing(world):
    admin = world.client("admin", enforce_csrf_checks=True)
    problems: list[str] = []
    cases = 0
    requests = []
    for name, method, template, *_ in API:
        if method == "GET" or name == "api-token":  # the token login uses no session at all
            continue
        path = _fill(template, world).replace(str(MISSING), str(world.block.pk))
        body = _fill_any(API_VALID.get((name, method)), world) or _body(name, method, world)
        requests.append((method, path, body, True))
    for template, body in PAGE_POSTS:
        requests.append(("POST", _fill(template, world), _fill_any(body, world), False))
    for method, path, body, api in requests:
        cases += 1
        before = table_fingerprints()
        denials = AuditEvent.objects.filter(action="access.denied").count()
        if api:
            response = getattr(admin, method.lower())(
                path, body if body is not None else {}, content_type="application/json"
            )
        else:
            response = admin.post(path, body)
        changed = _changed(before, table_fingerprints())
        if response.status_code != 403:
            problems.append(f"{method} {path}: {response.status_code} without a CSRF token")
        if changed:
            problems.append(f"{method} {path}: changed {changed}")
        event = AuditEvent.objects.filter(action="access.denied").order_by("-chain_seq").first()
        if (
            AuditEvent.objects.filter(action="access.denied").count() != denials + 1
            or event.after["path"] != path
            or "CSRF" not in event.after["reason"]
        ):
            problems.append(f"{method} {path}: CSRF refusal not audited")
    assert not problems, "\n".join(problems)
    print(f"\nFIGURE CSRF: {cases} state-changing requests without a token refused and audited")


def test_with_the_token_the_same_session_gets_through(world):
    """The control: the refusals above are the CSRF check, not something else."""
    admin = world.client("admin", enforce_csrf_checks=True)
    admin.get("/orders/ticket/")  # the page sets the csrftoken cookie
    token = admin.cookies["csrftoken"].value
    response = admin.put(
        "/api/blotter/layout/",
        {"group_by": "symbol"},
        content_type="application/json",
        HTTP_X_CSRFTOKEN=token,
    )
    assert response.status_code == 200, response.content
    assert admin.get("/api/blotter/layout/").json()["group_by"] == "symbol"
    page = admin.post(
        "/compliance/override/", {"order_id": "0", "reason": "x", "csrfmiddlewaretoken": token}
    )
    assert page.status_code == 302


def test_token_clients_need_no_csrf_token_and_cannot_use_a_session_without_one():
    """A cookie alone is what a forged request carries; a token header is not sent by a
    browser on its own, so the token API needs no CSRF check."""
    anonymous = Client(enforce_csrf_checks=True)
    assert anonymous.post("/api/orders/", {}, content_type="application/json").status_code == 401


def test_reading_changes_nothing_for_any_role(world):
    problems: list[str] = []
    cases = 0
    clients = {role: world.client(role) for role in ROLES}
    for _name, method, template, *_ in API + PAGES:
        if method != "GET":
            continue
        path = _fill(template, world)
        for role in ROLES:
            cases += 1
            before = table_fingerprints()
            clients[role].get(path)
            changed = _changed(before, table_fingerprints())
            if changed:
                problems.append(f"GET {path} as {role} changed {changed}")
    assert not problems, "\n".join(problems)
    print(
        f"\nFIGURE safe methods: {cases} GET requests (every GET route x {len(ROLES)} roles) changed nothing"
    )
