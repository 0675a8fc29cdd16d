"""Operations in real Chromium: finds the open exception from the navigation, reads its
detail, resolves it with a note, and the queue shows none open."""

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from oms.models import OpsException
from oms.services import exception_open

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_operations_resolves_an_exception_with_a_note(refdata, login, oms_server):
    exc = exception_open(
        kind="booking_failed",
        ref="block:12:2026-10-09",
        summary="Block 12: fill booking failed after the close (no settlement calendar)",
        detail={"error": "no settlement calendar for XNAS", "orders": [41, 42]},
        source="allocation",
        block_id=12,
        as_of=timezone.now(),
    )
    page = login("ops1")
    page.click("nav >> text=Exceptions")
    page.wait_for_selector("[data-testid=exceptions]")
    assert page.locator("[data-testid=open-count]").inner_text().startswith("1 open")
    row = page.locator(f"tr[data-exception-id='{exc.pk}']")
    assert "booking_failed" in row.inner_text() and "open" in row.inner_text()

    row.locator("text=Block 12: fill booking failed").click()
    page.wait_for_selector("[data-testid=resolve-form]")
    detail = page.locator("[data-testid=exception-detail]").inner_text()
    assert "no settlement calendar for XNAS" in detail and "41" in detail

    page.fill("textarea[name=note]", "Calendar loaded; block rebooked by hand.")
    page.click("[data-testid=resolve-form] button[type=submit]")
    page.wait_for_selector(f"text=Exception {exc.pk} resolved.")
    assert page.locator("[data-testid=open-count]").inner_text().startswith("0 open")
    assert "resolved" in page.locator(f"tr[data-exception-id='{exc.pk}']").inner_text()

    exc = OpsException.objects.get(pk=exc.pk)
    assert (exc.resolved_by, exc.resolution_note) == (
        refdata.ops,
        "Calendar loaded; block rebooked by hand.",
    )
    assert AuditEvent.objects.filter(
        action="exception.resolve", actor_id=refdata.ops.pk, object_id=str(exc.pk)
    ).exists()
