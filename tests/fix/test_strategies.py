"""Every algo the desk can pick reaches the broker and fills: the strategy codes and their
parameters pass a standard counterparty's validation (TWAP sits in the user range, 1000+)."""

from decimal import Decimal

import pytest

from .conftest import routed_block, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize(
    ("strategy", "params", "code"),
    [
        ("TWAP", {"start_time": "09:30", "end_time": "09:31"}, "1001"),
        ("POV", {"start_time": "09:30", "end_time": "09:31", "participation": "10"}, "2"),
        ("DMA", {}, ""),
    ],
)
def test_each_strategy_is_accepted_and_fills(desk, broker, sim, gateway, strategy, params, code):
    from fixgateway.models import Quarantine
    from orders.models import Block

    sim("config", fill_mode="slices", slices=3, time_scale=0.02)
    block = routed_block(desk, broker, "300", strategy=strategy, strategy_params=params)
    wait_until(
        lambda: Block.objects.get(pk=block.pk).status in ("FILLED", "REJECTED"),
        timeout=30,
        what=f"{strategy} block done",
    )
    assert Block.objects.get(pk=block.pk).status == "FILLED"
    assert Block.objects.get(pk=block.pk).cum_qty == Decimal("300")
    assert not Quarantine.objects.exists()
    sent = sim("state")["orders"][0]
    assert (sent.get("strategy") or "") == code
