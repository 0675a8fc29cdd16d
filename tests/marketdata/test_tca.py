"""TCA: the formulas on hand-computed examples, then the per-order and per-group figures from
the database (arrival rows, minute bars), and who sees what."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from marketdata import tca

D = Decimal
T0 = datetime(2026, 12, 1, 14, 30, tzinfo=UTC)


# -- formulas ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("side", "average", "benchmark", "bps"),
    [
        # A buy paying 100.10 against 100.00: 0.10 / 100 = 10 bps of cost.
        ("BUY", "100.10", "100.00", "10.00"),
        # A buy paying less than arrival gained: negative.
        ("BUY", "99.95", "100.00", "-5.00"),
        # A sell receiving 99.90 against 100.00 lost 10 bps: a cost, positive.
        ("SELL", "99.90", "100.00", "10.00"),
        # A sell above the benchmark gained.
        ("SELL", "100.05", "100.00", "-5.00"),
        ("SELL_SHORT", "49.75", "50.00", "50.00"),
        ("BUY_TO_COVER", "50.25", "50.00", "50.00"),
        # 190.37 against 190.00: 0.37 / 190 * 10,000 = 19.4736... -> 19.47.
        ("BUY", "190.37", "190.00", "19.47"),
    ],
)
def test_shortfall_signs_for_buys_and_sells(side, average, benchmark, bps):
    assert tca.shortfall_bps(side=side, average=D(average), benchmark=D(benchmark)) == D(bps)


def test_shortfall_is_unknown_without_a_fill_or_a_benchmark():
    assert tca.shortfall_bps(side="BUY", average=None, benchmark=D(100)) is None
    assert tca.shortfall_bps(side="BUY", average=D(100), benchmark=None) is None


def test_vwap_mid_weighting_and_rates():
    # (100 x 10 + 300 x 11) / 400 = 4,300 / 400 = 10.75
    assert tca.vwap([(D(100), D(10)), (D(300), D(11))]) == D("10.75")
    assert tca.vwap([]) is None
    assert tca.mid(D("99.98"), D("100.02")) == D("100.00")
    # 10 bps on 1,000 and -5 bps on 3,000 of notional: (10,000 - 15,000) / 4,000 = -1.25.
    assert tca.weighted_bps([(D(10), D(1000)), (D(-5), D(3000)), (None, D(50))]) == D("-1.25")
    assert tca.rate(3, 4) == D("75.00")
    assert tca.rate(0, 0) is None


# -- from the database -------------------------------------------------------------------------


def _flt(**kw):
    from marketdata.tca_selectors import TcaFilter

    return TcaFilter(date_from=date(2026, 12, 1), date_to=date(2026, 12, 1), **kw)


def test_order_figures_against_arrival_interval_vwap_and_close(refdata, scenario):
    from marketdata.tca_selectors import tca_orders

    rows = {r["side"]: r for r in tca_orders(user=refdata.trader, flt=_flt(), as_of=T0)}
    buy, sell = rows["BUY"], rows["SELL"]
    assert buy["arrival_desk"] == D("190.00") and buy["arrival_source"] == "feed"
    # No fills recorded: the interval runs from arrival to now (T0): the 14:30 bar only.
    assert buy["interval_vwap"] == D("190.00")
    assert buy["close"] == D("192.00")
    # Buy at 190.95: 0.95 / 190 = 50 bps over arrival; 0.95 / 190 vs VWAP too;
    # against the close 192: (190.95 - 192) / 192 = -54.6875 -> -54.69 (it beat the close).
    assert buy["shortfall_arrival_bps"] == D("50.00")
    assert buy["shortfall_vwap_bps"] == D("50.00")
    assert buy["shortfall_close_bps"] == D("-54.69")
    # Sell at 190.50 against 190.00: it received more: -26.32 (0.50 / 190 = 26.315...).
    assert sell["shortfall_arrival_bps"] == D("-26.32")
    assert buy["fill_rate"] == D("100.00")


def test_summaries_by_broker_and_pm_and_a_pm_sees_only_their_own(refdata, scenario):
    from marketdata.tca_selectors import tca_orders, tca_summary

    rows = tca_orders(user=refdata.trader, flt=_flt(), as_of=T0)
    (by_broker,) = tca_summary(rows, by="broker")
    # Notional 19,095 at +50 and 19,050 at -26.32: (954,750 - 501,396) / 38,145 = 11.885 -> 11.89
    assert by_broker["orders"] == 2 and by_broker["shortfall_arrival_bps"] == D("11.89")
    assert by_broker["reject_rate"] == D("0.00") and by_broker["fill_rate"] == D("100.00")
    by_pm = {r["pm"]: r for r in tca_summary(rows, by="pm")}
    assert by_pm["pm1"]["shortfall_arrival_bps"] == D("50.00")
    mine = tca_orders(user=refdata.pm1, flt=_flt(), as_of=T0)
    assert [r["pm"] for r in mine] == ["pm1"]
    assert tca_orders(user=refdata.pm1, flt=_flt(pm="pm2"), as_of=T0) == []
    assert tca_orders(user=refdata.trader, flt=_flt(broker="NOPE"), as_of=T0) == []
