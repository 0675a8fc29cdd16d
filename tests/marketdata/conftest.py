from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from tests.fix.conftest import broker, desk, gateway, gateway_env, sim, world  # noqa: F401

D = Decimal
T0 = datetime(2026, 12, 1, 14, 30, tzinfo=UTC)


@pytest.fixture
def scenario(refdata):
    """Two routed orders of pm1 and pm2 in AAPL, with arrival prices and bars by hand."""
    from fixgateway.models import Broker
    from marketdata.models import ArrivalPrice, MinuteBar
    from orders.models import Block, Order

    brk = Broker.objects.create(
        code="BRK", name="B", port=1, sender_comp_id="OMS", target_comp_id="BRK"
    )
    # Bars: 100 @ 190.00 at 14:30, 300 @ 191.00 at 14:31, 100 @ 192.00 at 14:40 (the close).
    for minute, qty, px in ((0, 100, "190.00"), (1, 300, "191.00"), (10, 100, "192.00")):
        MinuteBar.objects.create(
            security=refdata.aapl,
            start=T0 + timedelta(minutes=minute),
            open=D(px),
            high=D(px),
            low=D(px),
            close=D(px),
            volume=D(qty),
            value=D(qty) * D(px),
        )
    rows = {}
    for acct, pm, side, avg in (
        (refdata.acct1, refdata.pm1, "BUY", "190.95"),
        (refdata.acct2, refdata.pm2, "SELL", "190.50"),
    ):
        block = Block.objects.create(
            security=refdata.aapl,
            side=side,
            quantity=D(100),
            status="FILLED",
            order_type="MARKET",
            broker=brk,
            strategy="VWAP",
            created_by=refdata.trader,
            created_at=T0,
            routed_at=T0,
            cum_qty=D(100),
            avg_price=D(avg),
        )
        order = Order.objects.create(
            account=acct,
            security=refdata.aapl,
            side=side,
            quantity=D(100),
            order_type="MARKET",
            status="FILLED",
            pm=pm,
            received_at=T0,
            block=block,
            cum_qty=D(100),
            leaves_qty=D(0),
            avg_price=D(avg),
        )
        ArrivalPrice.objects.create(
            kind="desk",
            order=order,
            security=refdata.aapl,
            at=T0,
            bid=D("189.99"),
            ask=D("190.01"),
            mid=D("190.00"),
            source="feed",
        )
        rows[side] = order
    return rows
