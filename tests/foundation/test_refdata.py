from decimal import Decimal

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from audit.models import AuditEvent
from oms.models import Account, Security
from oms.services import prices_import

pytestmark = pytest.mark.django_db


def test_demo_data_loads_once_and_again_changes_nothing():
    from django.contrib.auth.models import User

    from compliance.models import RestrictedEntry, Rule, RuleVersion
    from fixgateway.models import Broker
    from oms.demo import RULES
    from positions.models import CashBalance, Position

    call_command("seed_demo")
    assert Rule.objects.filter(active=True).count() == len(RULES)
    assert RuleVersion.objects.count() == len(RULES)
    assert RestrictedEntry.objects.filter(security__symbol="TSLA").exists()
    counts = (
        Security.objects.count(),
        Account.objects.count(),
        User.objects.count(),
        Position.objects.count(),
        CashBalance.objects.count(),
        Broker.objects.count(),
        RuleVersion.objects.count(),
    )
    assert counts[0] >= 300
    assert Security.objects.values("sector").distinct().count() >= 10
    assert counts[1] >= 8 and counts[5] >= 2
    assert counts[3] > 0 and counts[4] >= 8
    pm1 = set(Account.objects.filter(managers__username="pm1").values_list("code", flat=True))
    pm2 = set(Account.objects.filter(managers__username="pm2").values_list("code", flat=True))
    assert pm1 and pm2 and not (pm1 & pm2)
    for name in ["pm1", "pm2", "trader1", "compliance1", "ops1", "admin"]:
        assert User.objects.get(username=name).check_password("demo-pass-123")
    snapshot = list(Position.objects.order_by("pk").values_list("quantity", "avg_cost"))
    call_command("seed_demo")
    assert counts == (
        Security.objects.count(),
        Account.objects.count(),
        User.objects.count(),
        Position.objects.count(),
        CashBalance.objects.count(),
        Broker.objects.count(),
        RuleVersion.objects.count(),
    )
    assert snapshot == list(Position.objects.order_by("pk").values_list("quantity", "avg_cost"))


def test_price_import_applies_good_lines_and_reports_bad_ones_by_number(refdata):
    text = "symbol,price\nAAPL,195.50\nNOPE,10\nMSFT,abc\nXOM,-3\nMSFT,411.005\n\n"
    report = prices_import(text=text, as_of=timezone.now())
    assert report.applied == 1
    refdata.aapl.refresh_from_db()
    assert refdata.aapl.reference_price == Decimal("195.50")
    errors = "\n".join(report.errors)
    assert "line 4: price: 'abc' is not a number" in errors
    assert "line 5: price: must be greater than zero" in errors
    assert "NOPE: unknown symbol" in errors
    assert "MSFT: price 411.005 is off the tick size" in errors
    assert AuditEvent.objects.filter(action="security.prices_import").exists()


def test_import_prices_command_fails_loudly_on_bad_lines(tmp_path, refdata):
    path = tmp_path / "prices.csv"
    path.write_text("symbol,price\nAAPL,200.00\nMSFT,\n")
    with pytest.raises(CommandError, match="1 lines were rejected"):
        call_command("import_prices", str(path))
    refdata.aapl.refresh_from_db()
    assert refdata.aapl.reference_price == Decimal("200.00")
