import pytest


@pytest.fixture
def sim_broker(db):
    """A broker row for routing without a live FIX session (the outbox is only written)."""
    from fixgateway.models import Broker

    return Broker.objects.create(
        code="BRKA", name="Broker A", port=1, sender_comp_id="OMS", target_comp_id="BRKA"
    )
