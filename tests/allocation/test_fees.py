"""Commission and fees of one allocation: the broker's rates and the FeeRule rows in force."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from allocation.fees import Charges, charges_for, fee_rules_in_force
from allocation.models import FeeRule
from audit.models import AuditEvent
from oms.errors import DomainError
from oms.roles import roles_sync
from tests import factories

D = Decimal
pytestmark = pytest.mark.django_db

IN_2024 = date(2024, 6, 3)  # SEC fee $27.80 per million, TAF $0.000166 per share (max $8.30)
IN_2025 = date(2025, 6, 2)  # French FTT 0.4%


def listed(symbol, *, mic, isin=None, currency="USD", asset_class="EQUITY", price="100.00"):
    security = factories.security(
        symbol, price=price, currency=currency, asset_class=asset_class, cycle=2
    )
    security.exchange_mic = mic
    security.isin = isin
    security.save(update_fields=["exchange_mic", "isin"])
    return security


def charges(security, side, quantity, gross, trade_date, broker=None, **kw) -> Charges:
    return charges_for(
        security=security,
        side=side,
        quantity=D(quantity),
        gross=D(gross),
        trade_date=trade_date,
        broker=broker,
        **kw,
    )


@pytest.fixture
def us():
    return listed("USX", mic="XNYS", isin="US0000000001")


@pytest.mark.parametrize("side", ["SELL", "SELL_SHORT"])
def test_sec_fee_and_taf_on_a_us_sell(us, broker, side):
    result = charges(us, side, "1000", "190000.00", IN_2024, broker)
    # Broker: 5 bps of 190,000 = 95.00, plus 1,000 x 0.01 = 10.00.
    assert result.commission == D("105.00")
    # SEC: 190,000 x 27.80 / 1,000,000 = 5.282; TAF: 1,000 x 0.000166 = 0.166.
    assert result.breakdown == {"SEC_FEE": D("5.28"), "FINRA_TAF": D("0.17")}
    assert result.fees == D("5.45")
    assert all(v.as_tuple().exponent == -2 for v in [result.commission, result.fees])


def test_a_us_listed_share_with_a_foreign_isin_pays_them_too(broker):
    foreign = listed("IEX", mic="XNYS", isin="IE0000000001")
    result = charges(foreign, "SELL", "1000", "190000.00", IN_2024, broker)
    assert set(result.breakdown) == {"SEC_FEE", "FINRA_TAF"}


@pytest.mark.parametrize("side", ["BUY", "BUY_TO_COVER"])
def test_no_fees_on_a_us_buy(us, broker, side):
    result = charges(us, side, "1000", "190000.00", IN_2024, broker)
    assert (result.fees, result.breakdown) == (D("0.00"), {})
    assert result.commission == D("105.00")


def test_none_on_a_euro_listed_share_sold():
    sap = listed("SAPX", mic="XETR", isin="DE0007164600", currency="EUR")
    french = listed("FRX", mic="XPAR", isin="FR0000000001", currency="EUR")
    for security in (sap, french):  # the FTT is on buys
        result = charges(security, "SELL", "1000", "210000.00", IN_2025)
        assert (result.fees, result.breakdown) == (D("0.00"), {})


@pytest.mark.parametrize("side", ["BUY", "SELL", "SELL_SHORT", "BUY_TO_COVER"])
def test_none_on_crypto(side, broker):
    btc = listed("BTCX", mic="XXXX", asset_class="CRYPTO", price="95000.00")
    # Even listed where the US fees apply: crypto is never charged them.
    odd = listed("ETHX", mic="XNAS", asset_class="CRYPTO", price="3200.00")
    for security in (btc, odd):
        result = charges(security, side, "2", "190000.00", IN_2024, broker)
        assert (result.fees, result.breakdown) == (D("0.00"), {})


def test_sdrt_on_a_uk_buy_only():
    shel = listed("SHELX", mic="XLON", isin="GB00BP6MXD84", currency="GBP")
    bought = charges(shel, "BUY", "1000", "27000.00", IN_2025)
    assert bought.breakdown == {"UK_SDRT": D("135.00")}  # 0.5%
    assert bought.fees == D("135.00")
    assert charges(shel, "SELL", "1000", "27000.00", IN_2025).breakdown == {}
    # Listed in London but not a UK company: no SDRT.
    jersey = listed("JEX", mic="XLON", isin="JE00B4T3BW64", currency="GBP")
    assert charges(jersey, "BUY", "1000", "27000.00", IN_2025).breakdown == {}


def test_ftt_on_french_and_italian_buys():
    french = listed("FRX", mic="XPAR", isin="FR0000120271", currency="EUR")
    italian = listed("ITX", mic="XMIL", isin="IT0003128367", currency="EUR")
    assert charges(french, "BUY", "1000", "100000.00", IN_2025).breakdown == {"FR_FTT": D("400.00")}
    assert charges(italian, "BUY_TO_COVER", "1000", "100000.00", IN_2025).breakdown == {
        "IT_FTT": D("100.00")
    }
    # A Dutch company listed in Paris is not in the French tax's scope.
    dutch = listed("NLX", mic="XPAR", isin="NL0000235190", currency="EUR")
    assert charges(dutch, "BUY", "1000", "100000.00", IN_2025).breakdown == {}


def test_a_rate_change_applies_from_its_date():
    french = listed("FRX", mic="XPAR", isin="FR0000120271", currency="EUR")
    before = charges(french, "BUY", "1000", "100000.00", date(2025, 3, 31))
    after = charges(french, "BUY", "1000", "100000.00", date(2025, 4, 1))
    assert before.breakdown == {"FR_FTT": D("300.00")}  # 0.3% through 2025-03-31
    assert after.breakdown == {"FR_FTT": D("400.00")}  # 0.4% from 2025-04-01

    us = listed("USX", mic="XNAS", isin="US0000000001")
    million = "1000000.00"
    assert charges(us, "SELL", "1", million, date(2024, 5, 21)).breakdown["SEC_FEE"] == D("8.00")
    assert charges(us, "SELL", "1", million, date(2024, 5, 22)).breakdown["SEC_FEE"] == D("27.80")
    assert charges(us, "SELL", "1", million, date(2025, 5, 14)).breakdown["SEC_FEE"] == D("0.00")


def test_a_rule_does_not_apply_before_its_valid_from():
    us = listed("USX", mic="XNAS", isin="US0000000001")
    late_2023 = charges(us, "SELL", "1000", "1000000.00", date(2023, 12, 29))
    assert late_2023.breakdown == {"SEC_FEE": D("8.00")}  # no TAF row before 2024-01-01
    italian = listed("ITX", mic="XMIL", isin="IT0003128367", currency="EUR")
    assert charges(italian, "BUY", "1000", "100000.00", date(2013, 2, 28)).breakdown == {}
    assert charges(italian, "BUY", "1000", "100000.00", date(2013, 3, 1)).breakdown == {
        "IT_FTT": D("120.00")
    }


def test_taf_is_capped_at_its_maximum(us):
    result = charges(us, "SELL", "100000", "1000000.00", IN_2024)
    # 100,000 x 0.000166 = 16.60, capped at 8.30.
    assert result.breakdown == {"SEC_FEE": D("27.80"), "FINRA_TAF": D("8.30")}


def test_half_a_cent_rounds_up_and_a_minimum_holds(us):
    FeeRule.objects.create(
        code="TEST_FEE",
        name="Test fee",
        side="BUY",
        exchange_mics=["XNYS"],
        asset_classes=["EQUITY"],
        basis="PER_UNIT",
        rate=D("0.005"),
        minimum=D("0.02"),
        currency="USD",
        valid_from=date(2024, 1, 1),
    )
    assert charges(us, "BUY", "5", "500.00", IN_2024).breakdown == {"TEST_FEE": D("0.03")}
    assert charges(us, "BUY", "1", "100.00", IN_2024).breakdown == {"TEST_FEE": D("0.02")}
    # Nothing allocated: nothing charged, not even the minimum.
    assert charges(us, "BUY", "0", "0.00", IN_2024).breakdown == {"TEST_FEE": D("0.00")}


def test_a_per_share_rule_in_another_currency_is_refused():
    odd = listed("USGBP", mic="XNAS", isin="US0000000002", currency="GBP")
    with pytest.raises(DomainError) as err:
        charges(odd, "SELL", "1000", "100000.00", IN_2024)
    assert err.value.code == "fee_currency_mismatch"


def test_no_broker_no_commission_and_bad_input(us):
    assert charges(us, "BUY", "10", "1000.00", IN_2024).commission == D("0.00")
    with pytest.raises(DomainError):
        charges(us, "HOLD", "10", "1000.00", IN_2024)
    with pytest.raises(DomainError):
        charges(us, "SELL", "-10", "1000.00", IN_2024)


def test_one_query_per_call_or_none_with_the_rules_given(us, broker, django_assert_num_queries):
    with django_assert_num_queries(1):
        one = charges(us, "SELL", "1000", "190000.00", IN_2024, broker)
    with django_assert_num_queries(1):
        rules = fee_rules_in_force(side="SELL", trade_date=IN_2024)
    with django_assert_num_queries(0):
        again = charges(us, "SELL", "1000", "190000.00", IN_2024, broker, rules=rules)
        # Rules given for another side or date are filtered out, not charged.
        buys = charges(us, "BUY", "1000", "190000.00", IN_2024, broker, rules=rules)
        later = charges(us, "SELL", "1000", "190000.00", date(2023, 6, 1), broker, rules=rules)
    assert one == again
    assert buys.breakdown == {} and later.breakdown == {}


def _rule(**overrides):
    fields = {
        "code": "SEC_FEE",
        "name": "SEC fee",
        "side": "SELL",
        "exchange_mics": ["XNYS"],
        "asset_classes": ["EQUITY"],
        "basis": "BPS",
        "rate": D("0.5"),
        "currency": "USD",
        "valid_from": date(2024, 1, 1),
        "valid_to": date(2024, 2, 1),
    }
    return FeeRule(**(fields | overrides))


def test_the_table_refuses_overlapping_periods_of_one_code():
    # Seeded SEC_FEE rows cover 2023-02-27 onwards; 2024-01 overlaps the $8.00 row.
    with pytest.raises(ValidationError, match="in force for part of this period"):
        _rule().full_clean()
    with pytest.raises(IntegrityError), transaction.atomic():
        _rule().save()
    # Back to back with the first seeded row is fine.
    first = FeeRule.objects.filter(code="SEC_FEE").order_by("valid_from").first()
    _rule(valid_from=date(2022, 1, 1), valid_to=first.valid_from).full_clean()
    _rule(valid_from=date(2022, 1, 1), valid_to=first.valid_from).save()


@pytest.mark.parametrize(
    "overrides",
    [
        {"code": "NEW_FEE", "asset_classes": ["EQUITY", "CRYPTO"]},
        {"code": "NEW_FEE", "asset_classes": []},
        {"code": "NEW_FEE", "exchange_mics": [], "isin_countries": []},
        {"code": "NEW_FEE", "rate": D("-0.1")},
        {"code": "NEW_FEE", "valid_to": date(2024, 1, 1)},
        {"code": "NEW_FEE", "minimum": D("5"), "maximum": D("1")},
    ],
)
def test_the_table_refuses_bad_rules(overrides):
    with pytest.raises(IntegrityError), transaction.atomic():
        _rule(**overrides).save()


def test_an_admin_edit_is_audited(client, refdata):
    roles_sync()
    client.force_login(refdata.ops)
    rule = FeeRule.objects.get(code="SEC_FEE", valid_to=None)
    url = f"/admin/allocation/feerule/{rule.pk}/change/"
    assert client.get(url).status_code == 200
    form = {
        "code": rule.code,
        "name": rule.name,
        "side": rule.side,
        "exchange_mics": ",".join(rule.exchange_mics),
        "isin_countries": "",
        "asset_classes": rule.asset_classes,
        "basis": rule.basis,
        "rate": "0",
        "minimum": "",
        "maximum": "",
        "currency": "USD",
        "valid_from": rule.valid_from.isoformat(),
        "valid_to": "2026-04-01",
        "source": rule.source,
    }
    response = client.post(url, form)
    assert response.status_code == 302, response.content.decode()[:3000]
    rule.refresh_from_db()
    assert rule.valid_to == date(2026, 4, 1)
    event = AuditEvent.objects.filter(action="admin.change", object_type="allocation.feerule")
    event = event.latest("chain_seq")
    assert event.object_id == str(rule.pk) and event.actor_username == "ops1"
    assert event.before["valid_to"] is None and event.after["valid_to"] == "2026-04-01"

    # The next rate from the day after; a row overlapping it is a form error, not a 500.
    added = client.post(
        "/admin/allocation/feerule/add/",
        form | {"rate": "0.2", "valid_from": "2026-04-01", "valid_to": "", "source": "FY2026"},
    )
    assert added.status_code == 302, added.content.decode()[:3000]
    assert AuditEvent.objects.filter(action="admin.add", object_type="allocation.feerule").exists()
    clash = client.post(
        "/admin/allocation/feerule/add/",
        form | {"valid_from": "2026-06-01", "valid_to": ""},
    )
    assert clash.status_code == 200
    assert "in force for part of this period" in clash.content.decode()
    assert FeeRule.objects.filter(code="SEC_FEE", valid_from__gte=date(2026, 1, 1)).count() == 1
