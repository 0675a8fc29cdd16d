"""The transition table, exhaustively: every (from, to) pair either applies or raises and
leaves the row as it was; and two writers on one order are serialised."""

import threading
import time
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db import connection, transaction

from audit.models import AuditEvent
from orders.lifecycle import TRANSITIONS, InvalidTransition, OrderStatus
from orders.models import Order, OrderEvent
from orders.services import order_fill_apply, order_lock, order_set_status
from tests import factories

AS_OF = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
ALL = list(OrderStatus)


def test_table_covers_every_status_and_names_only_known_ones():
    assert set(TRANSITIONS) == set(OrderStatus)
    for targets in TRANSITIONS.values():
        assert targets <= set(OrderStatus)


def test_the_happy_path_is_allowed_end_to_end():
    path = [
        "PENDING_COMPLIANCE",
        "APPROVED",
        "STAGED",
        "PENDING_NEW",
        "WORKING",
        "PARTIALLY_FILLED",
        "FILLED",
    ]
    for current, target in zip(path, path[1:], strict=False):
        assert OrderStatus(target) in TRANSITIONS[OrderStatus(current)]


@pytest.mark.django_db
@pytest.mark.parametrize("from_status", ALL, ids=[s.value for s in ALL])
def test_every_pair_applies_or_raises_and_changes_nothing(refdata, from_status):
    allowed = TRANSITIONS[from_status]
    for to_status in ALL:
        order = factories.order(refdata.acct1, refdata.aapl, refdata.pm1, status=from_status)
        audits_before = AuditEvent.objects.filter(object_id=str(order.pk)).count()
        if to_status in allowed:
            order_set_status(
                order_id=order.pk, to_status=to_status, as_of=AS_OF, kind="test", actor=None
            )
            order.refresh_from_db()
            assert order.status == to_status, (from_status, to_status)
            assert order.version == 2
            event = OrderEvent.objects.get(order=order)
            assert (event.from_status, event.to_status) == (from_status, to_status)
            assert AuditEvent.objects.filter(object_id=str(order.pk)).count() == audits_before + 1
        else:
            with pytest.raises(InvalidTransition) as info:
                order_set_status(
                    order_id=order.pk, to_status=to_status, as_of=AS_OF, kind="test", actor=None
                )
            assert (info.value.current, info.value.target) == (from_status, to_status)
            assert info.value.status_code == 409
            order.refresh_from_db()
            assert order.status == from_status, (from_status, to_status)
            assert order.version == 1
            assert not OrderEvent.objects.filter(order=order).exists()
            assert AuditEvent.objects.filter(object_id=str(order.pk)).count() == audits_before


def _in_thread(fn, errors: list, results: list):
    def run():
        try:
            results.append(fn())
        except Exception as exc:  # collected and asserted on by the test
            errors.append(exc)
        finally:
            connection.close()

    return threading.Thread(target=run)


@pytest.mark.django_db(transaction=True)
def test_two_writers_on_one_order_are_serialised(refdata):
    """A holds the row lock and cancels; B (another connection) wants to route the same staged
    order. B waits for A, then sees CANCELLED and is refused: exactly one change wins."""
    order = factories.order(refdata.acct1, refdata.aapl, refdata.pm1, status="STAGED")
    a_locked = threading.Event()
    errors: list = []
    results: list = []

    def writer_a():
        with transaction.atomic():
            locked = order_lock(order_id=order.pk)
            a_locked.set()
            time.sleep(0.5)  # hold the lock while B tries
            from orders.services import order_transition

            order_transition(order=locked, to_status="CANCELLED", as_of=AS_OF, kind="cancel")
        return "A"

    def writer_b():
        a_locked.wait(5)
        started = time.monotonic()
        try:
            order_set_status(order_id=order.pk, to_status="PENDING_NEW", as_of=AS_OF, kind="route")
        finally:
            results.append(("B waited", time.monotonic() - started))
        return "B"

    threads = [_in_thread(writer_a, errors, results), _in_thread(writer_b, errors, results)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    waited = [r[1] for r in results if isinstance(r, tuple)]
    assert waited and waited[0] >= 0.3, "B did not wait for A's lock"
    assert len(errors) == 1 and isinstance(errors[0], InvalidTransition)
    assert (errors[0].current, errors[0].target) == ("CANCELLED", "PENDING_NEW")
    order.refresh_from_db()
    assert order.status == "CANCELLED"
    assert order.version == 2
    assert list(OrderEvent.objects.filter(order=order).values_list("to_status", flat=True)) == [
        "CANCELLED"
    ]


@pytest.mark.django_db(transaction=True)
def test_concurrent_fills_lose_no_update(refdata):
    """Eight threads each book 10 on one working order: all 80 arrive, the version counts 8."""
    order = factories.order(
        refdata.acct1, refdata.aapl, refdata.pm1, status="WORKING", quantity="1000"
    )
    barrier = threading.Barrier(8)
    errors: list = []
    results: list = []

    def fill(n: int):
        def run():
            barrier.wait(5)
            with transaction.atomic():
                locked = order_lock(order_id=order.pk)
                order_fill_apply(
                    order=locked,
                    quantity=Decimal(10),
                    price=Decimal("190.00") + n,
                    as_of=AS_OF,
                    exec_ref=f"E{n}",
                )
            return n

        return run

    threads = [_in_thread(fill(n), errors, results) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert errors == []
    order.refresh_from_db()
    assert order.cum_qty == Decimal(80)
    assert order.leaves_qty == Decimal(920)
    assert order.version == 1 + 8
    # The average of 190..197 at 10 each, exactly.
    assert order.avg_price == Decimal("193.50")
    assert order.status == "PARTIALLY_FILLED"
    assert Order.objects.filter(pk=order.pk).count() == 1


def test_the_average_price_does_not_drift_fill_after_fill(refdata):
    """Eight fills of 10 at 190..197 in an order where an average kept to eight places and
    re-multiplied on every fill ends at 193.50000001: the average comes from the exact value
    of the fills, so it is 193.5, and taking fills back returns to the exact earlier average."""
    order = factories.order(
        refdata.acct1, refdata.aapl, refdata.pm1, status="WORKING", quantity="1000"
    )
    for n in (0, 1, 2, 4, 5, 7, 3, 6):
        with transaction.atomic():
            order_fill_apply(
                order=order_lock(order_id=order.pk),
                quantity=Decimal(10),
                price=Decimal("190.00") + n,
                as_of=AS_OF,
                exec_ref=f"E{n}",
            )
    order.refresh_from_db()
    assert order.avg_price == Decimal("193.5")
    assert order.filled_value == Decimal(15480)
    for n in (6, 3, 7):  # reversals, as a bust books them
        with transaction.atomic():
            order_fill_apply(
                order=order_lock(order_id=order.pk),
                quantity=Decimal(-10),
                price=Decimal("190.00") + n,
                as_of=AS_OF,
                exec_ref=f"B{n}",
            )
    order.refresh_from_db()
    assert order.cum_qty == Decimal(50)
    assert order.avg_price == Decimal("192.4")  # (190 + 191 + 192 + 194 + 195) / 5
