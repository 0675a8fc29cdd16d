"""Every page fits a 1366 x 768 screen: no horizontal page scroll for any role that may open it,
with long audit values, many columns and long compliance reasons on the page (issue 17, item 6).
"""

from __future__ import annotations

import pytest

from audit.services import audit_record
from compliance.models import RuleKind
from tests.compliance.conftest import AS_OF, fund, make_rule, place
from tests.factories import PASSWORD, security
from tests.security.conftest import build_world
from tests.security.test_access_matrix import PAGES

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

USERNAMES = {
    "pm": "pm1",
    "trader": "trader1",
    "compliance": "compliance1",
    "ops": "ops1",
    "admin": "admin",
}
COLUMNS = {"pm": 3, "trader": 5, "compliance": 6, "ops": 7, "admin": 8}
# Not pages of the site's own layout: JSON, a download, the login form, Django's admin.
NOT_SCREENS = ("/healthz", "/login/", "/logout/", "/admin/", "format=csv", "/download", ".csv")


def _screens(world, role: str) -> list[str]:
    from tests.security.test_access_matrix import _fill

    return [
        _fill(path, world)
        for _name, method, path, *statuses in PAGES
        if method == "GET"
        and statuses[COLUMNS[role] - 3] == 200
        and not any(part in path for part in NOT_SCREENS)
    ]


def _long_content(world) -> None:
    ref = world.ref
    security("TST", price="100.00", sector="Utilities")
    fund(ref.acct1, "1000000")
    make_rule(
        ref.compliance,
        RuleKind.ORDER_SIZE,
        {"max_quantity": "100"},
        severity="WARN",
        name="A rule with a long name about the size of a single order in the account " * 2,
        scope="ACCOUNTS",
        account_ids=[ref.acct1.pk],
    )
    place(ref.pm1, ref.acct1, "TST", "BUY", 12345678)
    wide = {f"field_{i}": "x" * 60 for i in range(40)}
    audit_record(
        actor=ref.admin,
        action="test.wide",
        object_type="thing",
        object_id=1,
        object_repr="a thing with a long name " * 5,
        before=wide,
        after={**wide, "field_0": "y"},
        occurred_at=AS_OF,
    )


@pytest.mark.parametrize("role", sorted(USERNAMES))
def test_every_page_fits_1366_without_horizontal_scroll(refdata, browser, oms_server, role):
    world = build_world(refdata)
    _long_content(world)
    context = browser.new_context(viewport={"width": 1366, "height": 768})
    page = context.new_page()
    page.set_default_timeout(15_000)
    try:
        page.goto(f"{oms_server}/login/")
        page.fill("input[name=username]", USERNAMES[role])
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_selector("[data-testid=username]")
        overflowing = {}
        screens = _screens(world, role)
        assert len(screens) >= 5
        for path in screens:
            response = page.goto(f"{oms_server}{path}")
            assert response.status == 200, path
            page.wait_for_load_state("load")
            widths = page.evaluate(
                "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
            )
            if widths[0] > widths[1]:
                overflowing[path] = widths
        assert overflowing == {}
    finally:
        context.close()


def test_favicon_is_served_and_linked(client, oms_server, browser):
    context = browser.new_context()
    page = context.new_page()
    try:
        response = page.goto(f"{oms_server}/favicon.ico")
        assert response.status == 200
        assert response.header_value("content-type").startswith("image/")
        page.goto(f"{oms_server}/login/")
        href = page.locator("link[rel=icon]").get_attribute("href")
        assert page.request.get(f"{oms_server}{href}").status == 200
    finally:
        context.close()
