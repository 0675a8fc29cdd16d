"""Market data over FIX, the OMS side: subscribe (35=V), read snapshots and incremental
refreshes (35=W / 35=X), keep the latest market per security in memory, push what changed to
the screens every OMS_MD_PUSH_MS and write it (marketdata.services.quotes_apply) every
OMS_MD_FLUSH_MS.

Not through the inbound queue: market data changes no order, needs no exactly-once (the next
refresh supersedes it) and would crowd out the execution reports. The QuickFIX callback reads
the message's wire text once (`parse_refresh`, a string split: QuickFIX's group accessors cost
several times as much) and folds it into the books under a lock, keeping the prices as the
text the broker sent; nothing is queued per update. A resend after a rewind (PossDup) is
skipped: it is old.

The books are the latest-wins queue (`LatestWins`): a security that changed is marked pending
once however often it changes, and each reader (the pusher, the writer) takes the pending
securities' current values. So a pusher or a database slower than the feed sends fewer, newer
quotes rather than a growing backlog of old ones. Pushes are throttled per security: each at
most once per OMS_MD_THROTTLE_MS. The pusher awaits each send on its own event loop (not the
process's shared publisher queue, which carries the order feed).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import re
import threading
import time
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import NamedTuple

import quickfix as fix
from django.conf import settings
from django.db import close_old_connections, connection

from . import fixmsg
from .fixmsg import SOH

log = logging.getLogger("fixgateway.marketdata")

MD_MSG_TYPES = frozenset({"W", "X", "Y"})
# MDEntryType (269) we ask for: bid, offer, trade, trading session VWAP, trade volume.
ENTRY_TYPES = ("0", "1", "2", "9", "B")
RESUBSCRIBE_SECONDS = 5.0


def wants_market_data(broker) -> bool:
    return bool((broker.extra_config or {}).get("market_data"))


def has_own_session(broker) -> bool:
    """Whether the broker's market data comes over a FIX session of its own (fixgateway.
    mdsession), not the order session."""
    config = (broker.extra_config or {}).get("market_data")
    return isinstance(config, dict) and isinstance(config.get("session"), dict)


def subscription_message(md_req_id: str, symbols: list[str], *, unsubscribe: bool = False):
    """A MarketDataRequest: snapshot plus updates (263=1), top of book (264=1), incremental
    refresh (265=1)."""
    message = fixmsg.new_message("V")
    message.setField(262, md_req_id)
    message.setField(263, "2" if unsubscribe else "1")
    message.setField(264, "1")
    message.setField(265, "1")
    for entry_type in ENTRY_TYPES:
        group = fix.Group(267, 269)
        group.setField(269, entry_type)
        message.addGroup(group)
    for symbol in symbols:
        group = fix.Group(146, 55)
        group.setField(55, symbol)
        message.addGroup(group)
    return message


# -- reading a refresh from its wire text ---------------------------------------------------------

# The fields of an MDEntries (268) group entry we read, and where each goes in an Entry.
_ENTRY_FIELDS = {"279": 0, "269": 1, "55": 2, "270": 3, "271": 4}


class Refresh(NamedTuple):
    """A 35=W / 35=X as the books need it. Each entry is [MDUpdateAction (279), MDEntryType
    (269), Symbol (55), MDEntryPx (270), MDEntrySize (271)], "" where absent; a snapshot's
    entries carry its one Symbol."""

    kind: str
    sending_time: str
    poss_dup: bool
    entries: list[list[str]]


def parse_refresh(raw: str) -> Refresh:
    """Read a 35=W / 35=X from its wire text in one pass. An entry starts at the group's first
    field (the delimiter: 279 in a 35=X, 269 in a 35=W), i.e. the first tag after NoMDEntries
    (268), and each repetition of it starts the next; tags we do not read are skipped."""
    kind = sending = top_symbol = ""
    poss_dup = False
    entries: list[list[str]] = []
    current: list[str] | None = None
    delimiter = None
    fields = _ENTRY_FIELDS
    for part in raw.split(SOH):
        tag, _, value = part.partition("=")
        if delimiter is None:
            if tag == "35":
                kind = value
            elif tag == "52":
                sending = value
            elif tag == "43":
                poss_dup = value == "Y"
            elif tag == "55":
                top_symbol = value
            elif tag == "268":
                delimiter = ""
            continue
        if not delimiter:
            delimiter = tag
        if tag == delimiter:
            current = ["", "", "", "", ""]
            entries.append(current)
        index = fields.get(tag)
        if index is not None and current is not None:
            current[index] = value
    if top_symbol:
        for entry in entries:
            if not entry[2]:
                entry[2] = top_symbol
    return Refresh(kind, sending, poss_dup, entries)


def _dec(text: str) -> Decimal | None:
    try:
        value = Decimal(text) if text else None
    except InvalidOperation:
        return None
    return value if value is None or value.is_finite() else None


_NUMBER = re.compile(r"-?\d{1,20}(\.\d{1,12})?")


def _number_text(text: str) -> str | None:
    """A price or size as the broker wrote it, if it is a plain decimal number (what is pushed
    to the screens as text); None otherwise."""
    return text if text and _NUMBER.fullmatch(text) else None


_DAY_EPOCH: dict[str, float] = {}


def _epoch(sending: str) -> float | None:
    """A SendingTime (YYYYMMDD-HH:MM:SS[.sss]) as seconds since the epoch (the day's midnight
    is parsed once; thousands of these a second are pushed)."""
    day, _, clock = sending.partition("-")
    try:
        midnight = _DAY_EPOCH.get(day)
        if midnight is None:
            midnight = datetime.strptime(day, "%Y%m%d").replace(tzinfo=UTC).timestamp()
            _DAY_EPOCH.clear()  # one day at a time (two around midnight)
            _DAY_EPOCH[day] = midnight
        hours, minutes, seconds = clock.split(":")
        return midnight + int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    except ValueError:
        return None


# -- the latest-wins queue ---------------------------------------------------------------------


class LatestWins:
    """Which securities changed since a reader last took them: a security is pending once
    however many updates it had (the reader reads its current values when it takes it), so the
    queue holds at most one entry per security and never queues latency. With a throttle, a
    security taken at t is not taken again before t + throttle; it stays pending meanwhile and
    then goes with its newest values. Not thread-safe: used under the session's lock."""

    def __init__(self, throttle_seconds: float = 0.0):
        self.throttle = throttle_seconds
        self.pending: dict[str, None] = {}  # insertion-ordered set
        self.taken_at: dict[str, float] = {}

    def mark(self, key: str) -> None:
        self.pending[key] = None

    def __len__(self) -> int:
        return len(self.pending)

    def take(self, now: float) -> list[str]:
        if not self.throttle:
            taken = list(self.pending)
            self.pending.clear()
            return taken
        taken, held = [], {}
        for key in self.pending:
            if now - self.taken_at.get(key, -1e18) >= self.throttle:
                taken.append(key)
                self.taken_at[key] = now
            else:
                held[key] = None
        self.pending = held
        return taken


# -- the books ------------------------------------------------------------------------------------


class _Book:
    """One security's market as the feed has told it so far today, as the broker's text."""

    __slots__ = ("bid", "ask", "last", "volume", "vwap", "trade_date", "bars", "src")

    def __init__(self, today: date):
        self.bid = self.ask = self.last = self.vwap = ""
        self.volume = "0"
        self.trade_date = today
        self.bars: dict[datetime, list] = {}  # minute -> [open, high, low, close, qty, value]
        self.src = ""  # the broker's SendingTime of the latest update (latency is measured from it)


class MarketDataSession:
    """The market data of one broker session: the subscription, the books, the pusher and the
    writer."""

    def __init__(self, broker, app, *, start: bool = True):
        self.broker = broker
        self.app = app
        self.lock = threading.Lock()
        self.books: dict[str, _Book] = {}
        self.subscribed: set[str] = set()
        self.ids = itertools.count(1)
        self.security_ids: dict[str, int] = {}
        self.last_subscribe_check = 0.0
        self.rejects: list[str] = []
        self.push_seconds = float(getattr(settings, "OMS_MD_PUSH_MS", 50)) / 1000
        self.flush_seconds = float(getattr(settings, "OMS_MD_FLUSH_MS", 250)) / 1000
        self.to_push = LatestWins(float(getattr(settings, "OMS_MD_THROTTLE_MS", 200)) / 1000)
        self.to_write = LatestWins()
        # Counters for the hop profile (logged every STATS_SECONDS; the benchmark reads them).
        self.stats = _Stats()
        self.stopping = threading.Event()
        self.threads = [
            threading.Thread(target=target, name=f"fix-md-{what}-{broker.code}", daemon=True)
            for what, target in (("write", self._write_loop), ("push", self._push_loop))
        ]
        if start:  # (not started: the books alone, as the benchmark's parse floor uses them)
            for thread in self.threads:
                thread.start()

    # -- subscription (the runner's thread) ----------------------------------------------------

    def on_logon(self) -> None:
        """A new logon starts with no subscription at the broker."""
        with self.lock:
            self.subscribed = set()
        self.last_subscribe_check = 0.0

    def tick(self) -> None:
        """Subscribe to securities that need market data and are not subscribed yet (checked
        every RESUBSCRIBE_SECONDS: new orders, new positions)."""
        now = time.monotonic()
        if now - self.last_subscribe_check < RESUBSCRIBE_SECONDS:
            return
        if not self.app.logged_on.is_set() or self.app.session_id is None:
            return
        self.last_subscribe_check = now
        from marketdata.selectors import symbols_to_subscribe

        wanted = set(symbols_to_subscribe()) - self.subscribed
        if not wanted:
            return
        symbols = sorted(wanted)
        req_id = f"MD-{self.broker.code}-{int(time.time())}-{next(self.ids)}"
        if fix.Session.sendToTarget(subscription_message(req_id, symbols), self.app.session_id):
            with self.lock:
                self.subscribed |= wanted
            log.info("%s: market data subscribed for %d securities", self.broker, len(symbols))

    # -- inbound (QuickFIX's thread) -------------------------------------------------------------

    def on_message(self, message) -> None:
        if fixmsg.msg_type(message) == "Y":
            text = fixmsg.get(message, 58)
            log.warning(
                "%s: market data request %s rejected: %s",
                self.broker,
                fixmsg.get(message, 262),
                text,
            )
            self.rejects.append(text)
            return
        self.apply_refresh(parse_refresh(message.toString()), now=datetime.now(UTC))

    def apply_refresh(self, refresh: Refresh, *, now: datetime) -> int:
        """Fold one refresh into the books: the latest price of each side wins; a trade
        (MDEntryType 2) in an incremental refresh adds to the minute's bar (a snapshot's trade
        is the last one, not a new one). Returns the securities it updated."""
        if refresh.poss_dup:
            return 0  # a resend after a rewind: superseded by what came since
        minute = now.replace(second=0, microsecond=0)
        today = now.date()
        incremental = refresh.kind == "X"
        sending = refresh.sending_time
        touched: dict[str, None] = {}
        books = self.books
        with self.lock:
            for action, entry_type, symbol, price, size in refresh.entries:
                if not symbol:
                    continue
                book = books.get(symbol)
                if book is None or book.trade_date != today:
                    book = books[symbol] = _Book(today)
                touched[symbol] = None
                book.src = sending
                if action == "2":  # delete: that side is gone
                    if entry_type == "0":
                        book.bid = ""
                    elif entry_type == "1":
                        book.ask = ""
                    continue
                if entry_type == "0":
                    book.bid = price
                elif entry_type == "1":
                    book.ask = price
                elif entry_type == "2" and price:
                    book.last = price
                    if incremental and size:
                        _add_trade(book.bars, minute, price, size)
                elif entry_type == "9":
                    book.vwap = price
                elif entry_type == "B" and size:
                    book.volume = size
            for symbol in touched:
                self.to_push.mark(symbol)
                self.to_write.mark(symbol)
            self.stats.refreshes += 1
            self.stats.updates += len(touched)
            lag = _epoch(sending)
            if lag is not None:
                self.stats.lags.append(now.timestamp() - lag)
        return len(touched)

    # -- the pusher --------------------------------------------------------------------------------

    def stop(self) -> None:
        self.stopping.set()

    def push_rows(self, now: float) -> list[list]:
        """The securities due a push (changed, throttle window passed), as rows of text:
        symbol, bid, ask, last, day volume, day VWAP, and the broker's SendingTime of the
        latest update (seconds since the epoch)."""
        with self.lock:
            taken = [(symbol, self.books[symbol]) for symbol in self.to_push.take(now)]
            values = [(s, b.bid, b.ask, b.last, b.volume, b.vwap, b.src) for s, b in taken]
        return [
            [s, _number_text(bid), _number_text(ask), _number_text(last)]
            + [_number_text(volume), _number_text(vwap), _epoch(src)]
            for s, bid, ask, last, volume, vwap, src in values
        ]

    def _push_loop(self) -> None:
        try:
            asyncio.run(self._push_forever())
        except Exception:
            log.exception("%s: market data pusher stopped", self.broker)

    async def _push_forever(self) -> None:
        from marketdata.broadcast import quotes_message, quotes_send

        while not self.stopping.is_set():
            started = time.monotonic()
            try:
                rows = self.push_rows(started)
                if rows:
                    await quotes_send(quotes_message(rows, sent_at=time.time()))
                    with self.lock:
                        self.stats.pushes += 1
                        self.stats.pushed += len(rows)
                        self.stats.push_seconds += time.monotonic() - started
            except Exception:
                log.exception("%s: market data push failed; going on", self.broker)
                await asyncio.sleep(0.5)
            # Sleep the rest of the interval; a send that took longer is followed at once (by
            # whatever is pending then: the latest values, not a backlog).
            await asyncio.sleep(max(0.0, self.push_seconds - (time.monotonic() - started)))

    # -- the writer --------------------------------------------------------------------------------

    def _write_loop(self) -> None:
        try:
            next_stats = time.monotonic() + STATS_SECONDS
            while not self.stopping.wait(self.flush_seconds):
                try:
                    self.flush()
                except Exception:
                    log.exception("%s: market data flush failed; going on", self.broker)
                    try:
                        connection.close()
                    except Exception:
                        pass
                    time.sleep(0.5)
                if time.monotonic() >= next_stats:
                    next_stats = time.monotonic() + STATS_SECONDS
                    self._log_stats()
        finally:
            try:
                connection.close()
            except Exception:
                pass

    def _log_stats(self) -> None:
        with self.lock:
            stats, self.stats = self.stats, _Stats()
        if stats.refreshes:
            summary = stats.summary()
            # Execution reports waiting to be applied: when that queue is full, QuickFIX's
            # reader waits, and the market data behind them in the socket with it.
            inbound = getattr(self.app, "inbound", None)
            summary["inbound_queue"] = inbound.qsize() if inbound is not None else None
            log.info("%s: market data %s", self.broker, json.dumps(summary))

    def _security_id(self, symbol: str) -> int | None:
        if symbol not in self.security_ids:
            from oms.models import Security

            self.security_ids.update(Security.objects.values_list("symbol", "id"))
            self.security_ids.setdefault(symbol, None)
        return self.security_ids[symbol]

    def flush(self) -> int:
        """Write the latest quote of every security that changed since the last write and the
        trades of the minute bars since then: two statements (marketdata.services)."""
        with self.lock:
            taken = []
            for symbol in self.to_write.take(0.0):
                book = self.books[symbol]
                taken.append((symbol, book, book.bars))
                book.bars = {}
            taken = [
                (symbol, (b.bid, b.ask, b.last, b.volume, b.vwap, b.trade_date), bars)
                for symbol, b, bars in taken
            ]
        if not taken:
            return 0
        from marketdata.services import BarDelta, QuoteUpdate, quotes_apply

        started = time.monotonic()
        close_old_connections()
        updates = []
        for symbol, (bid, ask, last, volume, vwap, trade_date), bars in taken:
            security_id = self._security_id(symbol)
            if security_id is None:
                continue
            updates.append(
                QuoteUpdate(
                    security_id=security_id,
                    bid=_dec(bid),
                    ask=_dec(ask),
                    last=_dec(last),
                    day_volume=_dec(volume) or Decimal(0),
                    day_vwap=_dec(vwap),
                    trade_date=trade_date,
                    bars=[BarDelta(start, *values) for start, values in bars.items()],
                )
            )
        quotes_apply(updates=updates, source=self.broker.code, as_of=datetime.now(UTC))
        with self.lock:
            self.stats.writes += 1
            self.stats.written += len(updates)
            self.stats.write_seconds += time.monotonic() - started
        return len(updates)


def _add_trade(bars: dict, minute: datetime, price_text: str, size_text: str) -> None:
    price, size = _dec(price_text), _dec(size_text)
    if price is None or size is None:
        return
    bar = bars.get(minute)
    if bar is None:
        bars[minute] = [price, price, price, price, size, size * price]
    else:
        bar[1], bar[2] = max(bar[1], price), min(bar[2], price)
        bar[3] = price
        bar[4] += size
        bar[5] += size * price


STATS_SECONDS = 5.0


class _Stats:
    """What the market data of a session did since the last log line (the hop profile)."""

    def __init__(self):
        self.started = time.monotonic()
        self.refreshes = self.updates = 0
        self.lags: list[float] = []  # arrival minus the broker's SendingTime, seconds
        self.pushes = self.pushed = 0
        self.push_seconds = 0.0
        self.writes = self.written = 0
        self.write_seconds = 0.0

    def summary(self) -> dict:
        seconds = max(time.monotonic() - self.started, 1e-9)
        lags = sorted(self.lags)

        def at(q: float) -> float | None:
            return round(lags[min(len(lags) - 1, int(q * len(lags)))] * 1000, 1) if lags else None

        return {
            "seconds": round(seconds, 2),
            "refreshes_per_s": round(self.refreshes / seconds, 1),
            "updates_per_s": round(self.updates / seconds, 1),
            "arrival_lag_p50_ms": at(0.5),
            "arrival_lag_p99_ms": at(0.99),
            "pushes_per_s": round(self.pushes / seconds, 1),
            "quotes_pushed_per_s": round(self.pushed / seconds, 1),
            "push_ms": round(self.push_seconds / max(self.pushes, 1) * 1000, 2),
            "writes_per_s": round(self.writes / seconds, 1),
            "quotes_written_per_s": round(self.written / seconds, 1),
            "write_ms": round(self.write_seconds / max(self.writes, 1) * 1000, 2),
        }
