"""Fixtures every test shares: real Postgres and Redis (from oms.launch), users per role,
a real Daphne serving the test database, and a real headless Chromium."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.db.backends.signals import connection_created

# Playwright's sync API keeps an event loop running in the test thread; the ORM calls the tests
# make next to it are still plain synchronous calls.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path(os.environ.get("OMS_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "test-pass-123"


def _allow_audit_truncate(sender, connection, **kwargs):
    # Transactional tests flush every table between tests; the audit table refuses TRUNCATE
    # unless the session opts in, which only the test suite does.
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET oms.audit_truncate_allowed = 'on'")


connection_created.connect(_allow_audit_truncate)


@pytest.fixture
def make_user(db):
    from django.contrib.auth.models import Group, User

    from oms.roles import STAFF_ROLES

    def make(username: str, *roles: str, **extra) -> User:
        user = User.objects.create_user(username=username, password=PASSWORD, **extra)
        for role in roles:
            user.groups.add(Group.objects.get_or_create(name=role)[0])
        if set(roles) & STAFF_ROLES:
            user.is_staff = True
            user.save(update_fields=["is_staff"])
        return user

    return make


@pytest.fixture
def fee_rules(db):
    """The fee schedule allocation's migration seeds, back if a transactional test's flush
    emptied it earlier in this process (which test ran before depends on the worker)."""
    import importlib

    from allocation.models import FeeRule

    if not FeeRule.objects.exists():
        seed = importlib.import_module("allocation.migrations.0004_fee_rules").SEED
        FeeRule.objects.bulk_create(FeeRule(**row) for row in seed)


@pytest.fixture
def refdata(db):
    """A small firm: two PMs with an account each, a trader, compliance, ops, a few stocks."""
    from tests.factories import build_refdata

    return build_refdata()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _test_database_url() -> str:
    from django.db import connection

    settings = connection.settings_dict
    user = settings.get("USER") or ""
    password = f":{settings['PASSWORD']}" if settings.get("PASSWORD") else ""
    host = settings.get("HOST") or ""
    port = f":{settings['PORT']}" if settings.get("PORT") else ""
    from urllib.parse import quote

    return f"postgresql://{quote(user)}{password}@{quote(host, safe='')}{port}/{settings['NAME']}"


@contextmanager
def daphne_serving(database_url: str, **extra_env: str):
    """A real Daphne (the OMS's web process, oms.web) serving `database_url` with the test
    settings and `extra_env`: its address while it runs."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"}
    env["DATABASE_URL"] = database_url
    env["DJANGO_SETTINGS_MODULE"] = "oms.settings.test"
    env["DJANGO_ALLOWED_HOSTS"] = "127.0.0.1,localhost"
    env["DJANGO_CSRF_TRUSTED_ORIGINS"] = f"http://127.0.0.1:{port}"
    env.update(extra_env)
    log = (
        open(ROOT / ".run" / f"daphne-test-{port}.log", "w")
        if (ROOT / ".run").is_dir()
        else subprocess.DEVNULL
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "oms.web",
            "-b",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if proc.poll() is not None:
                    raise RuntimeError("daphne exited during start-up") from None
                time.sleep(0.2)
        else:
            raise RuntimeError("daphne did not start within 30 s")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="session")
def oms_server(django_db_setup, django_db_blocker):
    """A real Daphne serving the test database (tests that use it need transactional_db)."""
    with django_db_blocker.unblock():
        database_url = _test_database_url()
    with daphne_serving(database_url) as url:
        yield url


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.exists():
        message = f"browser tests need {CHROMIUM} (Debian's chromium package); it is missing"
        if os.environ.get("OMS_REQUIRE_BROWSER") == "1":
            pytest.fail(message + " and OMS_REQUIRE_BROWSER=1")
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


@pytest.fixture
def login(page, oms_server):
    def do_login(username: str, password: str = PASSWORD):
        page.goto(f"{oms_server}/login/")
        page.fill("input[name=username]", username)
        page.fill("input[name=password]", password)
        page.click("button[type=submit]")
        page.wait_for_selector("[data-testid=username]")
        return page

    return do_login
