"""Every URL the OMS serves, walked: each pattern in the URLconf with its path filled with ids
that exist, ids past any bigint and junk, asked by every role and anonymously, with hostile
query strings (impossible dates, huge numbers, unicode, NUL, unknown and repeated names) and
hostile bodies (JSON nested past the limit, wrong types, huge strings, non-JSON) for every
method. Whatever the answer, it is never a 5xx."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from audit.views import AuditQuery
from compliance.views import QueueQuery
from fixgateway.forms import FixMessageFilterForm
from oms.forms import ExceptionFilterForm
from orders.forms import OrderFilterForm
from positions.forms import HoldingsPageQuery

# Committed requests: a request that broke its transaction (the 5xx this looks for) must not
# break every request after it, as it would inside one test transaction.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

ROLES = ("anon", "pm", "trader", "compliance", "ops", "admin")
BIG = "99999999999999999999999"  # past any bigint
JUNK_IDS = (BIG, "9223372036854775808", "j%C3%BCnk%E2%98%83")

# Hostile values, each given to every parameter a URL takes at once (a form checks them all,
# so none hides behind another's error).
HOSTILE_VALUES = (
    "2026-02-30T25:61:00+99:00",
    BIG,
    "-1",
    "\u202eü☃𝔘\ufeff",
    "a\x00b",
    "x" * 5000,
    "",
    "1e309",
)

# The query parameters of the pages (the API's come from its schema).
PAGE_PARAMS = {
    "/orders/mine/": list(OrderFilterForm.base_fields),
    "/exceptions/": list(ExceptionFilterForm.base_fields),
    "/fix/messages/": list(FixMessageFilterForm.base_fields),
    "/audit/": list(AuditQuery.base_fields),
    "/compliance/": list(QueueQuery.base_fields),
    "/positions/": list(HoldingsPageQuery.base_fields),
    "/positions/cash/": ["account", "partial"],
    "/login/": ["next"],
}
EVERYWHERE = ["page", "page_size", "format"]

BODY_FIELDS = (
    "order_ids account symbol side quantity order_type limit_price stop_price time_in_force "
    "expire_date broker_id reason note trade_date buy_order_id sell_order_id scope value "
    "order_id username password file confirm name expected_sha256 next_sender_seq_num"
).split()


def _deep(depth: int) -> str:
    return "[" * depth + "]" * depth


def hostile_bodies(size: int) -> list[tuple[str, str | bytes]]:
    """(content type, body) pairs: each field a wrong type, nested too deep, huge, not JSON."""
    wrong = [
        [],
        {"a": {"b": [1, {"c": None}]}},
        int(BIG),
        -1.5e308,
        True,
        None,
        "\x00",
        "ü" * 300,
    ]
    typed = {name: wrong[i % len(wrong)] for i, name in enumerate(BODY_FIELDS)}
    return [
        ("application/json", json.dumps(typed)),
        ("application/json", _deep(2000)),
        ("application/json", json.dumps({name: "9" * size for name in BODY_FIELDS})),
        ("application/json", '{"account": "ACCT1", "quantity": '),
        ("application/json", b"\xff\xfe\x00garbage"),
        ("application/x-www-form-urlencoded", "&".join(f"{n}=%00%FF{BIG}" for n in BODY_FIELDS)),
        ("multipart/form-data; boundary=zz", b"--zz\r\nContent-Disposition: form-data; name=file"),
        ("text/plain", "x" * size),
    ]


@dataclass
class Target:
    path: str
    known: list[str]  # the query parameters it takes
    existing: bool  # the path's ids name rows that exist


def _walk(patterns, prefix):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _walk(pattern.url_patterns, [*prefix, pattern.pattern])
        elif isinstance(pattern, URLPattern):
            yield [*prefix, pattern.pattern]


GROUP = re.compile(r"<(?:(?P<conv>[^>:]+):)?(?P<name>[^>]+)>")


def _regex_fill(regex: str, value_for) -> str:
    """A concrete path from a regex pattern: each named group replaced (balanced parentheses),
    anchors and escapes dropped."""
    out, i = [], 0
    while i < len(regex):
        if regex.startswith("(?P<", i):
            name = regex[i + 4 : regex.index(">", i)]
            depth, j = 0, i
            while True:
                depth += {"(": 1, ")": -1}.get(regex[j], 0)
                if regex[j] == ")" and depth == 0:
                    break
                j += 1
            out.append(value_for(name))
            i = j + 1
        else:
            out.append(regex[i])
            i += 1
    text = "".join(out)
    return text.replace("^", "").replace("$", "").replace("\\.", ".").replace("/?", "/")


def fill(parts, value_for) -> str:
    path = ""
    for part in parts:
        raw = str(part)
        if part.__class__.__name__ == "RegexPattern":
            path += _regex_fill(raw, value_for)
        else:
            path += GROUP.sub(lambda m: value_for(m.group("name")), raw)
    return "/" + path


def targets(world, schema_params: dict[str, list[str]]) -> list[Target]:
    existing = {
        "block_id": str(world.block.pk),
        "exception_id": str(world.exc.pk),
        "file_id": str(world.sfile.pk),
        "pk": str(world.order1.pk),
        "id": str(world.order1.pk),
        "object_id": str(world.order1.pk),
        "code": world.ref.acct1.code,
        "trade_date": str(world.sfile.trade_date),
        "switch_id": "1",
        "broker_id": "1",
        "format": "json",
    }
    found: dict[str, Target] = {}
    for parts in _walk(get_resolver().url_patterns, []):
        variants = [(lambda name: existing.get(name, "1"), True)]
        variants += [(lambda name, junk=junk: junk, False) for junk in JUNK_IDS]
        admin_site = str(parts[0]) == "admin/"
        for value_for, exists in variants[:2] if admin_site else variants:
            path = fill(parts, value_for)
            if re.search(r"[\\()\[\]|*+{}]", path) or path in found:
                continue  # a regex this filler cannot make concrete; or seen already
            known = schema_params.get(path) or PAGE_PARAMS.get(path) or []
            if not known and path.startswith("/api/"):
                known = next(
                    (v for k, v in schema_params.items() if re.fullmatch(_template_re(k), path)),
                    [],
                )
            found[path] = Target(path=path, known=known + EVERYWHERE, existing=exists)
    return list(found.values())


def _template_re(schema_path: str) -> str:
    return re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(schema_path))


def query_strings(known: list[str]) -> list[dict | list]:
    queries: list[dict | list] = [{name: value for name in known} for value in HOSTILE_VALUES]
    queries.append([(name, v) for name in known for v in ("1", "2")])  # each name twice
    queries.append({"colour": "red", "sinse": "2026-01-01"})  # names nobody takes
    return queries


@pytest.fixture
def clients(world):
    made = {}
    for role in ROLES:
        # raise_request_exception=False: a view's exception becomes the 500 a caller would
        # get (asserted below), rather than the test's traceback stopping the walk.
        made[role] = Client(raise_request_exception=False)
    return made


def _login(world, clients):
    for role, client in clients.items():
        user = world.user(role)
        if user is not None:
            client.force_login(user)


def test_no_url_answers_5xx_whoever_asks_whatever_they_send(world, clients):
    admin = Client(raise_request_exception=False)
    admin.force_login(world.ref.admin)
    api = admin.get("/api/schema/", {"format": "json"}).json()
    schema_params = {
        path: sorted({p["name"] for op in ops.values() for p in op.get("parameters", [])})
        for path, ops in api["paths"].items()
    }
    walked = targets(world, schema_params)
    bodies = hostile_bodies(size=50_000)
    failures: list[str] = []
    asked = 0

    def check(response, role, method, path, what):
        if response.status_code >= 500:
            failures.append(f"{response.status_code} {role} {method} {path} {what!r:.200}")

    for n, target in enumerate(walked):
        if n == 0:
            _login(world, clients)
        admin_site = target.path.startswith("/admin/")
        if admin_site:
            # Django's own admin: staff get in (admin), others go to its login (anon).
            roles: tuple[str, ...] = ("anon", "admin") if target.existing else ("admin",)
        elif not target.existing:
            roles = ("anon", "pm", "admin")
        else:
            roles = ROLES
        queries = query_strings(target.known)
        for r, role in enumerate(roles):
            client = clients[role]
            # The hostile query strings and bodies are shared out among the roles and paths:
            # every role asks plainly, then with one or two of them.
            mine = queries[r :: len(roles)][:2] if target.existing else [queries[n % len(queries)]]
            for query in [{}, *mine]:
                check(client.get(target.path, query), role, "GET", target.path, query)
                asked += 1
            method = ("post", "put", "patch", "delete")[(n + r) % 4]
            content_type, body = bodies[(n + 3 * r) % len(bodies)]
            response = getattr(client, method)(target.path, body, content_type=content_type)
            check(response, role, method.upper(), target.path, body[:80])
            asked += 1
        if target.path.startswith("/logout/"):
            _login(world, clients)  # a POST to /logout/ signed the clients out
    print(f"walked {len(walked)} paths, {asked} requests")
    assert not failures, "\n".join(failures[:50])
