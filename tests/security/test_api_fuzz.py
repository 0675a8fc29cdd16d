"""The OpenAPI schema, fuzzed with schemathesis under every check it has — no server error,
every status code, content type and body as the schema says, invalid data rejected, valid
data accepted — as every role and anonymously. `make test` runs a few generated examples per operation
(positive and negative); `make fuzz` runs many (OMS_FUZZ_EXAMPLES) and the coverage phase."""

import os

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from rest_framework.authtoken.models import Token
from schemathesis.checks import positive_data_acceptance

from tests.security.conftest import build_world

pytestmark = pytest.mark.slow

EXAMPLES = int(os.environ.get("OMS_FUZZ_EXAMPLES", "3"))
# `make fuzz` (OMS_FUZZ_EXAMPLES set) adds the coverage phase: every parameter's boundaries and
# each way of missing or breaking it, many requests per operation.
DEEP = "OMS_FUZZ_EXAMPLES" in os.environ

# The schema is served by the app itself, in process (no database needed to serve it).
schema = schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application())
schema.config.generation.update(
    max_examples=EXAMPLES,
    # Postgres text cannot hold a NUL character: every text input refuses it with a 400
    # (tests/security/test_url_walk.py sends it everywhere), which the schema does not spell
    # out on each string, so generated "valid" data leaves it out.
    allow_x00=False,
)
schema.config.phases.update(phases=["examples", "coverage", "fuzzing"] if DEEP else ["fuzzing"])


@pytest.fixture
def identities(refdata):
    """Who calls: each role with an API token, and no one."""
    build_world(refdata)
    # As Django's test client does: keep the test's connection (and its transaction) open
    # across the in-process requests.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    users = {
        "pm": refdata.pm1,
        "trader": refdata.trader,
        "compliance": refdata.compliance,
        "operations": refdata.ops,
        "admin": refdata.admin,
    }
    yield {
        **{
            role: {"Authorization": f"Token {Token.objects.create(user=u).key}"}
            for role, u in users.items()
        },
        "anonymous": {},
    }
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


# Where a check cannot apply, by operation, and why. Each is a rule the schema cannot state.
INAPPLICABLE = {
    # Credentials a generator makes up are wrong ones: a 400 by contract, not valid data refused.
    "POST /api/auth/token/": [positive_data_acceptance],
    # The file is a CSV whose lines must name accounts and securities: "any binary" in the
    # schema, a 400 with each line's error in the answer.
    "POST /api/baskets/": [positive_data_acceptance],
    "POST /api/baskets/rebalance/": [positive_data_acceptance],
    "POST /api/baskets/rebalance/drift.csv": [positive_data_acceptance],
    # Filters naming a block, account, custodian or broker that does not exist are a 400
    # naming the parameter (tests/allocation/test_api.py); which exist is data, not schema.
    "GET /api/allocations/": [positive_data_acceptance],
    "GET /api/settlement-files/": [positive_data_acceptance],
    "GET /api/fix/messages/": [positive_data_acceptance],
    # One field's rule depends on another's value (an algo's parameters on the strategy, a
    # kill switch's value on its scope; the end of a range after its start).
    "POST /api/blocks/{block_id}/route/": [positive_data_acceptance],
    # An amend changes at least one thing: {} is well-formed and still nothing to do.
    "POST /api/blocks/{block_id}/replace/": [positive_data_acceptance],
    "PATCH /api/orders/{id}/": [positive_data_acceptance],
    "POST /api/blotter/kill-switch/": [positive_data_acceptance],
    "GET /api/exceptions/": [positive_data_acceptance],
}


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_api_does_what_its_schema_says(case, identities):
    for role, headers in identities.items():
        try:
            case.call_and_validate(
                headers=headers, excluded_checks=INAPPLICABLE.get(case.operation.label, [])
            )
        except AssertionError as exc:
            raise AssertionError(f"as {role}: {exc}") from None


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/blocks/", {"order_ids": [469680531508599980032]}),
        ("/api/blotter/cross/", {"buy_order_id": 1, "sell_order_id": 32952006773066640130048}),
    ],
)
def test_an_id_past_bigint_is_a_400_naming_the_field(refdata, path, body):
    """Found by the fuzzer: an id larger than a bigint reached the database (a 500)."""
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(refdata.trader)
    response = client.post(path, body, format="json")
    assert response.status_code == 400
    assert set(body) & set(str(response.json()).split("'"))
