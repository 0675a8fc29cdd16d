"""orders_transition_bulk: the same rows as order_transition one by one, all or nothing, in a
number of queries that does not grow with the number of orders."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from audit.models import AuditEvent
from audit.selectors import audit_chain_verify
from orders.lifecycle import InvalidTransition, OrderStatus
from orders.models import Order, OrderEvent
from orders.services import order_transition, orders_lock, orders_transition_bulk
from tests import factories

pytestmark = pytest.mark.django_db

AS_OF = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


def _orders(refdata, n: int, status: str = "PENDING_COMPLIANCE") -> list[Order]:
    return [
        factories.order(
            refdata.acct1, refdata.aapl, refdata.pm1, status=status, quantity=str(100 + i)
        )
        for i in range(n)
    ]


def _trail(order: Order) -> tuple[list, list, tuple]:
    """Everything a transition leaves behind for one order, minus ids and wall-clock times."""
    order.refresh_from_db()
    events = [
        (e.kind, e.at, e.from_status, e.to_status, e.actor_id, e.details)
        for e in OrderEvent.objects.filter(order=order).order_by("id")
    ]
    audits = [
        (a.action, a.occurred_at, a.actor_id, a.object_type, a.object_repr, a.before, a.after)
        for a in AuditEvent.objects.filter(
            object_type="orders.order", object_id=str(order.pk)
        ).order_by("chain_seq")
    ]
    state = (order.status, order.version, order.compliance_status, order.leaves_qty)
    return events, audits, state


def test_leaves_the_same_rows_as_order_transition_one_by_one(refdata):
    one_by_one, bulk = _orders(refdata, 3), _orders(refdata, 3)
    details = [{"check_run": 7, "reasons": ["too big"]}, {"check_run": 7}, None]
    extra = [
        {"compliance_status": "WARN", "leaves_qty": Decimal("5")},
        {"compliance_status": "WARN", "leaves_qty": Decimal("6")},
        {"compliance_status": "WARN", "leaves_qty": Decimal("7")},
    ]
    with transaction.atomic():
        for order, d, x in zip(
            orders_lock(order_ids=[o.pk for o in one_by_one]), details, extra, strict=True
        ):
            order_transition(
                order=order,
                to_status="AWAITING_OVERRIDE",
                as_of=AS_OF,
                kind="compliance_warn",
                actor=refdata.pm1,
                details=d,
                extra_fields=x,
            )
    with transaction.atomic():
        locked = orders_lock(order_ids=[o.pk for o in bulk])
        moved = orders_transition_bulk(
            orders=locked,
            to_status="AWAITING_OVERRIDE",
            as_of=AS_OF,
            kind="compliance_warn",
            actor=refdata.pm1,
            details_by_order={
                o.pk: d for o, d in zip(locked, details, strict=True) if d is not None
            },
            extra_fields_by_order={o.pk: x for o, x in zip(locked, extra, strict=True)},
        )
    assert [o.status for o in moved] == ["AWAITING_OVERRIDE"] * 3
    for a, b in zip(one_by_one, bulk, strict=True):
        trail_a, trail_b = _trail(a), _trail(b)
        # The object_repr names the order (and its quantity): same shape, own pk.
        assert [t[:4] + t[5:] for t in trail_a[1]] == [t[:4] + t[5:] for t in trail_b[1]]
        assert trail_a[0] == trail_b[0] and trail_a[2] == trail_b[2]
        assert trail_b[2] == ("AWAITING_OVERRIDE", 2, "WARN", trail_b[2][3])
    assert [_trail(o)[2][3] for o in bulk] == [Decimal(5), Decimal(6), Decimal(7)]
    assert audit_chain_verify()[1] is None


def test_one_order_that_may_not_move_stops_them_all(refdata):
    orders = _orders(refdata, 3)
    filled = factories.order(refdata.acct1, refdata.aapl, refdata.pm1, status="FILLED")
    head = AuditEvent.objects.order_by("-chain_seq").values_list("chain_seq", flat=True).first()
    with pytest.raises(InvalidTransition) as info, transaction.atomic():
        locked = orders_lock(order_ids=[o.pk for o in [*orders, filled]])
        orders_transition_bulk(orders=locked, to_status="APPROVED", as_of=AS_OF, kind="test")
    assert (info.value.current, info.value.target) == ("FILLED", "APPROVED")
    for order in [*orders, filled]:
        before_status = order.status
        order.refresh_from_db()
        assert (order.status, order.version) == (before_status, 1)
    assert not OrderEvent.objects.filter(order__in=[*orders, filled]).exists()
    assert (
        AuditEvent.objects.order_by("-chain_seq").values_list("chain_seq", flat=True).first()
        == head
    )


def test_many_distinct_values_are_written_exactly(refdata):
    orders = _orders(refdata, 12, status="WORKING")
    with transaction.atomic():
        locked = orders_lock(order_ids=[o.pk for o in orders])
        orders_transition_bulk(
            orders=locked,
            to_status="PARTIALLY_FILLED",
            as_of=AS_OF,
            kind="fill",
            extra_fields_by_order={
                o.pk: {"cum_qty": Decimal(i + 1), "leaves_qty": o.quantity - (i + 1)}
                for i, o in enumerate(locked)
            },
        )
    for i, order in enumerate(orders):
        order.refresh_from_db()
        assert order.status == "PARTIALLY_FILLED" and order.version == 2
        assert (order.cum_qty, order.leaves_qty) == (Decimal(i + 1), order.quantity - (i + 1))


def test_every_moved_order_is_pushed_once_after_commit(refdata, django_capture_on_commit_callbacks):
    orders = _orders(refdata, 4)
    with django_capture_on_commit_callbacks() as callbacks, transaction.atomic():
        locked = orders_lock(order_ids=[o.pk for o in orders])
        orders_transition_bulk(orders=locked, to_status="APPROVED", as_of=AS_OF, kind="test")
    batches = [cb for cb in callbacks if getattr(cb, "attr", "").endswith("_orders")]
    assert len(batches) == 1
    assert batches[0].items == {o.pk for o in orders}


def test_the_query_count_does_not_grow_with_the_orders(refdata):
    def moved_with_queries(n: int) -> int:
        orders = _orders(refdata, n)
        with transaction.atomic():
            locked = orders_lock(order_ids=[o.pk for o in orders])
            with CaptureQueriesContext(connection) as ctx:
                orders_transition_bulk(
                    orders=locked,
                    to_status=OrderStatus.BLOCKED,
                    as_of=AS_OF,
                    kind="compliance_block",
                    actor=refdata.compliance,
                    details_by_order={o.pk: {"check_run": 1} for o in locked},
                    extra_fields_by_order={o.pk: {"compliance_status": "BLOCK"} for o in locked},
                )
        assert set(
            Order.objects.filter(pk__in=[o.pk for o in orders]).values_list("status", flat=True)
        ) == {"BLOCKED"}
        return len(ctx.captured_queries)

    # One UPDATE; the events' keys and COPY; the audit chain's lock, head, keys and COPY.
    assert moved_with_queries(3) == moved_with_queries(60) == 7
