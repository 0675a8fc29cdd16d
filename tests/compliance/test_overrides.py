"""Who may lift a warning or a block, and what an override leaves behind."""

from __future__ import annotations

import pytest

from audit.models import AuditEvent
from compliance.models import Override, RuleKind
from compliance.services import compliance_override
from oms import roles
from oms.errors import Conflict, NotPermitted
from orders.lifecycle import OrderStatus
from tests.factories import user

from .conftest import AS_OF, make_rule, place

pytestmark = pytest.mark.django_db


@pytest.fixture
def warned(firm):
    make_rule(
        firm.ref.compliance,
        RuleKind.ORDER_SIZE,
        {"max_quantity": "100"},
        severity="WARN",
        name="size warn",
        scope="ACCOUNTS",
        account_ids=[firm.ref.acct1.pk],
    )
    order = place(firm.ref.pm1, firm.ref.acct1, "TST", "BUY", 101)
    assert order.status == OrderStatus.AWAITING_OVERRIDE and order.compliance_status == "WARN"
    return order


@pytest.fixture
def blocked(firm):
    make_rule(
        firm.ref.compliance,
        RuleKind.ORDER_SIZE,
        {"max_quantity": "100"},
        name="size block",
        scope="ACCOUNTS",
        account_ids=[firm.ref.acct2.pk],
    )
    order = place(firm.ref.pm2, firm.ref.acct2, "TST", "BUY", 101)
    assert order.status == OrderStatus.BLOCKED and order.compliance_status == "BLOCK"
    return order


def test_pm_overrides_their_warning_and_the_order_reaches_the_desk(firm, warned):
    override = compliance_override(
        order_id=warned.pk, actor=firm.ref.pm1, reason="client instruction", as_of=AS_OF
    )
    warned.refresh_from_db()
    assert warned.status == OrderStatus.STAGED
    assert (override.verdict, override.reason, override.actor) == (
        "WARN",
        "client instruction",
        firm.ref.pm1,
    )
    event = AuditEvent.objects.get(action="compliance.override")
    assert event.after == {"order": warned.pk, "verdict": "WARN", "reason": "client instruction"}
    kinds = list(warned.events.values_list("kind", flat=True))
    assert "compliance_override" in kinds and kinds[-1] == "stage"


def test_another_pm_cannot_override_a_warning(firm, warned):
    with pytest.raises(NotPermitted):
        compliance_override(order_id=warned.pk, actor=firm.ref.pm2, reason="x", as_of=AS_OF)
    warned.refresh_from_db()
    assert warned.status == OrderStatus.AWAITING_OVERRIDE


def test_pm_cannot_override_a_block(firm, blocked):
    with pytest.raises(NotPermitted, match="Only Compliance"):
        compliance_override(order_id=blocked.pk, actor=firm.ref.pm2, reason="x", as_of=AS_OF)
    blocked.refresh_from_db()
    assert blocked.status == OrderStatus.BLOCKED
    assert not Override.objects.exists()


def test_compliance_cannot_override_a_block_on_their_own_order(firm):
    ref = firm.ref
    both = user("pmcomp", roles.PM, roles.COMPLIANCE)
    ref.acct1.managers.add(both)
    make_rule(ref.compliance, RuleKind.ORDER_SIZE, {"max_quantity": "100"})
    order = place(both, ref.acct1, "TST", "BUY", 101)
    assert order.status == OrderStatus.BLOCKED
    with pytest.raises(NotPermitted, match="their own order"):
        compliance_override(order_id=order.pk, actor=both, reason="mine", as_of=AS_OF)
    order.refresh_from_db()
    assert order.status == OrderStatus.BLOCKED


def test_compliance_overrides_another_pms_block(firm, blocked):
    override = compliance_override(
        order_id=blocked.pk, actor=firm.ref.compliance, reason="approved by CCO", as_of=AS_OF
    )
    blocked.refresh_from_db()
    assert blocked.status == OrderStatus.STAGED
    assert override.verdict == "BLOCK"
    assert (
        AuditEvent.objects.filter(
            action="compliance.override", actor_id=firm.ref.compliance.pk
        ).count()
        == 1
    )


def test_override_needs_a_reason_and_an_overridable_order(firm, blocked):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError):
        compliance_override(
            order_id=blocked.pk, actor=firm.ref.compliance, reason="  ", as_of=AS_OF
        )
    compliance_override(order_id=blocked.pk, actor=firm.ref.compliance, reason="ok", as_of=AS_OF)
    with pytest.raises(Conflict):
        compliance_override(
            order_id=blocked.pk, actor=firm.ref.compliance, reason="again", as_of=AS_OF
        )


def test_override_api(client, firm, blocked, warned):
    client.force_login(firm.ref.pm1)
    refused = client.post(
        "/api/compliance/overrides/",
        {"order_id": blocked.pk, "reason": "please"},
        content_type="application/json",
    )
    # pm2's order: to pm1 it does not exist (as in the order API), not a 403 that confirms it.
    assert refused.status_code == 404
    assert refused.json()["error"]["code"] == "not_found"
    ok = client.post(
        "/api/compliance/overrides/",
        {"order_id": warned.pk, "reason": "known"},
        content_type="application/json",
    )
    assert ok.status_code == 201
    assert ok.json()["status"] == OrderStatus.STAGED and ok.json()["verdict"] == "WARN"
    client.force_login(firm.ref.compliance)
    missing_reason = client.post(
        "/api/compliance/overrides/", {"order_id": blocked.pk}, content_type="application/json"
    )
    assert (
        missing_reason.status_code == 400 and "reason" in missing_reason.json()["error"]["fields"]
    )
    done = client.post(
        "/api/compliance/overrides/",
        {"order_id": blocked.pk, "reason": "cleared"},
        content_type="application/json",
    )
    assert done.status_code == 201 and done.json()["status"] == OrderStatus.STAGED


def test_blocked_order_cannot_be_staged_for_the_desk(firm, blocked):
    from orders.lifecycle import InvalidTransition
    from orders.services import orders_stage

    with pytest.raises(InvalidTransition):
        orders_stage(order_ids=[blocked.pk], actor=firm.ref.trader, as_of=AS_OF)
