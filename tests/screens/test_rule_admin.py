"""Compliance rule parameters as form fields per kind in the admin (issue 17, item 4), in
real Chromium: the kind's fields only, validated as the services validate, saved canonical."""

from __future__ import annotations

import pytest

from compliance.models import Rule

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _visible_parameters(page) -> set[str]:
    return set(
        page.evaluate(
            """() => Array.from(document.querySelectorAll('[data-kinds]'))
                .filter(e => e.closest('.form-row').offsetParent !== null)
                .map(e => e.name)"""
        )
    )


def test_parameters_follow_the_kind_and_are_validated(refdata, login, oms_server):
    from oms.roles import roles_sync

    roles_sync()
    page = login("compliance1")
    page.set_viewport_size({"width": 1366, "height": 768})
    page.goto(f"{oms_server}/admin/compliance/rule/add/")
    page.fill("#id_name", "Fat finger")
    page.select_option("#id_kind", "ORDER_SIZE")
    assert _visible_parameters(page) == {"param_max_quantity", "param_max_notional"}
    page.select_option("#id_kind", "DUPLICATE_ORDER")
    assert _visible_parameters(page) == {"param_window_minutes"}
    page.select_option("#id_kind", "NO_SHORT")
    assert _visible_parameters(page) == set()
    assert page.locator("#no-parameters").is_visible()
    page.select_option("#id_kind", "ORDER_SIZE")

    # Neither limit given: the services' own message, and nothing saved.
    page.click("input[name=_save]")
    page.locator(".errorlist", has_text="Give max_quantity, max_notional or both").wait_for()
    assert not Rule.objects.exists()
    # The kind chosen is kept, so only its fields show after the round trip.
    assert _visible_parameters(page) == {"param_max_quantity", "param_max_notional"}

    page.fill("input[name=param_max_quantity]", "10000.0")
    page.fill("input[name=param_max_notional]", "-5")
    page.click("input[name=_save]")
    page.locator(".errorlist", has_text="greater than or equal to 0").wait_for()
    assert not Rule.objects.exists()

    page.fill("input[name=param_max_notional]", "2500000")
    page.click("input[name=_save]")
    page.wait_for_url("**/admin/compliance/rule/")
    rule = Rule.objects.get()
    assert rule.kind == "ORDER_SIZE"
    assert rule.parameters == {"max_quantity": "10000", "max_notional": "2500000"}
    assert rule.current_version.snapshot["parameters"] == rule.parameters
