"""Firm-wide rules under concurrency: two PMs whose orders are checked at once, in different
accounts, cannot both pass a firm ownership limit that only one of the orders fits."""

from __future__ import annotations

import threading
import time
from decimal import Decimal

import pytest
from django.db import connection, connections, transaction

from compliance.models import RuleKind
from compliance.services import compliance_check_orders
from orders.models import Order

from .conftest import AS_OF, hold, make_rule

pytestmark = pytest.mark.django_db(transaction=True)


def _waiting_on_a_check_lock() -> bool:
    with connections["default"].cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database "
            "WHERE l.locktype = 'advisory' AND NOT l.granted AND d.datname = current_database()"
        )
        return cursor.fetchone()[0] > 0


def _submit(pm, account, security) -> int:
    """A new order waiting for its check, written in the caller's transaction (as order
    capture writes it just before checking it)."""
    quantity = Decimal(8_000)
    fields = {"side": "BUY", "order_type": "MARKET", "status": "PENDING_COMPLIANCE"}
    order = Order(account=account, security=security, pm=pm, received_at=AS_OF, **fields)
    order.quantity = order.leaves_qty = quantity
    order.save()
    return order.pk


def test_two_pms_at_once_only_one_passes_a_firm_limit_only_one_fits(firm):
    ref = firm.ref
    hold(ref.acct1, firm.tst, 40_000)
    # The firm holds 4% of TST's 1,000,000 shares; the limit is 5%: room for 10,000 more.
    make_rule(ref.compliance, RuleKind.FIRM_OWNERSHIP, {"max_pct": "5"})
    first_checked, release, second_done = threading.Event(), threading.Event(), threading.Event()
    verdicts: dict[str, str] = {}
    errors: list[BaseException] = []

    def first() -> None:
        try:
            # pm1's order is written and checked; its transaction stays open until the second
            # PM's check has run or is waiting.
            with transaction.atomic():
                order_id = _submit(ref.pm1, ref.acct1, firm.tst)
                result = compliance_check_orders(order_ids=[order_id], actor=ref.pm1, as_of=AS_OF)
                verdicts["pm1"] = result[order_id]
                first_checked.set()
                release.wait(60)
        except BaseException as exc:
            errors.append(exc)
        finally:
            first_checked.set()
            connection.close()

    def second() -> None:
        try:
            first_checked.wait(60)
            with transaction.atomic():
                order_id = _submit(ref.pm2, ref.acct2, firm.tst)
                result = compliance_check_orders(order_ids=[order_id], actor=ref.pm2, as_of=AS_OF)
                verdicts["pm2"] = result[order_id]
        except BaseException as exc:
            errors.append(exc)
        finally:
            second_done.set()
            connection.close()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    first_checked.wait(60)
    # The first commits once the second has finished (its check did not wait for the first)
    # or is waiting for the first's check lock; either way the outcome below is decided.
    while not second_done.is_set() and not _waiting_on_a_check_lock():
        time.sleep(0.01)
    release.set()
    for t in threads:
        t.join(60)
    assert errors == []
    assert verdicts == {"pm1": "PASS", "pm2": "BLOCK"}
