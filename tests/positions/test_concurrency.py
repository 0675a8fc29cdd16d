"""Two writers on one position at once: the row lock serialises them, nothing is lost."""

import threading
from datetime import UTC, date, datetime
from decimal import Decimal as D

import pytest
from django.db import connection

from positions.models import CashBalance, Position, PositionFill
from positions.selectors import reconcile_differences
from positions.services import position_fill_apply

AS_OF = datetime(2025, 6, 2, 14, tzinfo=UTC)
PER_THREAD = 60


@pytest.mark.django_db(transaction=True)
def test_two_threads_filling_one_new_position_lose_no_update(refdata):
    account_id, security_id = refdata.acct1.pk, refdata.aapl.pk
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def worker(name: str, side: str, price: str) -> None:
        try:
            start.wait()
            for i in range(PER_THREAD):
                position_fill_apply(
                    account_id=account_id,
                    security_id=security_id,
                    side=side,
                    quantity=D(10),
                    price=D(price),
                    trade_date=date(2025, 6, 2),
                    settle_date=date(2025, 6, 3),
                    fill_ref=f"{name}:{i}",
                    as_of=AS_OF,
                )
        except BaseException as exc:  # surfaced in the main thread
            errors.append(exc)
        finally:
            connection.close()

    # Both start on a position (and cash row) that does not exist yet.
    threads = [
        threading.Thread(target=worker, args=("a", "BUY", "100")),
        threading.Thread(target=worker, args=("b", "BUY", "110")),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    position = Position.objects.get(account_id=account_id, security_id=security_id)
    assert position.quantity == D(2 * PER_THREAD * 10)
    assert position.avg_cost == D(105)
    assert PositionFill.objects.count() == 2 * PER_THREAD
    cash = CashBalance.objects.get(account_id=account_id, currency="USD")
    assert cash.projected == -D(PER_THREAD * 10) * D(210)
    assert reconcile_differences() == []
