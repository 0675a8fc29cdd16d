"""Who may do what: every role against every API endpoint and page, with the expected status
written out as a table, and every refusal on the audit trail.

The table is checked against the URL resolver and the OpenAPI schema, so a new endpoint or
page fails this test until someone writes down who may use it.

Requests that could change something carry a body the endpoint refuses (400) or name an object
that does not exist (404), so a 400/404 for a role means "got past the permission check" and
the table can be run in any order. "other_pm" is pm2 asking for pm1's objects.
"""

from __future__ import annotations

import re

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, resolve

from audit.models import AuditEvent

from .conftest import ROLES

pytestmark = pytest.mark.django_db

MISSING = 999_999  # an id no row has

# fmt: off
# route name              method   path                                          pm  oPM  trd  cmp  ops  adm  anon
API = [
    ("api-token",          "POST",  "/api/auth/token/",                         400, 400, 400, 400, 400, 400, 400),
    # The schema and its viewer describe the endpoints, not data: open, as DRF serves them.
    ("api-schema",         "GET",   "/api/schema/",                             200, 200, 200, 200, 200, 200, 200),
    ("api-docs",           "GET",   "/api/docs/",                               200, 200, 200, 200, 200, 200, 200),
    ("api-root",           "GET",   "/api/",                                    200, 200, 200, 200, 200, 200, 401),
    ("security-search",    "GET",   "/api/securities/search/?q=AA",             200, 200, 200, 200, 200, 200, 401),
    ("security-list",      "GET",   "/api/securities/",                         200, 200, 200, 200, 200, 200, 401),
    ("security-detail",    "GET",   "/api/securities/{aapl}/",                  200, 200, 200, 200, 200, 200, 401),
    ("account-list",       "GET",   "/api/accounts/",                           200, 200, 200, 200, 200, 200, 401),
    ("account-detail",     "GET",   "/api/accounts/{acct1}/",                   200, 404, 200, 200, 200, 200, 401),
    ("order-list",         "GET",   "/api/orders/",                             200, 200, 200, 200, 200, 200, 401),
    ("order-list",         "POST",  "/api/orders/",                             400, 400, 403, 403, 403, 400, 401),
    ("order-detail",       "GET",   "/api/orders/{order1}/",                    200, 404, 200, 200, 200, 200, 401),
    ("order-detail",       "PATCH", "/api/orders/{order1}/",                    400, 404, 403, 403, 403, 400, 401),
    # order1 sits in a block: a cancel from the PM is refused as a conflict, after the checks.
    ("order-cancel",       "POST",  "/api/orders/{order1}/cancel/",             409, 404, 403, 403, 403, 409, 401),
    ("order-ticket-info",  "GET",   "/api/orders/ticket-info/?account=ACCT1&symbol=AAPL",
                                                                                200, 404, 200, 200, 200, 200, 401),
    ("basket-upload",      "POST",  "/api/baskets/",                            400, 400, 403, 403, 403, 400, 401),
    ("basket-rebalance",   "POST",  "/api/baskets/rebalance/",                  400, 400, 403, 403, 403, 400, 401),
    ("basket-rebalance-drift", "POST", "/api/baskets/rebalance/drift.csv",      400, 400, 403, 403, 403, 400, 401),
    # Another PM's account reads as an unknown one (404, the same words), so nothing leaks.
    ("compliance-check",   "POST",  "/api/compliance/check/",                   200, 404, 200, 200, 200, 200, 401),
    # order1 is not awaiting an override: 409 for whoever may ask about it at all.
    ("compliance-override", "POST", "/api/compliance/overrides/",               409, 404, 403, 409, 403, 409, 401),
    ("blotter-snapshot",   "GET",   "/api/blotter/snapshot/",                   404, 404, 200, 200, 200, 200, 401),
    ("blotter-snapshot",   "GET",   "/api/blotter/snapshot/?scope=mine",        200, 200, 200, 200, 200, 200, 401),
    ("blotter-layout",     "GET",   "/api/blotter/layout/",                     200, 200, 200, 200, 200, 200, 401),
    ("blotter-layout",     "PUT",   "/api/blotter/layout/",                     400, 400, 400, 400, 400, 400, 401),
    ("blotter-sessions",   "GET",   "/api/blotter/sessions/",                   200, 200, 200, 200, 200, 200, 401),
    ("blotter-header",     "GET",   "/api/blotter/header/",                     403, 403, 200, 200, 200, 200, 401),
    ("blotter-brokers",    "GET",   "/api/blotter/brokers/",                    403, 403, 200, 403, 403, 200, 401),
    ("blotter-cross",      "POST",  "/api/blotter/cross/",                      403, 403, 400, 403, 403, 400, 401),
    ("blotter-kill-switch", "POST", "/api/blotter/kill-switch/",                403, 403, 400, 403, 403, 400, 401),
    # Kill switches and held orders may name any account: the desk acts, compliance and
    # operations read, PMs neither. A release needs a reason (400 without one).
    ("kill-switch-list",   "GET",   "/api/kill-switches/",                      403, 403, 200, 200, 200, 200, 401),
    ("kill-switch-release", "POST", "/api/kill-switches/{missing}/release/",    403, 403, 400, 403, 403, 400, 401),
    ("fix-message-list",   "GET",   "/api/fix/messages/",                       403, 403, 200, 200, 200, 200, 401),
    ("fix-message-list",   "GET",   "/api/fix/messages/?msg_type=ZZ",           403, 403, 400, 400, 400, 400, 401),
    ("held-order-list",    "GET",   "/api/held-orders/",                        403, 403, 200, 200, 200, 200, 401),
    ("held-order-release", "POST",  "/api/held-orders/{missing}/release/",      403, 403, 404, 403, 403, 404, 401),
    ("held-order-cancel",  "POST",  "/api/held-orders/{missing}/cancel/",       403, 403, 404, 403, 403, 404, 401),
    ("fix-session-list",   "GET",   "/api/fix-sessions/",                       403, 403, 200, 200, 200, 200, 401),
    ("fix-session-reset-sequence", "POST", "/api/fix-sessions/{missing}/reset-sequence/",
                                                                                403, 403, 400, 403, 403, 400, 401),
    ("unconfirmed-list",   "GET",   "/api/unconfirmed-orders/",                 403, 403, 200, 200, 200, 200, 401),
    ("unconfirmed-cancel", "POST",  "/api/unconfirmed-orders/{missing}/cancel/", 403, 403, 400, 403, 403, 400, 401),
    ("unconfirmed-confirm", "POST", "/api/unconfirmed-orders/{missing}/confirm/", 403, 403, 400, 403, 403, 400, 401),
    ("unconfirmed-resend", "POST",  "/api/unconfirmed-orders/{missing}/resend/", 403, 403, 404, 403, 403, 404, 401),
    ("block-create",       "POST",  "/api/blocks/",                             403, 403, 400, 403, 403, 400, 401),
    ("block-detail",       "GET",   "/api/blocks/{block}/",                     403, 403, 200, 403, 403, 200, 401),
    # A PM reads a block holding one of their orders; another's reads as a missing one.
    ("block-history",      "GET",   "/api/blocks/{block}/detail/",              200, 404, 200, 200, 200, 200, 401),
    ("block-history",      "GET",   "/api/blocks/{missing}/detail/",            404, 404, 404, 404, 404, 404, 401),
    ("block-route",        "POST",  "/api/blocks/{block}/route/",               403, 403, 400, 403, 403, 400, 401),
    ("block-cancel",       "POST",  "/api/blocks/{missing}/cancel/",            403, 403, 404, 403, 403, 404, 401),
    ("block-replace",      "POST",  "/api/blocks/{block}/replace/",             403, 403, 400, 403, 403, 400, 401),
    ("block-dissolve",     "POST",  "/api/blocks/{missing}/dissolve/",          403, 403, 404, 403, 403, 404, 401),
    ("positions-list",     "GET",   "/api/positions/",                          200, 200, 200, 200, 200, 200, 401),
    ("positions-list",     "GET",   "/api/positions/?account=ACCT1",            200, 404, 200, 200, 200, 200, 401),
    ("cash-list",          "GET",   "/api/cash/",                               200, 200, 200, 200, 200, 200, 401),
    ("cash-list",          "GET",   "/api/cash/?account={acct1}",               200, 404, 200, 200, 200, 200, 401),
    ("exposure-list",      "GET",   "/api/exposure/",                           200, 200, 200, 200, 200, 200, 401),
    ("exposure-list",      "GET",   "/api/exposure/?account=ACCT1",             200, 404, 200, 200, 200, 200, 401),
    # The back office: Operations and Admin only (allocations may name any PM's account).
    ("allocation-list",    "GET",   "/api/allocations/",                        403, 403, 403, 403, 200, 200, 401),
    ("booking-block-days", "GET",   "/api/booking/blocks/{block}/days/",        403, 403, 403, 403, 200, 200, 401),
    ("booking-block-days", "GET",   "/api/booking/blocks/{missing}/days/",      403, 403, 403, 403, 404, 404, 401),
    ("booking-day-finalise", "POST", "/api/booking/blocks/{missing}/days/2026-01-02/finalise/",
                                                                                403, 403, 403, 403, 404, 404, 401),
    ("settlement-file-list", "GET", "/api/settlement-files/",                   403, 403, 403, 403, 200, 200, 401),
    ("settlement-file-generate", "POST", "/api/settlement-files/generate/",     403, 403, 403, 403, 400, 400, 401),
    ("settlement-file-download", "GET", "/api/settlement-files/{sfile}/download/",
                                                                                403, 403, 403, 403, 200, 200, 401),
    # The exceptions queue may name any PM's account: no PM reads it; compliance only reads.
    ("exception-list",     "GET",   "/api/exceptions/",                         403, 403, 200, 200, 200, 200, 401),
    ("exception-detail",   "GET",   "/api/exceptions/{exc}/",                   403, 403, 200, 200, 200, 200, 401),
    ("exception-detail",   "GET",   "/api/exceptions/{missing}/",               403, 403, 404, 404, 404, 404, 401),
    ("exception-resolve",  "POST",  "/api/exceptions/{exc}/resolve/",           403, 403, 400, 403, 400, 400, 401),
    # Quotes name no account: every role. TCA: the desk and compliance; a PM their own orders.
    ("marketdata-quotes",  "GET",   "/api/marketdata/quotes/",                  200, 200, 200, 200, 200, 200, 401),
    ("tca",                "GET",   "/api/tca/",                                200, 200, 200, 200, 403, 200, 401),
    ("tca-fills",          "GET",   "/api/tca/blocks/{block}/fills/",           200, 404, 200, 200, 403, 200, 401),
]

# Pages: an anonymous visitor is sent to the login page (302), which is not audited (it asks
# who you are; it refuses nothing yet).
PAGES = [
    ("home",               "GET",   "/",                                        200, 200, 200, 200, 200, 200, 302),
    ("healthz",            "GET",   "/healthz",                                 200, 200, 200, 200, 200, 200, 200),
    ("favicon",            "GET",   "/favicon.ico",                             302, 302, 302, 302, 302, 302, 302),
    ("login",              "GET",   "/login/",                                  200, 200, 200, 200, 200, 200, 200),
    ("logout",             "GET",   "/logout/",                                 405, 405, 405, 405, 405, 405, 405),
    ("accounts",           "GET",   "/accounts/",                               200, 200, 200, 200, 200, 200, 302),
    ("account_detail",     "GET",   "/accounts/ACCT1/",                         200, 404, 200, 200, 200, 200, 302),
    ("events",             "GET",   "/audit/",                                  403, 403, 403, 200, 403, 200, 302),
    ("events",             "GET",   "/audit/?format=csv",                       403, 403, 403, 200, 403, 200, 302),
    ("blotter",            "GET",   "/blotter/",                                403, 403, 200, 403, 403, 200, 302),
    ("ticket",             "GET",   "/orders/ticket/",                          200, 200, 403, 403, 403, 200, 302),
    ("my_orders",          "GET",   "/orders/mine/",                            200, 200, 403, 403, 403, 200, 302),
    ("basket_upload",      "GET",   "/orders/baskets/",                         200, 200, 403, 403, 403, 200, 302),
    ("dashboard",          "GET",   "/compliance/",                             403, 403, 403, 200, 403, 200, 302),
    ("post_trade_run",     "GET",   "/compliance/post-trade/",                  405, 405, 405, 405, 405, 405, 302),
    ("override",           "POST",  "/compliance/override/",                    403, 403, 403, 302, 403, 302, 302),
    ("override_bulk",      "POST",  "/compliance/override/bulk/",               403, 403, 403, 302, 403, 302, 302),
    ("positions",          "GET",   "/positions/",                              200, 200, 200, 200, 200, 200, 302),
    ("positions",          "GET",   "/positions/?account=ACCT1",                200, 404, 200, 200, 200, 200, 302),
    ("cash",               "GET",   "/positions/cash/",                         200, 200, 200, 200, 200, 200, 302),
    ("cash",               "GET",   "/positions/cash/?account=ACCT1",           200, 404, 200, 200, 200, 200, 302),
    ("exposure",           "GET",   "/positions/exposure/",                     200, 200, 200, 200, 200, 200, 302),
    ("sod_upload",         "GET",   "/positions/start-of-day/",                 403, 403, 403, 403, 200, 200, 302),
    ("operations",         "GET",   "/operations/",                             403, 403, 403, 403, 200, 200, 302),
    ("block",              "GET",   "/operations/blocks/{block}/",              403, 403, 403, 403, 200, 200, 302),
    ("finalise",           "POST",  "/operations/blocks/{missing}/finalise/",   403, 403, 403, 403, 404, 404, 302),
    ("settlement_file_download", "GET", "/operations/settlement-files/{sfile}/download/",
                                                                                403, 403, 403, 403, 200, 200, 302),
    ("messages",           "GET",   "/fix/messages/",                           403, 403, 200, 200, 200, 200, 302),
    ("exceptions",         "GET",   "/exceptions/",                             403, 403, 200, 200, 200, 200, 302),
    ("exception_detail",   "GET",   "/exceptions/{exc}/",                       403, 403, 200, 200, 200, 200, 302),
    ("exception_resolve",  "POST",  "/exceptions/{missing}/resolve/",           403, 403, 404, 403, 404, 404, 302),
    ("tca",                "GET",   "/tca/",                                    403, 403, 200, 200, 403, 200, 302),
    ("tca_export",         "GET",   "/tca/export.csv",                          403, 403, 200, 200, 403, 200, 302),
    ("list",               "GET",   "/reports/",                                200, 200, 200, 200, 200, 200, 302),
    ("detail",             "GET",   "/reports/{missing}/",                      404, 404, 404, 404, 404, 404, 302),
    ("csv",                "GET",   "/reports/{missing}/download.csv",          404, 404, 404, 404, 404, 404, 302),
    ("print",              "GET",   "/reports/{missing}/print/",                404, 404, 404, 404, 404, 404, 302),
    ("generate",           "POST",  "/reports/generate/",                       403, 403, 403, 400, 400, 400, 302),
    # The Django admin keeps its own per-model permissions; only staff roles get in at all.
    ("index",              "GET",   "/admin/",                                  302, 302, 302, 200, 200, 200, 302),
]
# fmt: on

# What the requests that could change something send (refused by validation, or harmless).
BODIES = {
    ("api-token", "POST"): {},
    ("order-list", "POST"): {},
    ("order-detail", "PATCH"): {"quantity": "not a number"},
    ("order-cancel", "POST"): {},
    ("basket-upload", "POST"): {},
    ("basket-rebalance", "POST"): {},
    ("basket-rebalance-drift", "POST"): {},
    ("compliance-check", "POST"): {
        "account": "ACCT1",
        "symbol": "AAPL",
        "side": "BUY",
        "quantity": "10",
    },
    ("compliance-override", "POST"): {"order_id": "{order1}", "reason": "looked at it"},
    ("blotter-layout", "PUT"): ["not", "an", "object"],
    ("blotter-cross", "POST"): {},
    ("blotter-kill-switch", "POST"): {},
    ("kill-switch-release", "POST"): {},
    ("held-order-release", "POST"): {},
    ("held-order-cancel", "POST"): {},
    ("fix-session-reset-sequence", "POST"): {},
    ("unconfirmed-cancel", "POST"): {},
    ("unconfirmed-confirm", "POST"): {},
    ("unconfirmed-resend", "POST"): {},
    ("block-create", "POST"): {},
    ("block-route", "POST"): {},
    ("block-cancel", "POST"): {},
    ("block-replace", "POST"): {"quantity": "not a number"},
    ("block-dissolve", "POST"): {},
    ("override", "POST"): {"order_id": "{missing}", "reason": "x"},
    ("override_bulk", "POST"): {"order_ids": "{missing}", "reason": "x"},
    ("finalise", "POST"): {},
    ("exception-resolve", "POST"): {},
    ("booking-day-finalise", "POST"): {},
    ("settlement-file-generate", "POST"): {},
    ("exception_resolve", "POST"): {"note": "looked at it"},
    ("generate", "POST"): {"date": "not a date"},
}
# Routes no role table covers, and why.
NOT_IN_TABLE = {
    # Django's admin: one entry above for the way in; its model pages are Django's.
    "admin",
}
REFUSALS = {401, 403, 404}


def _fill(text: str, world) -> str:
    ref = world.ref
    return text.format(
        acct1=ref.acct1.pk,
        aapl=ref.aapl.pk,
        order1=world.order1.pk,
        block=world.block.pk,
        sfile=world.sfile.pk,
        exc=world.exc.pk,
        missing=MISSING,
    )


def _body(name: str, method: str, world):
    body = BODIES.get((name, method))
    if isinstance(body, dict):
        return {k: _fill(v, world) if isinstance(v, str) else v for k, v in body.items()}
    return body


MULTIPART = {"basket-upload", "basket-rebalance", "basket-rebalance-drift"}


def _call(client, method: str, path: str, body, *, api: bool, name: str = ""):
    if method == "GET":
        return client.get(path)
    if not api or name in MULTIPART:
        return client.post(path, body or {})
    call = getattr(client, method.lower())
    return call(path, body if body is not None else {}, content_type="application/json")


def _check(table, world, *, api: bool) -> tuple[list[str], int]:
    problems: list[str] = []
    cells = 0
    clients = {role: world.client(role) for role in ROLES}
    for name, method, template, *codes in table:
        path = _fill(template, world)
        body = _body(name, method, world)
        for role, expected in zip(ROLES, codes, strict=True):
            cells += 1
            before = AuditEvent.objects.filter(action="access.denied").count()
            response = _call(clients[role], method, path, body, api=api, name=name)
            got = response.status_code
            if got != expected:
                problems.append(f"{method} {path} as {role}: {got}, expected {expected}")
                continue
            denials = AuditEvent.objects.filter(action="access.denied").order_by("-chain_seq")
            audited = denials.count() - before
            user = world.user(role)
            if expected in REFUSALS and not (user is None and expected == 404):
                event = denials.first() if audited == 1 else None
                if (
                    event is None
                    or event.after["path"] != path
                    or event.after["method"] != method
                    or event.after["status"] != expected
                    or event.actor_id != (user.pk if user else None)
                ):
                    problems.append(f"{method} {path} as {role}: {got} not audited")
            elif audited:
                problems.append(f"{method} {path} as {role}: {got} audited as a denial")
    return problems, cells


def test_every_role_against_every_api_endpoint(world):
    problems, cells = _check(API, world, api=True)
    assert not problems, "\n".join(problems)
    print(f"\nFIGURE access matrix API: {len(API)} endpoints x {len(ROLES)} roles = {cells} cases")


def test_every_role_against_every_page(world):
    problems, cells = _check(PAGES, world, api=False)
    assert not problems, "\n".join(problems)
    print(f"\nFIGURE access matrix pages: {len(PAGES)} pages x {len(ROLES)} roles = {cells} cases")


def _routes(patterns, prefix=""):
    for p in patterns:
        if isinstance(p, URLResolver):
            if p.namespace in NOT_IN_TABLE:
                continue
            yield from _routes(p.url_patterns, prefix + str(p.pattern))
        elif isinstance(p, URLPattern):
            yield prefix + str(p.pattern), p.name


def test_the_tables_cover_every_route_in_the_resolver():
    listed = {row[0] for row in API + PAGES}
    missing = sorted(
        f"{route} ({name})"
        for route, name in _routes(get_resolver().url_patterns)
        if name not in listed
    )
    assert not missing, "routes nobody decided access for:\n" + "\n".join(missing)


def test_the_api_table_covers_every_operation_in_the_schema(client, refdata):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    listed = {(row[0], row[1]) for row in API}
    missing = []
    for path, operations in schema["paths"].items():
        concrete = re.sub(r"\{[^}]+\}", "1", path)
        name = resolve(concrete).url_name
        for method in operations:
            if method.upper() in {"GET", "POST", "PUT", "PATCH", "DELETE"}:
                if (name, method.upper()) not in listed:
                    missing.append(f"{method.upper()} {path} ({name})")
    assert not missing, "operations nobody decided access for:\n" + "\n".join(missing)


def _json_mentions(value, *, code: str, pk: int) -> bool:
    if isinstance(value, dict):
        for key, item in value.items():
            if key in ("account", "account_code", "code") and item == code:
                return True
            if key in ("account_id", "account") and item == pk:
                return True
            if _json_mentions(item, code=code, pk=pk):
                return True
    elif isinstance(value, list):
        return any(_json_mentions(item, code=code, pk=pk) for item in value)
    return False


def test_no_list_or_page_shows_a_pm_another_pms_rows(world):
    """Everything pm1 may read, read as pm1: nothing of ACCT2 (pm2's account, which alone
    holds MSFT and has order2)."""
    ref = world.ref
    client = world.client("pm")
    checked = 0
    extra = [
        ("order-list", "GET", "/api/orders/?account=ACCT2", 200),
        ("order-list", "GET", "/api/orders/?symbol=MSFT", 200),
        ("blotter-snapshot", "GET", "/api/blotter/snapshot/?scope=mine", 200),
    ]
    for name, method, template, expected, *_ in [
        *[(r[0], r[1], r[2], r[3]) for r in API + PAGES],
        *extra,
    ]:
        if method != "GET" or expected != 200 or name in ("api-schema", "api-docs"):
            continue
        path = _fill(template, world)
        response = client.get(path)
        if response.status_code != 200:
            continue
        checked += 1
        body = response.content.decode()
        assert "ACCT2" not in body, f"{path} shows ACCT2 to pm1"
        if response.get("Content-Type", "").startswith("application/json"):
            assert not _json_mentions(response.json(), code="ACCT2", pk=ref.acct2.pk), path
        if name in ("positions-list", "exposure-list", "positions", "exposure", "my_orders"):
            assert "MSFT" not in body, f"{path} shows pm2's MSFT to pm1"
    # The lists do show pm1's own rows (the checks above are not vacuous).
    assert [o["id"] for o in client.get("/api/orders/").json()["results"]] == [world.order1.pk]
    assert {p["account_code"] for p in client.get("/api/positions/").json()["results"]} == {"ACCT1"}
    assert checked >= 20
    print(
        f"\nFIGURE foreign rows: {checked} lists and pages read as a PM, none with another PM's rows"
    )
