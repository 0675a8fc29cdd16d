from datetime import UTC, datetime, timedelta

import pytest

from oms.services import exception_open

T0 = datetime(2026, 10, 9, 21, 30, tzinfo=UTC)


def open_one(kind: str = "booking_failed", ref: str = "block:12:2026-10-09", *, at=T0, **extra):
    """exception_open with a readable default for everything but what the test cares about."""
    values = {
        "summary": f"{kind} for {ref}",
        "source": "allocation",
        "detail": {"error": "no settlement calendar"},
        "as_of": at,
    }
    values.update(extra)
    return exception_open(kind=kind, ref=ref, **values)


@pytest.fixture
def queue(refdata):
    """Three open exceptions and a resolved one, opened an hour apart."""
    from oms.services import exception_resolve

    booking = open_one("booking_failed", "block:12:2026-10-09", block_id=12)
    quarantined = open_one(
        "quarantined_report",
        "BRKA:exec:E-77",
        at=T0 + timedelta(hours=1),
        source="fixgateway",
        summary="Execution report E-77 quarantined: unknown ClOrdID",
        broker_id=3,
        detail={"exec_id": "E-77", "reason": "unknown ClOrdID", "fields": {"17": "E-77"}},
    )
    unacked = open_one(
        "unacknowledged_order",
        "order:41",
        at=T0 + timedelta(hours=2),
        source="fixgateway",
        order_id=41,
    )
    old = open_one("booking_failed", "block:9:2026-10-08", at=T0 - timedelta(days=1), block_id=9)
    exception_resolve(
        exception_id=old.pk, note="booked by hand", actor=refdata.ops, as_of=T0 + timedelta(hours=3)
    )
    old.refresh_from_db()
    return {"booking": booking, "quarantined": quarantined, "unacked": unacked, "resolved": old}
