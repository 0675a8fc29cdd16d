import pytest


@pytest.fixture
def sim_broker(db):
    """A broker row for routing without a live FIX session (the outbox is only written)."""
    from fixgateway.models import Broker

    return Broker.objects.create(
        code="BRKA", name="Broker A", port=1, sender_comp_id="OMS", target_comp_id="BRKA"
    )


# The FIX engineer's world (simulator in this process, gateway subprocess, over 127.0.0.1).
from tests.fix.conftest import broker, gateway, gateway_env, sim  # noqa: E402, F401
