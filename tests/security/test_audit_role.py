"""The database role the application runs as cannot rewrite the audit trail."""

import psycopg
import pytest
from django.core.management import call_command
from django.db import connection

from audit.services import audit_record

pytestmark = pytest.mark.django_db(transaction=True)


def _connect_as(role: str) -> psycopg.Connection:
    s = connection.settings_dict
    return psycopg.connect(
        host=s["HOST"] or None,
        port=s["PORT"] or None,
        dbname=s["NAME"],
        user=role,
        autocommit=True,
    )


def test_app_role_reads_and_appends_but_cannot_update_delete_or_truncate_audit(refdata):
    call_command("db_app_role", "--role", "oms_app_test")
    event = audit_record(actor=refdata.admin, action="test.event", after={"x": 1})
    with _connect_as("oms_app_test") as conn:
        assert conn.execute("SELECT count(*) FROM audit_auditevent").fetchone()[0] >= 1
        for statement in (
            "UPDATE audit_auditevent SET action = 'x'",
            "DELETE FROM audit_auditevent",
            "TRUNCATE audit_auditevent",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied"):
                conn.execute(statement)
        # Everything else the application needs still works for it.
        conn.execute("UPDATE oms_security SET active = active WHERE id = %s", [refdata.aapl.pk])
    from audit.models import AuditEvent

    assert AuditEvent.objects.get(pk=event.pk).action == "test.event"
