"""The README's screenshots (issue 17, item 5): the blotter, the order ticket's review and the
compliance queue at 1366 x 768 in real Chromium, on the demo firm with a morning's orders.

    OMS_SCREENSHOTS_DIR=docs/screenshots make test ARGS="tests/screens/test_screenshots.py"

writes the PNGs the README shows; without the variable they go to a temporary directory (the
test still checks each is a 1366 x 768 PNG of a page that rendered)."""

from __future__ import annotations

import os
import struct
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.utils import timezone

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WIDTH, HEIGHT = 1366, 768


def _morning() -> None:
    """Orders from both PMs: most pass and are staged (some blocked together by the desk),
    a few warn (a limit far from the reference), one blocked (the restricted list)."""
    from django.contrib.auth.models import User

    from oms.errors import DomainError
    from oms.models import Security
    from orders.block_services import block_create
    from orders.entry import order_create
    from orders.models import Order

    pm1, pm2 = User.objects.get(username="pm1"), User.objects.get(username="pm2")
    trader = User.objects.get(username="trader1")
    now = timezone.now()
    names = ["AAPL", "MSFT", "JPM", "XOM", "NVDA", "KO", "PG", "JNJ", "V", "WMT", "PFE", "CVX"]
    securities = list(Security.objects.filter(symbol__in=names, reference_price__isnull=False))
    securities += list(
        Security.objects.filter(active=True, reference_price__isnull=False)
        .exclude(symbol__in=names)
        .order_by("symbol")[: max(0, 12 - len(securities))]
    )

    def place(pm, account, security, quantity, **kw):
        try:
            order, _ = order_create(
                pm=pm,
                account=account,
                symbol=security.symbol,
                side=kw.pop("side", "BUY"),
                quantity=Decimal(quantity),
                order_type=kw.pop("order_type", "MARKET"),
                as_of=now,
                **kw,
            )
            return order
        except DomainError:
            return None  # the demo's cash or a limit said no: a screenshot needs no more

    for i, security in enumerate(securities):
        a = place(pm1, "PENSION1" if i % 2 else "GROWTH1", security, 200 + 100 * i)
        b = place(pm2, "LSEQ2" if i % 2 else "VALUE2", security, 100 + 50 * i)
        staged = [o.pk for o in (a, b) if o is not None and o.status == "STAGED"]
        if i < 5 and staged:
            block_create(order_ids=staged, actor=trader, as_of=now)
    for security in securities[:4]:
        far = (security.reference_price * Decimal("1.08")).quantize(security.tick_size)
        place(pm1, "INCOME1", security, 100, order_type="LIMIT", limit_price=far)
    tsla = Security.objects.filter(symbol="TSLA").first()
    if tsla is not None:
        place(pm2, "GLOBAL2", tsla, 150)
    assert Order.objects.filter(block__isnull=False).exists()


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


def test_readme_screenshots(browser, oms_server, tmp_path):
    call_command("seed_demo")
    _morning()
    out = Path(os.environ.get("OMS_SCREENSHOTS_DIR") or tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": WIDTH, "height": HEIGHT})
    page = context.new_page()
    page.set_default_timeout(20_000)

    def login(username):
        page.context.clear_cookies()
        page.goto(f"{oms_server}/login/")
        page.fill("input[name=username]", username)
        page.fill("input[name=password]", settings.OMS_DEMO_PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_selector("[data-testid=username]")

    shots = []
    login("trader1")
    page.goto(f"{oms_server}/blotter/")
    page.wait_for_selector("[data-testid=feed-state]:text('live')")
    page.wait_for_selector("#blotter-grid .block-row")
    page.wait_for_timeout(500)  # the header's first poll (sessions, exceptions)
    page.screenshot(path=out / "blotter.png")
    shots.append("blotter.png")

    login("pm1")
    page.goto(f"{oms_server}/orders/ticket/")
    page.fill("#symbol", "MSFT")
    page.locator("#symbol").press("Escape")
    page.locator("#symbol").press("Enter")  # takes the symbol as typed and loads its facts
    page.wait_for_function("document.querySelector('[data-fact=name]').textContent !== '–'")
    page.fill("input[name=quantity]", "2.5k")
    page.select_option("select[name=order_type]", "LIMIT")
    reference = page.evaluate(
        "() => document.querySelector('[data-fact=reference_price]').textContent.split(' ')[0]"
    )
    page.fill("input[name=limit_price]", reference.replace(",", ""))
    page.click("#submit-button")
    page.wait_for_selector("[data-testid=order-review]:not([hidden])")
    page.screenshot(path=out / "ticket.png")
    shots.append("ticket.png")

    login("compliance1")
    page.goto(f"{oms_server}/compliance/")
    page.wait_for_load_state("networkidle")
    page.screenshot(path=out / "compliance-queue.png")
    shots.append("compliance-queue.png")
    context.close()

    for name in shots:
        path = out / name
        assert _png_size(path) == (WIDTH, HEIGHT)
        # Small enough for a README: a screen of text, not a photograph.
        assert path.stat().st_size < 400_000, (name, path.stat().st_size)
