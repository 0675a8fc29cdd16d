import pytest

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_pm_logs_in_and_sees_only_their_accounts(refdata, login, oms_server):
    page = login("pm1")
    assert page.locator("[data-testid=username]").inner_text() == "pm1"
    page.click("text=Accounts")
    table = page.locator("[data-testid=accounts]")
    assert "ACCT1" in table.inner_text()
    assert "ACCT2" not in table.inner_text()
    response = page.goto(f"{oms_server}/accounts/ACCT2/")
    assert response.status == 404


def test_wrong_password_shows_an_error(refdata, page, oms_server):
    page.goto(f"{oms_server}/login/")
    page.fill("input[name=username]", "pm1")
    page.fill("input[name=password]", "wrong")
    page.click("button[type=submit]")
    assert page.get_by_role("alert").inner_text().startswith("Your username and password")
