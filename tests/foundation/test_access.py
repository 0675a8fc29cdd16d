import pytest

pytestmark = pytest.mark.django_db


def test_api_requires_authentication(client, refdata):
    response = client.get("/api/accounts/")
    assert response.status_code in (401, 403)
    assert "error" in response.json()


def test_pm_lists_only_their_accounts(client, refdata):
    client.force_login(refdata.pm1)
    body = client.get("/api/accounts/").json()
    codes = [a["code"] for a in body["results"]]
    assert codes == ["ACCT1"]


def test_pm_cannot_read_another_pms_account_through_the_api(client, refdata):
    client.force_login(refdata.pm1)
    response = client.get(f"/api/accounts/{refdata.acct2.pk}/")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert client.get(f"/api/accounts/{refdata.acct1.pk}/").status_code == 200


def test_pm_cannot_open_another_pms_account_page(client, refdata):
    client.force_login(refdata.pm1)
    assert client.get("/accounts/ACCT2/").status_code == 404
    assert client.get("/accounts/ACCT1/").status_code == 200
    listing = client.get("/accounts/").content.decode()
    assert "ACCT1" in listing and "ACCT2" not in listing


@pytest.mark.parametrize("who", ["trader", "compliance", "ops", "admin"])
def test_firm_wide_roles_see_every_account(client, refdata, who):
    client.force_login(getattr(refdata, who))
    codes = {a["code"] for a in client.get("/api/accounts/").json()["results"]}
    assert {"ACCT1", "ACCT2"} <= codes


def test_token_login_and_token_auth(client, refdata):
    bad = client.post("/api/auth/token/", {"username": "pm1", "password": "nope"})
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "authentication_failed"
    good = client.post("/api/auth/token/", {"username": "pm1", "password": "test-pass-123"})
    assert good.status_code == 200
    token = good.json()["token"]
    from django.test import Client

    api = Client(HTTP_AUTHORIZATION=f"Token {token}")
    codes = [a["code"] for a in api.get("/api/accounts/").json()["results"]]
    assert codes == ["ACCT1"]


def test_validation_errors_share_one_format(client, refdata):
    response = client.post("/api/auth/token/", {})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid" and "username" in error["fields"]


def test_openapi_schema_and_docs(client, refdata):
    client.force_login(refdata.pm1)
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert "/api/accounts/" in paths and "/api/auth/token/" in paths
    docs = client.get("/api/docs/")
    assert docs.status_code == 200 and b"swagger" in docs.content.lower()


def test_pages_need_login(client, refdata):
    response = client.get("/accounts/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_navigation_follows_roles(client, refdata):
    client.force_login(refdata.pm1)
    home = client.get("/").content.decode()
    assert "Audit" not in home
    client.force_login(refdata.compliance)
    home = client.get("/").content.decode()
    assert 'href="/audit/"' in home


def test_healthz_reports_database_and_redis(client):
    body = client.get("/healthz").json()
    assert body["status"] == "ok"
    assert body["database"]["ok"] is True and body["redis"]["ok"] is True


def test_security_search(client, refdata):
    client.force_login(refdata.pm1)
    found = client.get("/api/securities/search/", {"q": "MS"}).json()
    assert [s["symbol"] for s in found] == ["MSFT"]
    by_name = client.get("/api/securities/search/", {"q": "aapl corp"}).json()
    assert [s["symbol"] for s in by_name] == ["AAPL"]
