"""Basket CSV upload (preview, confirm, every way a file can be wrong) and model rebalances."""

from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from rest_framework.test import APIClient

from audit.models import AuditEvent
from orders.basket_services import MAX_CSV_LINES
from orders.models import Basket, Order
from positions.models import Position
from positions.selectors import account_navs
from positions.services import cash_adjust
from tests import factories

pytestmark = pytest.mark.django_db

HEADER = "account,symbol,side,quantity,order_type,limit_price,stop_price,time_in_force,expire_date,instructions"


def upload(user, content: bytes, *, confirm=False, url="/api/baskets/", **extra):
    client = APIClient()
    client.force_authenticate(user)
    data = {"file": SimpleUploadedFile("basket.csv", content, "text/csv"), "confirm": confirm}
    data.update(extra)
    return client.post(url, data, format="multipart")


def basket_500() -> bytes:
    lines = [HEADER]
    for i in range(500):
        qty = 100 + i  # every line different: no duplicates
        if i == 137:
            lines.append(f"ACCT1,NOPE,BUY,{qty},MARKET,,,DAY,,")  # unknown symbol
        elif i == 402:
            lines.append(f"ACCT1,MSFT,BUY,{qty},LIMIT,,,DAY,,")  # limit order without price
        else:
            symbol = ("AAPL", "MSFT", "XOM")[i % 3]
            side = "SELL" if i % 5 == 0 else "BUY"
            lines.append(f"ACCT1,{symbol},{side},{qty},MARKET,,,DAY,,line {i}")
    return ("\n".join(lines) + "\n").encode()


def test_500_lines_with_2_bad_preview_2_errors_and_create_498_in_one_basket(refdata):
    content = basket_500()
    preview = upload(refdata.pm1, content)
    assert preview.status_code == 200, preview.json()
    body = preview.json()
    assert body["line_count"] == 500
    assert body["valid_count"] == 498
    assert body["error_count"] == 2
    bad = [line for line in body["lines"] if not line["valid"]]
    # Header is line 1, so data line i sits on line i + 2.
    assert [(b["line"], b["errors"][0]["column"]) for b in bad] == [
        (139, "symbol"),
        (404, "limit_price"),
    ]
    assert "Unknown symbol 'NOPE'" in bad[0]["errors"][0]["reason"]
    assert "needs a limit price" in bad[1]["errors"][0]["reason"]
    assert not Order.objects.exists()  # a preview writes nothing

    confirmed = upload(
        refdata.pm1, content, confirm=True, name="Tech tilt", expected_sha256=body["sha256"]
    )
    assert confirmed.status_code == 201, confirmed.json()
    result = confirmed.json()
    basket = Basket.objects.get(pk=result["basket"]["id"])
    assert basket.kind == Basket.Kind.UPLOAD and basket.name == "Tech tilt"
    assert basket.line_count == 498 and basket.source_sha256 == body["sha256"]
    orders = Order.objects.filter(basket=basket)
    assert orders.count() == 498 == len(result["order_ids"])
    assert Order.objects.count() == 498
    assert set(orders.values_list("status", flat=True)) == {"STAGED"}
    assert sorted(orders.values_list("quantity", flat=True))[:2] == [Decimal(100), Decimal(101)]
    assert AuditEvent.objects.filter(action="order.create").count() == 498
    assert AuditEvent.objects.filter(action="basket.create", object_id=str(basket.pk)).exists()


def test_confirm_refuses_a_file_other_than_the_one_previewed(refdata):
    content = f"{HEADER}\nACCT1,AAPL,BUY,100,MARKET,,,DAY,,\n".encode()
    response = upload(refdata.pm1, content, confirm=True, expected_sha256="0" * 64)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "preview_mismatch"
    assert not Order.objects.exists()


def test_a_basket_with_no_valid_line_creates_nothing(refdata):
    content = f"{HEADER}\nACCT1,NOPE,BUY,100,MARKET,,,DAY,,\n".encode()
    response = upload(refdata.pm1, content, confirm=True)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "empty_basket"
    assert not Basket.objects.exists()


def test_wrong_header_names_the_columns(refdata):
    content = b"account,ticker,side,qty,order_type\nACCT1,AAPL,BUY,100,MARKET\n"
    response = upload(refdata.pm1, content)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "csv_rejected"
    assert "missing column(s): symbol, quantity" in error["message"]
    assert "unknown column(s): ticker, qty" in error["message"]


def test_wrong_encoding_is_a_clear_error(refdata):
    content = f"{HEADER}\nACCT1,AAPL,BUY,100,MARKET,,,DAY,,Müller\n".encode("latin-1")
    response = upload(refdata.pm1, content)
    assert response.status_code == 400
    assert "not UTF-8" in response.json()["error"]["message"]


def test_utf8_with_bom_empty_lines_and_lowercase_values_are_fine(refdata):
    content = (
        "\ufeff" + HEADER + "\n\n acct1 ,aapl,buy,100,market,,,day,,\n,,,,,,,,,\n\n"
        "ACCT1,MSFT,SELL,5,MARKET,,,,,Zürich\n"
    ).encode()
    # " acct1 " is not the account code ACCT1: codes are case-sensitive, cells are trimmed.
    body = upload(refdata.pm1, content).json()
    assert [line["line"] for line in body["lines"]] == [3, 6]
    assert body["lines"][0]["errors"] == [
        {"column": "account", "reason": "No account 'acct1' that you may trade."}
    ]
    assert body["lines"][1]["valid"]


def test_duplicate_lines_are_flagged(refdata):
    content = (
        f"{HEADER}\n"
        "ACCT1,AAPL,BUY,100,MARKET,,,DAY,,\n"
        "ACCT1,MSFT,BUY,100,MARKET,,,DAY,,\n"
        "ACCT1,aapl,BUY,100.0,MARKET,,,DAY,,\n"
    ).encode()
    body = upload(refdata.pm1, content).json()
    assert body["valid_count"] == 2
    assert body["lines"][2]["errors"] == [{"column": "", "reason": "Duplicate of line 2."}]


def test_too_many_lines_and_too_large_files_are_refused(refdata, monkeypatch):
    rows = "\n".join(f"ACCT1,AAPL,BUY,{100 + i},MARKET,,,DAY,," for i in range(MAX_CSV_LINES + 1))
    response = upload(refdata.pm1, f"{HEADER}\n{rows}\n".encode())
    assert response.status_code == 400
    assert f"more than {MAX_CSV_LINES:,} lines" in response.json()["error"]["message"]
    big = f"{HEADER}\n".encode() + b"ACCT1,AAPL,BUY,100,MARKET,,,DAY,," + b"x" * (2 * 1024 * 1024)
    response = upload(refdata.pm1, big)
    assert response.status_code == 400
    assert "limit is 2,097,152 bytes" in response.json()["error"]["message"]


def test_lines_for_an_account_the_pm_does_not_manage_are_line_errors(refdata):
    content = f"{HEADER}\nACCT2,AAPL,BUY,100,MARKET,,,DAY,,\nACCT1,AAPL,BUY,100,MARKET,,,DAY,,\n"
    body = upload(refdata.pm1, content.encode()).json()
    assert body["lines"][0]["errors"] == [
        {"column": "account", "reason": "No account 'ACCT2' that you may trade."}
    ]
    assert body["valid_count"] == 1


def test_only_pms_upload_baskets(refdata):
    content = f"{HEADER}\nACCT1,AAPL,BUY,100,MARKET,,,DAY,,\n".encode()
    assert upload(refdata.trader, content).status_code == 403


def test_same_checks_as_the_api(refdata):
    """Every rule of the API applies to a basket line, with the same message."""
    factories.security("BRK", price="500.00", lot="10")
    content = (
        f"{HEADER}\n"
        "ACCT1,BRK,BUY,15,MARKET,,,DAY,,\n"
        "ACCT1,AAPL,BUY,0,MARKET,,,DAY,,\n"
        "ACCT1,AAPL,BUY,100,LIMIT,190.001,,DAY,,\n"
        "ACCT1,AAPL,BUY,100,MARKET,,,GTD,,\n"
        "ACCT1,AAPL,HOLD,100,MARKET,,,DAY,,\n"
    ).encode()
    body = upload(refdata.pm1, content).json()
    columns = [line["errors"][0]["column"] for line in body["lines"]]
    assert columns == ["quantity", "quantity", "limit_price", "expire_date", "side"]
    assert "lot size 10" in body["lines"][0]["errors"][0]["reason"]


# --- Model rebalance ---------------------------------------------------------------------------


def portfolio(refdata):
    """ACCT1: 1,000 AAPL at 190 (190,000) + 200 XOM at 110 (22,000) + cash 288,000 = NAV 500,000.
    MSFT trades in lots of 10 for this test."""
    refdata.msft.lot_size = Decimal(10)
    refdata.msft.save()
    Position.objects.create(account=refdata.acct1, security=refdata.aapl, quantity=Decimal(1000))
    Position.objects.create(account=refdata.acct1, security=refdata.xom, quantity=Decimal(200))
    cash_adjust(
        account_id=refdata.acct1.pk,
        currency="USD",
        amount=Decimal(288_000),
        settle_date=timezone.now().date(),
        reason="subscription",
        ref="test",
        as_of=timezone.now(),
    )
    assert account_navs(account_ids=[refdata.acct1.pk])[refdata.acct1.pk] == Decimal(500_000)


def test_rebalance_of_a_known_portfolio_gives_the_expected_orders(refdata):
    portfolio(refdata)
    targets = b"account,symbol,target_weight_pct\nACCT1,AAPL,20\nACCT1,MSFT,50\n"
    # NAV 500,000. AAPL: 20% = 100,000 / 190 = 526.3 shares, hold 1,000 -> sell 473.68 -> 473.
    # MSFT: 50% = 250,000 / 410 = 609.76 shares, hold 0 -> buy 609.76 -> lots of 10 -> 600.
    # XOM: not in the model -> target 0, hold 200 -> sell 200.
    body = upload(refdata.pm1, targets, url="/api/baskets/rebalance/").json()
    proposed = {
        (o["data"]["symbol"], o["data"].get("side"), o["data"].get("quantity"))
        for o in body["orders"]
    }
    assert proposed == {("AAPL", "SELL", "473"), ("MSFT", "BUY", "600"), ("XOM", "SELL", "200")}
    assert body["valid_count"] == 3 and body["error_count"] == 0
    assert not Order.objects.exists()

    confirmed = upload(refdata.pm1, targets, confirm=True, url="/api/baskets/rebalance/")
    assert confirmed.status_code == 201, confirmed.json()
    basket = Basket.objects.get(pk=confirmed.json()["basket"]["id"])
    assert basket.kind == Basket.Kind.REBALANCE
    created = {
        (o.security.symbol, o.side, o.quantity, o.order_type)
        for o in basket.orders.select_related("security")
    }
    assert created == {
        ("AAPL", "SELL", Decimal(473), "MARKET"),
        ("MSFT", "BUY", Decimal(600), "MARKET"),
        ("XOM", "SELL", Decimal(200), "MARKET"),
    }


def test_rebalance_skips_zero_orders_and_reports_bad_targets(refdata):
    portfolio(refdata)
    # AAPL 38% of 500,000 = 190,000 = exactly the 1,000 held: no order. XOM 4.4% = 22,000 = 200.
    targets = b"account,symbol,target_weight_pct\nACCT1,AAPL,38\nACCT1,XOM,4.4\nACCT2,AAPL,10\n"
    body = upload(refdata.pm1, targets, url="/api/baskets/rebalance/").json()
    assert body["valid_count"] == 0
    skipped = [o for o in body["orders"] if "skipped" in o["data"]]
    assert {o["data"]["symbol"] for o in skipped} == {"AAPL", "XOM"}
    assert body["lines"][2]["errors"] == [
        {"column": "account", "reason": "No account 'ACCT2' that you may trade."}
    ]
    over = upload(
        refdata.pm1,
        b"account,symbol,target_weight_pct\nACCT1,AAPL,70\nACCT1,XOM,40\nACCT1,MSFT,abc\n",
        url="/api/baskets/rebalance/",
    ).json()
    reasons = [e["reason"] for line in over["lines"] for e in line["errors"]]
    assert "The weights of ACCT1 add up to 110%." in reasons
    assert "A number (percent of NAV) is required." in reasons
    assert over["orders"] == []  # an account with a bad model line is not rebalanced at all


def test_rebalance_nets_open_orders_and_shows_what_compliance_would_say(refdata):
    from compliance.models import RuleKind
    from compliance.services import restricted_entry_add
    from tests.compliance.conftest import make_rule, place

    portfolio(refdata)
    make_rule(refdata.compliance, RuleKind.RESTRICTED_LIST)
    now = timezone.now()
    msft = {"security_id": refdata.msft.pk, "reason": "MNPI", "start_date": now.date()}
    restricted_entry_add(actor=refdata.compliance, as_of=now, **msft)
    # All of XOM already has a sell working: the rebalance must not sell it again.
    place(refdata.pm1, refdata.acct1, "XOM", "SELL", 200, as_of=now)
    targets = b"account,symbol,target_weight_pct\nACCT1,AAPL,20\nACCT1,MSFT,50\n"
    body = upload(refdata.pm1, targets, url="/api/baskets/rebalance/").json()
    orders = {o["data"]["symbol"]: o["data"] for o in body["orders"]}
    assert orders["XOM"]["open_quantity"] == "-200" and "side" not in orders["XOM"]
    assert "open orders already reach the target" in orders["XOM"]["skipped"]
    assert body["compliance"] == {"PASS": 1, "WARN": 0, "BLOCK": 1}
    # The blocking line comes first, with its reason.
    first = body["orders"][0]["data"]
    assert (first["symbol"], first["compliance"]) == ("MSFT", "BLOCK")
    assert "restricted list" in first["compliance_reasons"]
    assert orders["AAPL"]["compliance"] == "PASS"
    assert (orders["AAPL"]["current_weight_pct"], orders["AAPL"]["drift_pct"]) == ("38", "18")

    confirmed = upload(refdata.pm1, targets, confirm=True, url="/api/baskets/rebalance/")
    assert confirmed.status_code == 201, confirmed.json()
    assert confirmed.json()["compliance"] == body["compliance"]
    basket = Basket.objects.get(pk=confirmed.json()["basket"]["id"])
    # The what-if is the verdict the real submission gets.
    assert dict(basket.orders.values_list("security__symbol", "compliance_status")) == {
        "AAPL": "PASS",
        "MSFT": "BLOCK",
    }
    assert Order.objects.filter(security=refdata.xom).count() == 1


def test_rebalance_drift_downloads_as_csv(refdata):
    import csv
    import io

    portfolio(refdata)
    targets = b"account,symbol,target_weight_pct\nACCT1,AAPL,20\nACCT1,MSFT,50\n"
    response = upload(refdata.pm1, targets, url="/api/baskets/rebalance/drift.csv")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert "rebalance-drift.csv" in response["Content-Disposition"]
    rows = {r["symbol"]: r for r in csv.DictReader(io.StringIO(response.content.decode()))}
    # NAV 500,000: AAPL 1,000 x 190 = 38% against a 20% target; XOM, not in the model, 0%.
    assert (rows["AAPL"]["target_weight_pct"], rows["AAPL"]["current_weight_pct"]) == ("20", "38")
    assert (rows["AAPL"]["drift_pct"], rows["AAPL"]["side"], rows["AAPL"]["quantity"]) == (
        "18",
        "SELL",
        "473",
    )
    assert (rows["XOM"]["target_weight_pct"], rows["XOM"]["side"]) == ("0", "SELL")
    assert rows["MSFT"]["current_weight_pct"] == "0"
    assert not Order.objects.exists()
    # Another PM's account is refused line by line (as in the preview): no rows of it.
    other = upload(refdata.pm2, targets, url="/api/baskets/rebalance/drift.csv")
    assert other.status_code == 200 and "AAPL" not in other.content.decode()


def test_rebalance_values_a_bond_per_100_plus_accrued_and_runs_the_fat_finger_rule(refdata):
    """A bond's target quantity is face: 10% of a 500,000 NAV is 50,000 of dirty value, about
    49,000 face at 99.50 plus accrued (as shares it was 502). A 246,000 MSFT buy over a 200,000
    fat-finger limit is BLOCK in the preview (it used to show OK), first, counted at the top,
    and the confirm answer carries the same counts."""

    from compliance.models import RuleKind
    from oms.money import Terms
    from tests.compliance.conftest import make_rule

    portfolio(refdata)
    bond = factories.bond("UST30")
    make_rule(refdata.compliance, RuleKind.ORDER_SIZE, {"max_notional": "200000"})
    targets = b"account,symbol,target_weight_pct\nACCT1,AAPL,20\nACCT1,MSFT,50\nACCT1,UST30,10\n"
    body = upload(refdata.pm1, targets, url="/api/baskets/rebalance/").json()
    orders = {o["data"]["symbol"]: o["data"] for o in body["orders"]}
    unit = Terms.of(bond).unit_value(Decimal("99.50"), timezone.now().date())
    assert Decimal(orders["UST30"]["quantity"]) == (Decimal(50_000) / unit).to_integral_value(
        rounding="ROUND_DOWN"
    )
    assert 48_000 < Decimal(orders["UST30"]["quantity"]) < 50_300
    assert orders["UST30"]["compliance"] == "PASS"
    # MSFT: 50% of 500,000 = 250,000 / 410 = 609.76 -> 600 (lots of 10) x 410 = 246,000.
    assert (orders["MSFT"]["quantity"], orders["MSFT"]["compliance"]) == ("600", "BLOCK")
    assert body["orders"][0]["data"]["symbol"] == "MSFT"
    assert body["compliance"] == {"PASS": 3, "WARN": 0, "BLOCK": 1}
    confirmed = upload(refdata.pm1, targets, confirm=True, url="/api/baskets/rebalance/")
    assert confirmed.status_code == 201, confirmed.json()
    assert confirmed.json()["compliance"] == body["compliance"]
    basket = Basket.objects.get(pk=confirmed.json()["basket"]["id"])
    assert basket.orders.get(security=refdata.msft).compliance_status == "BLOCK"
