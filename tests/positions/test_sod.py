"""Start of day: the custodian CSV through the command and the Operations upload page."""

from datetime import UTC, date, datetime
from decimal import Decimal as D

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.core.management.base import CommandError

from audit.models import AuditEvent
from positions.models import CashBalance, Position
from positions.selectors import reconcile_differences
from positions.services import position_fill_apply
from positions.sod import sod_load

pytestmark = pytest.mark.django_db

AS_OF = datetime(2025, 6, 3, 6, tzinfo=UTC)

GOOD = """type,account,security,currency,quantity,avg_cost,amount
POS,ACCT1,AAPL,USD,1500,150.25,
POS,C-ACCT2,MSFT,,-200,401.10,
CASH,ACCT1,,USD,,,"1,000,000.00"
CASH,ACCT2,,EUR,,,2500.5
"""

BAD = """type,account,security,currency,quantity,avg_cost,amount
POS,ACCT1,AAPL,USD,1500,150.25,
POS,NOPE,AAPL,USD,1,1,
POS,ACCT1,ZZZZ,USD,1,1,
POS,ACCT1,MSFT,EUR,1,1,
POS,ACCT1,XOM,USD,ten,1,
POS,ACCT1,AAPL,USD,5,1,
CASH,ACCT1,,usdx,,,1
CASH,ACCT1,,USD,,,
FOO,ACCT1,,,,,
POS,ACCT1,XOM,USD,1,-3,
"""


def test_command_loads_a_valid_file(tmp_path, refdata):
    path = tmp_path / "sod.csv"
    path.write_text(GOOD)
    call_command("positions_load_sod", str(path))
    aapl = Position.objects.get(account=refdata.acct1, security=refdata.aapl)
    assert (aapl.quantity, aapl.avg_cost, aapl.cost_basis) == (D(1500), D("150.25"), D("225375"))
    msft = Position.objects.get(account=refdata.acct2, security=refdata.msft)
    assert (msft.quantity, msft.opening_quantity) == (D(-200), D(-200))
    usd = CashBalance.objects.get(account=refdata.acct1, currency="USD")
    assert (usd.settled, usd.projected, usd.opening_settled) == (D(1_000_000),) * 3
    assert CashBalance.objects.get(account=refdata.acct2, currency="EUR").settled == D("2500.5")
    assert reconcile_differences() == []


def test_every_bad_line_is_reported_with_its_number_and_nothing_loads(tmp_path, refdata, capsys):
    path = tmp_path / "bad.csv"
    path.write_text(BAD)
    with pytest.raises(CommandError):
        call_command("positions_load_sod", str(path))
    err = capsys.readouterr().err
    for expected in (
        "line 3: unknown account 'NOPE'",
        "line 4: unknown security 'ZZZZ'",
        "line 5: MSFT trades in USD, not EUR",
        "line 6: quantity 'ten' is not a number",
        "line 7: ACCT1 AAPL already given on line 2",
        "line 8: currency 'USDX' is not an ISO code",
        "line 9: amount is required",
        "line 10: type must be POS or CASH",
        "line 11: avg_cost cannot be negative",
    ):
        assert expected in err
    assert "line 2" not in err.replace("on line 2", "")
    assert not Position.objects.exists()


def test_bad_header_is_refused(tmp_path, refdata, capsys):
    path = tmp_path / "h.csv"
    path.write_text("kind,acct\nPOS,ACCT1\n")
    with pytest.raises(CommandError):
        call_command("positions_load_sod", str(path), "--dry-run")
    assert "line 1: header lacks type, account" in capsys.readouterr().err


def test_next_day_load_replaces_opening_keeps_pending_cash_and_reconciles(refdata):
    sod_load(text=GOOD, as_of=AS_OF)
    # During the day: a buy settling tomorrow, and a sale of all the MSFT short... covered.
    for ref, sec, side, qty, price, settle in (
        ("d1", refdata.aapl, "BUY", "100", "160", date(2025, 6, 4)),
        ("d2", refdata.xom, "BUY", "10", "100", date(2025, 6, 3)),
    ):
        position_fill_apply(
            account_id=refdata.acct1.pk,
            security_id=sec.pk,
            side=side,
            quantity=D(qty),
            price=D(price),
            trade_date=date(2025, 6, 3),
            settle_date=settle,
            fill_ref=ref,
            as_of=AS_OF,
        )
    assert reconcile_differences() == []
    # Next morning the custodian reports AAPL 1600 (the buy has not settled, but holdings are
    # on trade date) and settled cash that already reflects the XOM purchase; XOM is omitted.
    next_day = """type,account,security,currency,quantity,avg_cost,amount
POS,ACCT1,AAPL,USD,1600,150.859375,
CASH,ACCT1,,USD,,,999000
"""
    sod_load(text=next_day, as_of=datetime(2025, 6, 4, 5, tzinfo=UTC))
    aapl = Position.objects.get(account=refdata.acct1, security=refdata.aapl)
    assert (aapl.quantity, aapl.realized_pnl) == (D(1600), 0)
    assert Position.objects.get(account=refdata.acct1, security=refdata.xom).quantity == 0
    usd = CashBalance.objects.get(account=refdata.acct1, currency="USD")
    # The AAPL buy settles on the 4th, the load's date: settled before the file replaced it.
    assert (usd.settled, usd.projected) == (D(999000), D(999000))
    assert reconcile_differences() == []
    position_fill_apply(
        account_id=refdata.acct1.pk,
        security_id=refdata.aapl.pk,
        side="SELL",
        quantity=D(600),
        price=D(170),
        trade_date=date(2025, 6, 4),
        settle_date=date(2025, 6, 5),
        fill_ref="d3",
        as_of=datetime(2025, 6, 4, 14, tzinfo=UTC),
    )
    aapl.refresh_from_db()
    assert aapl.realized_pnl == D(600) * (D(170) - D("150.859375"))
    assert reconcile_differences() == []


def test_upload_page_is_for_operations(client, refdata):
    client.force_login(refdata.pm1)
    assert client.get("/positions/start-of-day/").status_code == 403
    client.force_login(refdata.ops)
    assert client.get("/positions/start-of-day/").status_code == 200

    bad = client.post(
        "/positions/start-of-day/", {"file": SimpleUploadedFile("bad.csv", BAD.encode())}
    )
    assert bad.status_code == 200
    page = bad.content.decode()
    assert "Nothing was loaded" in page and "line 3: unknown account" in page
    assert not Position.objects.exists()

    dry = client.post(
        "/positions/start-of-day/",
        {"file": SimpleUploadedFile("sod.csv", GOOD.encode()), "dry_run": "on"},
        follow=True,
    )
    assert "is valid: 2 position(s), 2 cash line(s)" in dry.content.decode()
    assert not Position.objects.exists()

    done = client.post(
        "/positions/start-of-day/",
        {"file": SimpleUploadedFile("sod.csv", GOOD.encode())},
        follow=True,
    )
    assert "Loaded sod.csv: 2 position(s), 2 cash balance(s)" in done.content.decode()
    assert Position.objects.get(account=refdata.acct1, security=refdata.aapl).quantity == 1500
    event = AuditEvent.objects.get(action="positions.opening_load")
    assert event.actor_id == refdata.ops.pk and event.after["source"] == "sod.csv"


def test_bust_of_a_fill_from_before_the_opening_load_acts_as_the_opposite_trade(refdata):
    args = {
        "account_id": refdata.acct1.pk,
        "security_id": refdata.aapl.pk,
        "side": "BUY",
        "price": D(150),
        "trade_date": date(2025, 6, 3),
        "settle_date": date(2025, 6, 4),
        "fill_ref": "old",
    }
    position_fill_apply(quantity=D(100), as_of=AS_OF, **args)
    sod_load(
        text="type,account,security,quantity,avg_cost\nPOS,ACCT1,AAPL,100,150\n",
        as_of=datetime(2025, 6, 4, 5, tzinfo=UTC),
    )
    position_fill_apply(
        account_id=refdata.acct1.pk,
        security_id=refdata.aapl.pk,
        side="BUY",
        quantity=D(50),
        price=D(160),
        trade_date=date(2025, 6, 4),
        settle_date=date(2025, 6, 5),
        fill_ref="new",
        as_of=datetime(2025, 6, 4, 13, tzinfo=UTC),
    )
    position_fill_apply(quantity=D(-100), as_of=datetime(2025, 6, 4, 14, tzinfo=UTC), **args)
    aapl = Position.objects.get(account=refdata.acct1, security=refdata.aapl)
    # 150 held at (100*150 + 50*160)/150; the reversal sells 100 at 150 against that average.
    avg = (D(15000) + D(8000)) / D(150)
    assert aapl.quantity == 50
    assert aapl.realized_pnl == (D(100) * (D(150) - avg)).quantize(D("0.00000001"))
    assert reconcile_differences() == []
