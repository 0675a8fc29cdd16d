import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, transaction
from django.db.utils import DatabaseError

from audit.models import AuditEvent
from audit.selectors import audit_chain_verify
from audit.services import GENESIS_HASH, audit_record, digest_of

pytestmark = pytest.mark.django_db


def _events(n: int) -> list[AuditEvent]:
    actor = User.objects.create_user("auditor")
    return [
        audit_record(
            actor=actor,
            action="test.thing",
            object_type="x",
            object_id=i,
            before={"q": "1.50"},
            after={"q": i},
        )
        for i in range(n)
    ]


def test_events_form_a_hash_chain():
    events = _events(3)
    assert events[0].prev_hash == GENESIS_HASH or events[0].chain_seq > 1
    for earlier, later in zip(events, events[1:], strict=False):
        assert later.prev_hash == earlier.hash
        assert later.chain_seq == earlier.chain_seq + 1
    for event in AuditEvent.objects.filter(pk__in=[e.pk for e in events]):
        assert digest_of(event) == event.hash
    checked, broken = audit_chain_verify()
    assert broken is None and checked >= 3


def test_update_is_refused_by_the_database():
    event = _events(1)[0]
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("UPDATE audit_auditevent SET action = 'x' WHERE id = %s", [event.pk])
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).update(action="changed")
    assert AuditEvent.objects.get(pk=event.pk).action == "test.thing"


def test_delete_is_refused_by_the_database():
    event = _events(1)[0]
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM audit_auditevent WHERE id = %s", [event.pk])
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).delete()
    assert AuditEvent.objects.filter(pk=event.pk).exists()


def test_truncate_is_refused_unless_the_session_opted_in():
    _events(1)
    with pytest.raises(DatabaseError, match="TRUNCATE refused"), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL oms.audit_truncate_allowed = 'off'")
            cursor.execute("TRUNCATE audit_auditevent")
    assert AuditEvent.objects.exists()


def test_audit_verify_names_a_row_altered_behind_the_triggers_back():
    events = _events(5)
    victim = events[2]
    call_command("audit_verify")  # intact first
    with connection.cursor() as cursor:
        # Someone with owner rights switches the trigger off and edits history.
        cursor.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER audit_event_no_update_delete")
        cursor.execute(
            "UPDATE audit_auditevent SET after = '{\"q\": 999}'::jsonb WHERE id = %s", [victim.pk]
        )
        cursor.execute("ALTER TABLE audit_auditevent ENABLE TRIGGER audit_event_no_update_delete")
    _, broken = audit_chain_verify()
    assert broken is not None
    assert broken.chain_seq == victim.chain_seq
    assert broken.reason == "content does not match hash"
    with pytest.raises(CommandError, match=f"broken at event #{victim.chain_seq}"):
        call_command("audit_verify")


def test_failed_and_successful_logins_and_logout_are_audited(client, make_user):
    make_user("pm9", "PM")
    response = client.post("/login/", {"username": "pm9", "password": "wrong-password"})
    assert response.status_code == 200
    failed = AuditEvent.objects.filter(action="auth.login_failed").latest("chain_seq")
    assert failed.actor_username == "pm9" and failed.actor_id is None
    assert failed.request_id  # ties the event to the HTTP request

    response = client.post("/login/", {"username": "pm9", "password": "test-pass-123"})
    assert response.status_code == 302
    assert AuditEvent.objects.filter(action="auth.login", actor_username="pm9").exists()
    client.post("/logout/")
    assert AuditEvent.objects.filter(action="auth.logout", actor_username="pm9").exists()


def test_admin_change_records_before_and_after(client, refdata):
    client.force_login(refdata.admin)
    security = refdata.aapl
    response = client.post(
        f"/admin/oms/security/{security.pk}/change/",
        {
            "symbol": "AAPL",
            "name": "Apple Inc.",
            "asset_class": "EQUITY",
            "isin": "",
            "exchange_mic": "XNAS",
            "currency": "USD",
            "sector": "Information Technology",
            "industry": "Hardware",
            "issuer": security.issuer_id,
            "lot_size": "1",
            "tick_size": "0.01",
            "shares_outstanding": "1000000000",
            "avg_daily_volume": "5000000",
            "reference_price": "191.25",
            "reference_price_at_0": "2026-11-25",
            "reference_price_at_1": "15:00:00",
            "settlement_cycle": "1",
            "price_quotation": "UNIT",
            "contract_multiplier": "1",
            "active": "on",
        },
    )
    assert response.status_code == 302, response.content[:2000]
    event = AuditEvent.objects.filter(action="admin.change", object_type="oms.security").latest(
        "chain_seq"
    )
    assert event.object_id == str(security.pk)
    assert event.actor_username == "admin"
    assert event.before["reference_price"] == "190.00000000"
    assert event.after["reference_price"] == "191.25000000"
    assert event.before["name"] == "AAPL Corp" and event.after["name"] == "Apple Inc."


def test_admin_delete_is_audited(client, refdata):
    from oms.models import AccountTag

    tag = AccountTag.objects.create(name="TEMP")
    client.force_login(refdata.admin)
    response = client.post(f"/admin/oms/accounttag/{tag.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    event = AuditEvent.objects.filter(action="admin.delete").latest("chain_seq")
    assert event.before["name"] == "TEMP" and event.object_id == str(tag.pk)


def test_audit_page_filters_and_exports_csv_for_compliance_only(client, refdata):
    audit_record(
        actor=refdata.pm1,
        action="order.create",
        object_type="orders.order",
        object_id=1,
        object_repr='=HYPERLINK("http://evil")',
    )
    client.force_login(refdata.pm1)
    assert client.get("/audit/").status_code == 403
    client.force_login(refdata.compliance)
    page = client.get("/audit/", {"action": "order.create"})
    assert page.status_code == 200
    assert b"order.create" in page.content
    export = client.get("/audit/", {"action": "order.create", "format": "csv"})
    assert export["Content-Type"] == "text/csv"
    body = export.content.decode()
    assert body.splitlines()[0].startswith("seq,occurred_at,user,action")
    assert "order.create" in body
    assert ",=HYPERLINK" not in body and '"=HYPERLINK' not in body
    assert "'=HYPERLINK" in body
    assert AuditEvent.objects.filter(action="audit.export", actor_username="compliance1").exists()
