"""The gateway reads 35=W / 35=X from their wire text (fixgateway.marketdata.parse_refresh),
not through QuickFIX's group accessors: it must read what QuickFIX reads, entry for entry,
with many securities in one message, deletes, and a snapshot's one Symbol. And the books are a
latest-wins queue: a security is pending once however often it changes, and a throttled
reader gets its newest values once its window has passed."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
import quickfix as fix

from fixgateway import fixmsg
from fixgateway.marketdata import LatestWins, MarketDataSession, parse_refresh
from fixgateway.simmarket import SimMarket, incremental_refresh
from marketdata.broadcast import QUOTE_COLUMNS, quotes_message, quotes_rows

SOH = "\x01"
NOW = datetime(2026, 12, 3, 14, 30, 15, tzinfo=UTC)
FIELDS = (279, 269, 55, 270, 271)


def _wire(message: fix.Message, *, poss_dup: bool = False) -> str:
    """The message as it arrives: the header a session gives it, read back by QuickFIX."""
    header = message.getHeader()
    header.setField(8, "FIX.4.4")
    header.setField(49, "BRK")
    header.setField(56, "OMS")
    header.setField(34, "7")
    header.setField(52, "20261203-14:30:15.123")
    if poss_dup:
        header.setField(43, "Y")
    text = message.toString()
    return fix.Message(text, fixmsg.data_dictionary("FIX.4.4"), False).toString()


def _quickfix_entries(text: str) -> list[list[str]]:
    """The entries as QuickFIX's group accessors read them."""
    message = fix.Message(text, fixmsg.data_dictionary("FIX.4.4"), False)
    top = fixmsg.get(message, 55)
    entries = []
    for i in range(1, int(fixmsg.get(message, 268) or 0) + 1):
        group = fix.Group(268, 279)
        message.getGroup(i, group)
        entry = [fixmsg.get(group, tag) for tag in FIELDS]
        entry[2] = entry[2] or top
        entries.append(entry)
    return entries


def _session() -> MarketDataSession:
    class Broker:
        code = "BRK"
        extra_config = {"market_data": True}

    return MarketDataSession(Broker(), app=None, start=False)


def test_a_refresh_of_many_securities_reads_as_quickfix_reads_it():
    market = SimMarket(lambda symbol: "50.00", seed=3)
    market.stop()
    market.trade_probability = 1.0  # every security trades: B and 9 entries too
    books = [market.book(f"S{i}") for i in range(40)]
    chunk = [(b.symbol, market.step(b)) for b in books]
    text = _wire(incremental_refresh("FIX.4.4", chunk))

    refresh = parse_refresh(text)

    assert refresh.kind == "X" and refresh.sending_time == "20261203-14:30:15.123"
    assert not refresh.poss_dup
    assert refresh.entries == _quickfix_entries(text)
    assert {e[2] for e in refresh.entries} == {b.symbol for b in books}
    assert len(refresh.entries) == 40 * 5  # bid, offer, trade, volume, VWAP each


def test_deletes_and_changes_of_several_securities_read_as_quickfix_reads_them():
    message = fixmsg.new_message("X")
    for action, entry_type, symbol, px, size in (
        ("1", "0", "AAPL", "189.99", "300"),
        ("2", "1", "AAPL", "", ""),  # the offer is gone
        ("0", "1", "MSFT", "410.02", "100"),
        ("2", "0", "MSFT", "", ""),
        ("1", "2", "IBM", "150.5", "200"),
    ):
        group = fix.Group(268, 279)
        group.setField(279, action)
        group.setField(269, entry_type)
        group.setField(55, symbol)
        if px:
            group.setField(270, px)
        if size:
            group.setField(271, size)
        message.addGroup(group)
    text = _wire(message, poss_dup=True)

    refresh = parse_refresh(text)

    assert refresh.poss_dup
    assert refresh.entries == _quickfix_entries(text)
    assert refresh.entries[1] == ["2", "1", "AAPL", "", ""]


def test_a_snapshot_gives_its_symbol_to_every_entry():
    message = fixmsg.new_message("W")
    message.setField(262, "MD-1")
    message.setField(55, "AAPL")
    for entry_type, px, size in (("0", "189.99", "100"), ("1", "190.01", "100"), ("B", "", "5")):
        group = fix.Group(268, 269)
        group.setField(269, entry_type)
        if px:
            group.setField(270, px)
        group.setField(271, size)
        message.addGroup(group)
    text = _wire(message)

    refresh = parse_refresh(text)

    assert refresh.kind == "W"
    assert refresh.entries == [
        ["", "0", "AAPL", "189.99", "100"],
        ["", "1", "AAPL", "190.01", "100"],
        ["", "B", "AAPL", "", "5"],
    ]
    assert refresh.entries == _quickfix_entries(text)


def test_the_books_take_the_latest_values_deletes_and_trades():
    session = _session()
    x = "X"
    first = parse_refresh(
        SOH.join(
            [
                "8=FIX.4.4",
                f"35={x}",
                "52=20261203-14:30:15.000",
                "268=4",
                "279=1",
                "269=0",
                "55=AAPL",
                "270=189.99",
                "279=1",
                "269=1",
                "55=AAPL",
                "270=190.01",
                "279=1",
                "269=2",
                "55=AAPL",
                "270=190.01",
                "271=300",
                "279=1",
                "269=0",
                "55=MSFT",
                "270=410.00",
                "10=000",
                "",
            ]
        )
    )
    assert session.apply_refresh(first, now=NOW) == 2
    delete = first._replace(
        entries=[["2", "1", "AAPL", "", ""], ["1", "0", "AAPL", "190.00", "100"]],
        sending_time="20261203-14:30:15.500",
    )
    session.apply_refresh(delete, now=NOW)
    # A resend after a rewind (PossDup) is old news: skipped.
    session.apply_refresh(first._replace(poss_dup=True), now=NOW)

    book = session.books["AAPL"]
    assert (book.bid, book.ask, book.last) == ("190.00", "", "190.01")
    minute = NOW.replace(second=0)
    assert book.bars[minute][4:] == [Decimal(300), Decimal("57003.00")]
    rows = {r[0]: r for r in session.push_rows(now=100.0)}
    assert set(rows) == {"AAPL", "MSFT"}
    assert rows["AAPL"][1:4] == ["190.00", None, "190.01"]
    assert rows["AAPL"][6] == datetime(2026, 12, 3, 14, 30, 15, 500000, tzinfo=UTC).timestamp()


def test_the_latest_wins_queue_holds_one_entry_per_security():
    queue = LatestWins(throttle_seconds=0.2)
    for _ in range(50):
        queue.mark("AAPL")
    queue.mark("MSFT")
    assert len(queue) == 2
    assert queue.take(now=10.0) == ["AAPL", "MSFT"]
    assert queue.take(now=10.05) == []

    # Changed again inside its window: held (once), then taken when the window has passed.
    queue.mark("AAPL")
    queue.mark("AAPL")
    assert queue.take(now=10.1) == []
    assert len(queue) == 1
    assert queue.take(now=10.25) == ["AAPL"]
    assert len(queue) == 0

    unthrottled = LatestWins()
    unthrottled.mark("AAPL")
    assert unthrottled.take(now=0.0) == ["AAPL"] and unthrottled.take(now=0.0) == []


def test_a_pusher_slower_than_the_feed_sends_the_newest_quote_once():
    session = _session()
    base = parse_refresh(
        SOH.join(
            ["35=X", "52=20261203-14:30:15.000", "268=1", "279=1", "269=0", "55=AAPL", "270=1", ""]
        )
    )
    for i in range(100):  # 100 updates arrive while the pusher is busy
        session.apply_refresh(
            base._replace(entries=[["1", "0", "AAPL", f"190.{i:02d}", "100"]]), now=NOW
        )
    (row,) = session.push_rows(now=1.0)
    assert row[1] == "190.99"
    assert session.push_rows(now=1.01) == []


@pytest.mark.parametrize("bad", ["abc", "1e5", "NaN", "<b>1</b>", "1.2.3"])
def test_what_is_not_a_plain_number_is_not_pushed(bad):
    session = _session()
    refresh = parse_refresh(
        SOH.join(
            ["35=X", "52=20261203-14:30:15.000", "268=1", "279=1", "269=0", "55=AAPL", "270=1", ""]
        )
    )
    session.apply_refresh(refresh._replace(entries=[["1", "0", "AAPL", bad, "100"]]), now=NOW)
    (row,) = session.push_rows(now=1.0)
    assert row[1] is None


def test_a_push_is_columns_and_rows_of_text():
    import json

    text = quotes_message([["AAPL", "189.99", "190.01", None, "300", "190.0100", 1.5]], sent_at=0)
    message = json.loads(text)
    assert message["type"] == "quotes" and message["cols"] == list(QUOTE_COLUMNS)
    assert quotes_rows(message) == [
        {
            "symbol": "AAPL",
            "bid": "189.99",
            "ask": "190.01",
            "last": None,
            "day_volume": "300",
            "day_vwap": "190.0100",
            "src": 1.5,
        }
    ]
