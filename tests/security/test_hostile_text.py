"""Hostile text wherever text is shown: escaped in the pages and the AG Grid (real Chromium:
no script runs, the literal text is visible), neutralised in the CSV exports."""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal

import pytest
from django.utils import timezone

from audit.services import audit_record
from oms.csvio import write_csv

# Two payloads: one that runs if inserted as HTML, one that breaks out of an attribute.
IMG = "<img src=x onerror=window.__xss=1>"
SCRIPT = '"><script>window.__xss=1</script>'
# Symbols and codes are at most 32 characters.
SYMBOL = "<img src=x onerror=__xss=1>"
CODE = '"><svg onload=__xss=1>'
FORMULAS = ['=HYPERLINK("http://x")', "+1+2", "-2+3", "@SUM(1)", "\t=1", "=cmd|' /C calc'!A0"]


@pytest.fixture
def hostile(refdata):
    """One of everything, every text field hostile, visible to pm1 and to the admin."""
    from allocation.services import BlockFill, allocation_plan_fix, street_fills_record
    from compliance.services import rule_create
    from oms.models import Account
    from orders.block_services import block_create
    from orders.lifecycle import OrderStatus
    from orders.models import Order
    from positions.models import Position
    from tests.blotter.helpers import staged_order
    from tests.factories import security

    ref = refdata
    now = timezone.now()
    sec = security("TMP", price="10.00")
    sec.symbol, sec.name = SYMBOL, IMG + SCRIPT
    sec.save(update_fields=["symbol", "name"])
    acct = Account.objects.create(
        code=CODE,
        name=IMG + SCRIPT,
        custodian=ref.acct1.custodian,
        custodian_account=SCRIPT[:32],
    )
    acct.managers.add(ref.pm1)
    staged = staged_order(acct, sec, pm=ref.pm1)
    Order.objects.filter(pk=staged.pk).update(instructions=IMG + SCRIPT)
    block = block_create(order_ids=[staged.pk], actor=ref.trader, as_of=now)
    allocation_plan_fix(block=block, actor=ref.trader, as_of=now)
    # A trading day on the block, so the Operations page lists it.
    street_fills_record(
        fills=[BlockFill(block, "HOSTILE-1", Decimal(1), Decimal(10), now.date())], as_of=now
    )
    warned = staged_order(acct, sec, pm=ref.pm1, status=OrderStatus.AWAITING_OVERRIDE)
    Order.objects.filter(pk=warned.pk).update(instructions=SCRIPT + IMG)
    Position.objects.create(
        account=acct,
        security=sec,
        quantity=Decimal("50"),
        cost_basis=Decimal("500"),
        avg_cost=Decimal("10"),
    )
    rule_create(
        actor=ref.compliance,
        as_of=now,
        name=IMG + SCRIPT,
        kind="ORDER_SIZE",
        parameters={"max_quantity": "1000000"},
    )
    from oms.services import exception_open

    exception_open(
        kind="booking_failed",
        ref=IMG + SCRIPT,
        summary=IMG + SCRIPT,
        detail={"note": SCRIPT, IMG: [IMG]},
        source="allocation",
        as_of=now,
    )
    audit_record(
        actor=ref.admin,
        action="test.hostile",
        object_type="oms.account",
        object_id=acct.pk,
        object_repr=IMG,
        after={"note": SCRIPT},
    )
    return ref


# page, who opens it, text that must be visible literally
PAGES = [
    ("/orders/ticket/", "pm1", CODE),
    ("/orders/mine/", "pm1", SYMBOL),
    ("/blotter/", "trader1", SYMBOL),
    ("/positions/", "pm1", SYMBOL),
    ("/compliance/", "compliance1", IMG + SCRIPT),
    ("/audit/", "compliance1", IMG),
    ("/operations/", "ops1", SYMBOL),
    ("/accounts/", "pm1", CODE),
    ("/exceptions/", "ops1", IMG + SCRIPT),
    ("/exceptions/{exception}/", "ops1", SCRIPT),
]


def _shows_literally(page, text: str) -> None:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function(
            "text => document.body.innerText.includes(text)", arg=text, timeout=15_000
        )
    except PlaywrightTimeout:
        shown = page.evaluate("document.body.innerText")
        raise AssertionError(
            f"{page.url} does not show {text!r}; it shows:\n{shown[:3000]}"
        ) from None


@pytest.mark.django_db(transaction=True)
def test_hostile_text_is_shown_as_text_in_every_page_and_the_grid(hostile, browser, oms_server):
    places = 0
    for path, username, text in PAGES:
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        page = context.new_page()
        page.set_default_timeout(15_000)
        try:
            page.goto(f"{oms_server}/login/")
            page.fill("input[name=username]", username)
            page.fill("input[name=password]", "test-pass-123")
            page.click("button[type=submit]")
            page.wait_for_selector("[data-testid=username]")
            if "{exception}" in path:
                from oms.models import OpsException

                path = path.format(exception=OpsException.objects.get().pk)
            page.goto(oms_server + path)
            page.wait_for_load_state("networkidle")
            _shows_literally(page, text)
            if path == "/orders/ticket/":
                # The security search's drop-down and the facts beside the entry.
                page.fill("input[name=symbol]", "<img")
                _shows_literally(page, SYMBOL + " · " + IMG + SCRIPT)
                page.click("[data-symbol]")
                page.wait_for_load_state("networkidle")
            assert page.evaluate("window.__xss") is None, f"script ran on {path}"
            assert page.locator("img[src=x]").count() == 0, f"an <img> was injected on {path}"
            places += 1
        finally:
            context.close()
    print(f"\nFIGURE hostile text: 2 payloads (+ short forms) x {places} pages, no script ran")


def _cells(content: str) -> list[str]:
    return [cell for row in csv.reader(io.StringIO(content)) for cell in row]


@pytest.mark.django_db
def test_the_audit_export_neutralises_formulas(client, refdata):
    for i, formula in enumerate(FORMULAS):
        audit_record(
            actor=refdata.admin,
            action="test.formula",
            object_type="x",
            object_id=i,
            object_repr=formula,
            after={"v": formula},
        )
    client.force_login(refdata.compliance)
    response = client.get("/audit/?format=csv&action=test.formula")
    assert response.status_code == 200
    cells = _cells(response.content.decode())
    reprs = [c for c in cells if c.lstrip("'") in FORMULAS]
    assert sorted(c[1:] for c in reprs) == sorted(FORMULAS), reprs
    assert all(c.startswith("'") for c in reprs)
    for cell in cells:
        assert not cell.startswith(("=", "+", "@", "\t", "\r")), cell
        assert not (cell.startswith("-") and not cell[1:].replace(".", "").isdigit()), cell
    print(f"\nFIGURE CSV: {len(FORMULAS)} formula payloads neutralised in the audit export")


def test_the_csv_writer_every_export_uses_neutralises_formulas_and_keeps_numbers():
    """Settlement files and the audit export both go through oms.csvio.write_csv."""
    content = write_csv(["account", "amount"], [[f, "-12.5"] for f in FORMULAS])
    rows = list(csv.reader(io.StringIO(content)))[1:]
    assert [r[0] for r in rows] == ["'" + f for f in FORMULAS]
    assert all(r[1] == "-12.5" for r in rows)
    assert json.dumps(rows)  # plain strings, nothing else
