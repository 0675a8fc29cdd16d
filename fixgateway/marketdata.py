"""Market data over FIX, the OMS side: subscribe (35=V), read snapshots and incremental
refreshes (35=W / 35=X), keep the latest market per security in memory, and every
OMS_MD_FLUSH_MS write it (marketdata.services.quotes_apply) and push it to the screens.

Not through the inbound queue: market data changes no order, needs no exactly-once (the next
refresh supersedes it) and would crowd out the execution reports. The QuickFIX callback only
folds the message into the in-memory book (microseconds, under a lock); the flusher thread
does the database and the websocket. A resend after a rewind (PossDup) is skipped: it is old.

Pushes are throttled per security: a security is sent at most once per OMS_MD_THROTTLE_MS,
with its latest values (a quote that changed 50 times in that window is sent once).
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation

import quickfix as fix
from django.conf import settings
from django.db import close_old_connections, connection

from . import fixmsg

log = logging.getLogger("fixgateway.marketdata")

MD_MSG_TYPES = frozenset({"W", "X", "Y"})
# MDEntryType (269) we ask for: bid, offer, trade, trading session VWAP, trade volume.
ENTRY_TYPES = ("0", "1", "2", "9", "B")
RESUBSCRIBE_SECONDS = 5.0


def wants_market_data(broker) -> bool:
    return bool((broker.extra_config or {}).get("market_data"))


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


def _dec(text: str) -> Decimal | None:
    try:
        return Decimal(text) if text else None
    except InvalidOperation:
        return None


def parse_entries(raw: str) -> tuple[str, list[dict], str]:
    """(message type, entries, SendingTime) of a 35=W / 35=X read from its wire text: each entry a dict
    of 279 (action), 269 (type), 55 (symbol), 270 (price), 271 (size). Reading the text once is
    several times faster than QuickFIX's group accessors, and a refresh carries many entries."""
    kind = ""
    sending = ""
    top_symbol = ""
    entries: list[dict] = []
    current: dict | None = None
    in_group = False
    for part in raw.split(fixmsg.SOH):
        tag, _, value = part.partition("=")
        if tag == "35":
            kind = value
        elif tag == "52":
            sending = value
        elif tag == "268":
            in_group = True
        elif not in_group:
            if tag == "55":
                top_symbol = value
        elif tag in ("279", "269") and (current is None or tag in current):
            # The group's first field starts an entry (279 in X, 269 in W).
            current = {tag: value}
            entries.append(current)
        elif current is not None and tag in ("269", "55", "270", "271", "279"):
            current[tag] = value
    for entry in entries:
        entry.setdefault("55", top_symbol)
    return kind, entries, sending


def _epoch(sending: str) -> float | None:
    """A SendingTime (YYYYMMDD-HH:MM:SS[.sss]) as seconds since the epoch."""
    try:
        fmt = "%Y%m%d-%H:%M:%S.%f" if "." in sending else "%Y%m%d-%H:%M:%S"
        return datetime.strptime(sending, fmt).replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None


class _Book:
    """One security's market as the feed has told it so far today."""

    __slots__ = ("bid", "ask", "last", "volume", "vwap", "trade_date", "bars", "changed", "src")

    def __init__(self, today: date):
        self.bid = self.ask = self.last = self.vwap = None
        self.volume = Decimal(0)
        self.trade_date = today
        self.bars: dict[datetime, list] = {}  # minute -> [open, high, low, close, qty, value]
        self.changed = False
        self.src = ""  # the broker's SendingTime of the latest update (latency is measured from it)


class MarketDataSession:
    """The market data of one broker session: the subscription, the books and the flusher."""

    def __init__(self, broker, app):
        self.broker = broker
        self.app = app
        self.lock = threading.Lock()
        self.books: dict[str, _Book] = {}
        self.subscribed: set[str] = set()
        self.ids = itertools.count(1)
        self.security_ids: dict[str, int] = {}
        self.last_push: dict[str, float] = {}
        self.last_subscribe_check = 0.0
        self.rejects: list[str] = []
        self.flush_seconds = float(getattr(settings, "OMS_MD_FLUSH_MS", 50)) / 1000
        self.throttle_seconds = float(getattr(settings, "OMS_MD_THROTTLE_MS", 200)) / 1000
        self.stopping = threading.Event()
        self.thread = threading.Thread(
            target=self._flush_loop, name=f"fix-md-{broker.code}", daemon=True
        )
        self.thread.start()

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
        if fixmsg.get(message.getHeader(), 43) == "Y":
            return  # a resend after a rewind: superseded by what came since
        kind, entries, sending = parse_entries(message.toString())
        now = datetime.now(UTC)
        minute = now.replace(second=0, microsecond=0)
        today = now.date()
        with self.lock:
            for e in entries:
                symbol = e.get("55", "")
                if not symbol:
                    continue
                book = self.books.get(symbol)
                if book is None or book.trade_date != today:
                    book = self.books[symbol] = _Book(today)
                if e.get("279") == "2":  # delete: that side is gone
                    if e.get("269") == "0":
                        book.bid = None
                    elif e.get("269") == "1":
                        book.ask = None
                    book.changed = True
                    continue
                price, size = _dec(e.get("270", "")), _dec(e.get("271", ""))
                entry_type = e.get("269")
                if entry_type == "0":
                    book.bid = price
                elif entry_type == "1":
                    book.ask = price
                elif entry_type == "2" and price is not None:
                    book.last = price
                    if size and kind == "X":  # a snapshot's trade is the last one, not a new one
                        bar = book.bars.get(minute)
                        if bar is None:
                            book.bars[minute] = [price, price, price, price, size, size * price]
                        else:
                            bar[1], bar[2] = max(bar[1], price), min(bar[2], price)
                            bar[3] = price
                            bar[4] += size
                            bar[5] += size * price
                elif entry_type == "9":
                    book.vwap = price
                elif entry_type == "B" and size is not None:
                    book.volume = size
                book.changed = True
                book.src = sending

    # -- the flusher thread ----------------------------------------------------------------------

    def stop(self) -> None:
        self.stopping.set()

    def _flush_loop(self) -> None:
        try:
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
        finally:
            try:
                connection.close()
            except Exception:
                pass

    def _taken(self) -> list[tuple[str, dict]]:
        """What changed and may be written and pushed now (its throttle window passed)."""
        now = time.monotonic()
        taken = []
        with self.lock:
            for symbol, book in self.books.items():
                if not book.changed or now - self.last_push.get(symbol, 0) < self.throttle_seconds:
                    continue
                book.changed = False
                self.last_push[symbol] = now
                taken.append(
                    (
                        symbol,
                        {
                            "bid": book.bid,
                            "ask": book.ask,
                            "last": book.last,
                            "volume": book.volume,
                            "vwap": book.vwap,
                            "trade_date": book.trade_date,
                            "bars": book.bars,
                            "src": book.src,
                        },
                    )
                )
                book.bars = {}
        return taken

    def _security_id(self, symbol: str) -> int | None:
        if symbol not in self.security_ids:
            from oms.models import Security

            self.security_ids.update(Security.objects.values_list("symbol", "id"))
            self.security_ids.setdefault(symbol, None)
        return self.security_ids[symbol]

    def flush(self) -> int:
        taken = self._taken()
        if not taken:
            return 0
        from marketdata.services import BarDelta, QuoteUpdate, quotes_apply

        close_old_connections()
        updates, rows = [], []
        for symbol, s in taken:
            security_id = self._security_id(symbol)
            if security_id is None:
                continue
            updates.append(
                QuoteUpdate(
                    security_id=security_id,
                    bid=s["bid"],
                    ask=s["ask"],
                    last=s["last"],
                    day_volume=s["volume"],
                    day_vwap=s["vwap"],
                    trade_date=s["trade_date"],
                    bars=[BarDelta(start, *values) for start, values in s["bars"].items()],
                )
            )
            rows.append(
                {
                    "security": security_id,
                    "symbol": symbol,
                    "bid": s["bid"],
                    "ask": s["ask"],
                    "last": s["last"],
                    "day_volume": s["volume"],
                    "day_vwap": s["vwap"],
                    "src": _epoch(s["src"]),
                }
            )
        now = datetime.now(UTC)
        quotes_apply(updates=updates, source=self.broker.code, as_of=now)
        from marketdata.broadcast import quotes_publish

        quotes_publish(rows, sent_at=now)
        return len(updates)
