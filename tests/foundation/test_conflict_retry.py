"""oms.db.in_transaction: a real deadlock between two connections is run again, not raised; a
conflict that keeps coming gives up after the configured attempts, and the API answers it with
503 and Retry-After, having committed nothing."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def broker(transactional_db):
    from fixgateway.models import Broker

    return Broker.objects.create(
        code="CONF", name="Conflicts", port=1, sender_comp_id="OMS", target_comp_id="CONF"
    )


@pytest.fixture
def two_rows(transactional_db):
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE retry_probe (id int PRIMARY KEY, n int NOT NULL)")
        cursor.execute("INSERT INTO retry_probe VALUES (1, 0), (2, 0)")
    yield
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE retry_probe")


def test_a_deadlock_is_run_again_and_both_sides_commit_once(two_rows):
    from oms.db import in_transaction

    both_hold_one = threading.Barrier(2)
    runs = {1: 0, 2: 0}
    commits: list[int] = []
    errors: list[BaseException] = []

    def side(first: int, second: int) -> None:
        def work() -> None:
            runs[first] += 1
            with connection.cursor() as cursor:
                cursor.execute("UPDATE retry_probe SET n = n + 1 WHERE id = %s", [first])
                if runs[first] == 1:  # the first attempt makes the cycle; a retry does not wait
                    both_hold_one.wait(10)
                cursor.execute("UPDATE retry_probe SET n = n + 1 WHERE id = %s", [second])
            from django.db import transaction

            transaction.on_commit(lambda: commits.append(first))

        try:
            in_transaction(work)
        except BaseException as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=side, args=args) for args in ((1, 2), (2, 1))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors
    # Postgres chose one victim; it ran again and committed; the on-commit callback of its
    # rolled-back attempt never ran.
    assert sorted(runs.values()) == [1, 2]
    assert sorted(commits) == [1, 2]
    with connection.cursor() as cursor:
        cursor.execute("SELECT n FROM retry_probe ORDER BY id")
        assert [n for (n,) in cursor.fetchall()] == [2, 2]


def _refuse_block_updates(sqlstate: str) -> None:
    """Every UPDATE of a block fails as Postgres fails a serialization conflict; a sequence
    (outside any transaction's rollback) counts the attempts."""
    with connection.cursor() as cursor:
        cursor.execute("CREATE SEQUENCE conflict_attempts")
        cursor.execute(
            f"""
            CREATE FUNCTION conflict_refuse() RETURNS trigger AS $$
            BEGIN
                PERFORM nextval('conflict_attempts');
                RAISE EXCEPTION 'test conflict' USING ERRCODE = '{sqlstate}';
            END $$ LANGUAGE plpgsql
            """
        )
        cursor.execute(
            "CREATE TRIGGER conflict_refuse BEFORE UPDATE ON orders_block "
            "FOR EACH ROW EXECUTE FUNCTION conflict_refuse()"
        )


def _attempts() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT last_value, is_called FROM conflict_attempts")
        last, called = cursor.fetchone()
    return last if called else 0


@pytest.fixture
def refusing_blocks(transactional_db):
    yield _refuse_block_updates
    with connection.cursor() as cursor:
        cursor.execute("DROP TRIGGER IF EXISTS conflict_refuse ON orders_block")
        cursor.execute("DROP FUNCTION IF EXISTS conflict_refuse()")
        cursor.execute("DROP SEQUENCE IF EXISTS conflict_attempts")


@pytest.mark.parametrize("sqlstate", ["40001", "40P01"])
def test_a_conflict_that_keeps_coming_is_a_503_after_three_attempts(
    refusing_blocks, refdata, broker, sqlstate
):
    from rest_framework.test import APIClient

    from audit.models import AuditEvent
    from fixgateway.models import OutboxMessage
    from oms.db import ATTEMPTS
    from oms.error_views import RETRY_AFTER_SECONDS
    from orders.models import Block
    from tests.fix.conftest import routed_block

    block = routed_block(refdata, broker, "100")
    outbox = OutboxMessage.objects.count()
    audited = AuditEvent.objects.count()
    refusing_blocks(sqlstate)
    client = APIClient()
    client.force_authenticate(refdata.trader)
    response = client.post(f"/api/blocks/{block.pk}/cancel/", format="json")
    assert response.status_code == 503
    assert response["Retry-After"] == str(RETRY_AFTER_SECONDS)
    assert response.json()["error"]["code"] == "busy"
    assert _attempts() == ATTEMPTS
    # Nothing of any attempt was kept.
    assert Block.objects.get(pk=block.pk).status == block.status
    assert OutboxMessage.objects.count() == outbox
    assert AuditEvent.objects.count() == audited


def test_a_conflict_inside_a_callers_transaction_is_not_retried_there(
    refusing_blocks, refdata, broker
):
    """Only the outermost transaction can run again: nested, the conflict goes up at once."""
    from django.db import OperationalError, transaction
    from django.utils import timezone

    from oms.db import in_transaction
    from orders.block_services import block_cancel
    from tests.fix.conftest import routed_block

    block = routed_block(refdata, broker, "100")
    refusing_blocks("40001")
    # block_cancel is a workflow's entry, durable: it refuses to run inside another
    # transaction at all. Its body, in a use case nested in the caller's transaction:
    cancel = block_cancel.__wrapped__
    with pytest.raises(OperationalError), transaction.atomic():
        in_transaction(
            lambda: cancel(block_id=block.pk, actor=refdata.trader, as_of=timezone.now())
        )
    assert _attempts() == 1


def test_a_workflow_entry_refuses_to_run_inside_a_callers_transaction(refdata, broker):
    from django.db import transaction
    from django.utils import timezone

    from orders.block_services import block_cancel
    from tests.fix.conftest import routed_block

    block = routed_block(refdata, broker, "100")
    with pytest.raises(RuntimeError, match="durable"), transaction.atomic():
        block_cancel(block_id=block.pk, actor=refdata.trader, as_of=timezone.now())
