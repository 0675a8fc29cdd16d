from datetime import date
from decimal import Decimal

from django.db import migrations
from django.db.models import F

# Indicative rates (units of USD per unit) so NAV converts before the first real FX feed.
SEED_RATES = {"EUR": Decimal("1.08"), "GBP": Decimal("1.27"), "CHF": Decimal("1.13")}


def forwards(apps, schema_editor):
    CashBalance = apps.get_model("positions", "CashBalance")
    FxRate = apps.get_model("positions", "FxRate")
    CashBalance.objects.update(projected=F("settled"))
    for currency, rate in SEED_RATES.items():
        FxRate.objects.get_or_create(
            base=currency, quote="USD", as_of_date=date(2000, 1, 1), defaults={"rate": rate}
        )


class Migration(migrations.Migration):
    dependencies = [("positions", "0002_ledger_cash_movements_fx")]
    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
