"""The OpenAPI schema, fuzzed with schemathesis: no request, however odd, gets a 500."""

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from rest_framework.authtoken.models import Token
from schemathesis.checks import not_a_server_error

pytestmark = pytest.mark.slow

# The schema is served by the app itself, in process (no database needed to serve it).
schema = schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application())


@pytest.fixture
def fuzz_tokens(refdata):
    # As Django's test client does: keep the test's connection (and its transaction) open
    # across the in-process requests.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield {
        "pm": Token.objects.create(user=refdata.pm1).key,
        "admin": Token.objects.create(user=refdata.admin).key,
    }
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_error_for_any_request(case, fuzz_tokens):
    for token in fuzz_tokens.values():
        response = case.call(headers={"Authorization": f"Token {token}"})
        case.validate_response(response, checks=[not_a_server_error])


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
