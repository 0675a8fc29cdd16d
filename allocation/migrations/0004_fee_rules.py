from datetime import date
from decimal import Decimal

import django.contrib.postgres.fields
import django.core.validators
from django.db import migrations, models


# Two rows of one fee code may not be in force on the same day (a fee would be charged twice).
# An exclusion constraint would need the btree_gist extension, which the embedded Postgres
# (pgserver) does not ship; a trigger does the same, serialised per code by an advisory lock.
NO_OVERLAP = """
CREATE OR REPLACE FUNCTION allocation_feerule_no_overlap() RETURNS trigger AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('allocation_feerule:' || NEW.code));
    IF EXISTS (
        SELECT 1 FROM allocation_feerule
        WHERE code = NEW.code AND id <> NEW.id
          AND daterange(valid_from, valid_to, '[)') && daterange(NEW.valid_from, NEW.valid_to, '[)')
    ) THEN
        RAISE EXCEPTION 'fee rule % overlaps another period of the same code', NEW.code
            USING ERRCODE = 'exclusion_violation';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER allocation_feerule_no_overlap
    BEFORE INSERT OR UPDATE ON allocation_feerule
    FOR EACH ROW EXECUTE FUNCTION allocation_feerule_no_overlap();
"""
NO_OVERLAP_REVERSE = """
DROP TRIGGER IF EXISTS allocation_feerule_no_overlap ON allocation_feerule;
DROP FUNCTION IF EXISTS allocation_feerule_no_overlap();
"""

# US national securities exchanges. The scope is the security's listing exchange: Section 31
# and the TAF also cover off-exchange sales of these securities, which it stands for too.
US_EXCHANGES = [
    "XNYS",
    "XNAS",
    "ARCX",
    "XASE",
    "BATS",
    "BATY",
    "EDGA",
    "EDGX",
    "IEXG",
    "MEMX",
    "XBOS",
    "XPHL",
    "XCHI",
    "XCIS",
]
US_EQUITY = ["EQUITY", "ETF"]

# The figures, each with its source. Periods are [valid_from, valid_to): valid_to is the first
# day a figure no longer applies. Figures after these dates are Operations' to enter (admin).

# US SEC Section 31 fee: a rate of the proceeds of covered sales (sells and short sells).
# $X per million is X / 100 basis points.
SEC_FEE = {
    "code": "SEC_FEE",
    "name": "SEC Section 31 transaction fee",
    "side": "SELL",
    "exchange_mics": US_EXCHANGES,
    "asset_classes": US_EQUITY,
    "basis": "BPS",
    "currency": "USD",
}
# FINRA Trading Activity Fee on sales of covered equity securities: per share sold, capped per
# trade (here: per allocation). FINRA By-Laws, Schedule A, Section 1(b)(2).
FINRA_TAF = {
    "code": "FINRA_TAF",
    "name": "FINRA Trading Activity Fee",
    "side": "SELL",
    "exchange_mics": US_EXCHANGES,
    "asset_classes": US_EQUITY,
    "basis": "PER_UNIT",
    "currency": "USD",
}
# UK Stamp Duty Reserve Tax: 0.5% of the consideration on agreements to buy UK shares. The tax
# follows the issuer (GB ISIN), not the venue; scoped here to London-listed shares. ETFs are
# exempt (from 2014-04-30) and so are AIM shares (from 2014-04-28): this project's data does
# not tell AIM apart from XLON.
UK_SDRT = {
    "code": "UK_SDRT",
    "name": "UK Stamp Duty Reserve Tax",
    "side": "BUY",
    "exchange_mics": ["XLON"],
    "isin_countries": ["GB"],
    "asset_classes": ["EQUITY"],
    "basis": "BPS",
    "currency": "GBP",
}
# French financial transaction tax (taxe sur les transactions financieres, CGI art. 235 ter ZD)
# on acquisitions of shares of French companies worth over EUR 1bn on 1 December of the year
# before (the yearly BOFiP list, not modelled here).
FR_FTT = {
    "code": "FR_FTT",
    "name": "French financial transaction tax",
    "side": "BUY",
    "exchange_mics": ["XPAR"],
    "isin_countries": ["FR"],
    "asset_classes": ["EQUITY"],
    "basis": "BPS",
    "currency": "EUR",
}
# Italian financial transaction tax (Legge 228/2012 art. 1 c. 491) on acquisitions of shares of
# Italian companies, at the regulated-market rate (OTC trades pay double: not modelled).
# Companies under EUR 500m average capitalisation are exempt (the yearly MEF list, not
# modelled), and the tax is due on each buyer's net daily balance, which a per-allocation
# figure approximates.
IT_FTT = {
    "code": "IT_FTT",
    "name": "Italian financial transaction tax",
    "side": "BUY",
    "exchange_mics": ["XMIL"],
    "isin_countries": ["IT"],
    "asset_classes": ["EQUITY"],
    "basis": "BPS",
    "currency": "EUR",
}

SEED = [
    # $8.00 per million from 2023-02-27 (SEC Fee Rate Advisory #2 for fiscal 2023).
    SEC_FEE
    | {
        "rate": Decimal("0.08"),
        "valid_from": date(2023, 2, 27),
        "valid_to": date(2024, 5, 22),
        "source": "SEC Fee Rate Advisory #2, FY2023: $8.00 per million from 2023-02-27",
    },
    # $27.80 per million from 2024-05-22 (Order Making FY2024 Annual Adjustments to
    # Transaction Fee Rates, Release 34-99973 of 2024-04-17, 89 FR 29402).
    SEC_FEE
    | {
        "rate": Decimal("0.278"),
        "valid_from": date(2024, 5, 22),
        "valid_to": date(2025, 5, 14),
        "source": "SEC Release 34-99973 (2024-04-17): $27.80 per million from 2024-05-22",
    },
    # $0.00 per million from 2025-05-14: the SEC had collected its whole FY2025 appropriation
    # (announced 2025-04-08). The FY2026 order (Release 34-104909 of 2026-02-27) sets the next
    # rate; its figure was not to hand when this was written, so this row is open-ended and
    # Operations ends it and enters the new one.
    SEC_FEE
    | {
        "rate": Decimal("0"),
        "valid_from": date(2025, 5, 14),
        "valid_to": None,
        "source": "SEC fee rate advisory (2025-04-08): $0.00 per million from 2025-05-14",
    },
    # $0.000166 per share, at most $8.30 per trade, from 2024-01-01 (the last step of the fee
    # schedule FINRA filed in 2020). Earlier TAF rates are not seeded.
    FINRA_TAF
    | {
        "rate": Decimal("0.000166"),
        "maximum": Decimal("8.30"),
        "valid_from": date(2024, 1, 1),
        "valid_to": None,
        "source": "FINRA By-Laws Sch. A s.1(b)(2): $0.000166/share, max $8.30, from 2024-01-01",
    },
    # 0.5% since SDRT began on 1986-10-27 (Finance Act 1986 s.87).
    UK_SDRT
    | {
        "rate": Decimal("50"),
        "valid_from": date(1986, 10, 27),
        "valid_to": None,
        "source": "Finance Act 1986 s.87: 0.5% from 1986-10-27",
    },
    # 0.2% from 2012-08-01 (loi n. 2012-354 de finances rectificative pour 2012).
    FR_FTT
    | {
        "rate": Decimal("20"),
        "valid_from": date(2012, 8, 1),
        "valid_to": date(2017, 1, 1),
        "source": "Loi 2012-354 (LFR 2012): 0.2% from 2012-08-01",
    },
    # 0.3% from 2017-01-01 (loi n. 2016-1917 de finances pour 2017). It applied until the rise
    # of 2025-04-01, through Q1 2025 (the 2025 finance law was only enacted on 2025-02-14).
    FR_FTT
    | {
        "rate": Decimal("30"),
        "valid_from": date(2017, 1, 1),
        "valid_to": date(2025, 4, 1),
        "source": "Loi 2016-1917 (LF 2017): 0.3% from 2017-01-01",
    },
    # 0.4% on acquisitions from 2025-04-01 (loi n. 2025-127 du 14 fevrier 2025 de finances pour
    # 2025).
    FR_FTT
    | {
        "rate": Decimal("40"),
        "valid_from": date(2025, 4, 1),
        "valid_to": None,
        "source": "Loi 2025-127 (LF 2025): 0.4% from 2025-04-01",
    },
    # 0.12% on regulated markets in 2013, from 2013-03-01 (L. 228/2012 art. 1 c. 491).
    IT_FTT
    | {
        "rate": Decimal("12"),
        "valid_from": date(2013, 3, 1),
        "valid_to": date(2014, 1, 1),
        "source": "Legge 228/2012 art.1 c.491: 0.12% (regulated markets) from 2013-03-01",
    },
    # 0.1% on regulated markets from 2014-01-01 (L. 228/2012 art. 1 c. 491).
    IT_FTT
    | {
        "rate": Decimal("10"),
        "valid_from": date(2014, 1, 1),
        "valid_to": None,
        "source": "Legge 228/2012 art.1 c.491: 0.1% (regulated markets) from 2014-01-01",
    },
]


def seed(apps, schema_editor):
    FeeRule = apps.get_model("allocation", "FeeRule")
    for row in SEED:
        FeeRule.objects.get_or_create(code=row["code"], valid_from=row["valid_from"], defaults=row)


class Migration(migrations.Migration):
    dependencies = [
        ("allocation", "0003_booking_ledger"),
    ]

    operations = [
        migrations.CreateModel(
            name="FeeRule",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "code",
                    models.CharField(
                        db_index=True,
                        help_text="The fee's name in breakdowns, e.g. SEC_FEE, UK_SDRT",
                        max_length=32,
                        validators=[
                            django.core.validators.RegexValidator(
                                "^[A-Z][A-Z0-9_]*$", "Capitals, digits and _ (SEC_FEE)."
                            )
                        ],
                    ),
                ),
                ("name", models.CharField(max_length=200)),
                (
                    "side",
                    models.CharField(
                        choices=[
                            ("BUY", "Buys (buy, buy to cover)"),
                            ("SELL", "Sells (sell, sell short)"),
                        ],
                        max_length=4,
                    ),
                ),
                (
                    "exchange_mics",
                    django.contrib.postgres.fields.ArrayField(
                        base_field=models.CharField(
                            max_length=4,
                            validators=[
                                django.core.validators.RegexValidator(
                                    "^[A-Z0-9]{4}$", "A 4-character MIC."
                                )
                            ],
                        ),
                        blank=True,
                        default=list,
                        help_text="Exchange MICs, comma-separated (XNYS,XNAS); empty: any exchange",
                        size=None,
                    ),
                ),
                (
                    "isin_countries",
                    django.contrib.postgres.fields.ArrayField(
                        base_field=models.CharField(
                            max_length=2,
                            validators=[
                                django.core.validators.RegexValidator(
                                    "^[A-Z]{2}$", "A 2-letter country code."
                                )
                            ],
                        ),
                        blank=True,
                        default=list,
                        help_text="ISIN country prefixes, comma-separated (GB); empty: any ISIN",
                        size=None,
                    ),
                ),
                (
                    "asset_classes",
                    django.contrib.postgres.fields.ArrayField(
                        base_field=models.CharField(
                            choices=[
                                ("EQUITY", "Equity"),
                                ("ETF", "ETF"),
                                ("BOND", "Bond"),
                                ("CRYPTO", "Crypto"),
                                ("FUND", "Fund"),
                                ("OTHER", "Other"),
                            ],
                            max_length=16,
                        ),
                        help_text="Asset classes charged (never crypto)",
                        size=None,
                    ),
                ),
                (
                    "basis",
                    models.CharField(
                        choices=[
                            ("BPS", "Basis points of gross"),
                            ("PER_UNIT", "Per share or unit"),
                        ],
                        max_length=8,
                    ),
                ),
                (
                    "rate",
                    models.DecimalField(
                        decimal_places=8,
                        help_text="Basis points of gross (0.278 is $27.80 per million), or currency per unit",
                        max_digits=28,
                    ),
                ),
                (
                    "minimum",
                    models.DecimalField(
                        blank=True,
                        decimal_places=8,
                        help_text="Per allocation, in the currency",
                        max_digits=28,
                        null=True,
                    ),
                ),
                (
                    "maximum",
                    models.DecimalField(
                        blank=True,
                        decimal_places=8,
                        help_text="Per allocation, in the currency",
                        max_digits=28,
                        null=True,
                    ),
                ),
                (
                    "currency",
                    models.CharField(
                        help_text="Currency of a per-unit rate, the minimum and the maximum",
                        max_length=3,
                        validators=[
                            django.core.validators.RegexValidator("^[A-Z]{3}$", "An ISO 4217 code.")
                        ],
                    ),
                ),
                ("valid_from", models.DateField(help_text="First trade date the rule applies to")),
                (
                    "valid_to",
                    models.DateField(
                        blank=True,
                        help_text="First trade date it no longer applies to; empty: until further notice",
                        null=True,
                    ),
                ),
                (
                    "source",
                    models.CharField(
                        blank=True,
                        help_text="Where the figure comes from (notice, law, date)",
                        max_length=300,
                    ),
                ),
            ],
            options={
                "ordering": ["code", "-valid_from"],
                "constraints": [
                    models.CheckConstraint(
                        condition=models.Q(("rate__gte", 0)), name="fee_rule_rate_nonneg"
                    ),
                    models.CheckConstraint(
                        condition=models.Q(
                            ("valid_to__isnull", True),
                            ("valid_to__gt", models.F("valid_from")),
                            _connector="OR",
                        ),
                        name="fee_rule_valid_to_after_from",
                    ),
                    models.CheckConstraint(
                        condition=models.Q(
                            models.Q(
                                ("minimum__isnull", True), ("minimum__gte", 0), _connector="OR"
                            ),
                            models.Q(
                                ("maximum__isnull", True), ("maximum__gte", 0), _connector="OR"
                            ),
                            models.Q(
                                ("minimum__isnull", True),
                                ("maximum__isnull", True),
                                ("maximum__gte", models.F("minimum")),
                                _connector="OR",
                            ),
                        ),
                        name="fee_rule_min_max",
                    ),
                    models.CheckConstraint(
                        condition=models.Q(
                            models.Q(("asset_classes", []), _negated=True),
                            models.Q(("asset_classes__contains", ["CRYPTO"]), _negated=True),
                        ),
                        name="fee_rule_asset_classes_not_crypto",
                    ),
                    models.CheckConstraint(
                        condition=models.Q(
                            ("exchange_mics", []), ("isin_countries", []), _negated=True
                        ),
                        name="fee_rule_has_market",
                    ),
                ],
            },
        ),
        migrations.RunSQL(NO_OVERLAP, NO_OVERLAP_REVERSE),
        migrations.RunPython(seed, migrations.RunPython.noop),
    ]
