"""The simulator's market: for every security it trades, a top of book walking randomly around
the reference price (bid/ask a spread of ticks apart), trades with volumes, and the day's
volume and VWAP; published to subscribers as MarketDataSnapshotFullRefresh (35=W) and
MarketDataIncrementalRefresh (35=X). The simulator fills at this quote (a buy at the ask, a
sell at the bid), so fills are at or inside the market the OMS sees.

Its own lock, not the simulator's: publishing thousands of entries a second must not hold up
order handling.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from decimal import ROUND_HALF_UP, Decimal

import quickfix as fix

from . import fixmsg
from .fixmsg import SOH, get

log = logging.getLogger("fixgateway.simulator.market")


# The walk: down a tick, stay (twice as likely), up a tick; trade sizes.
_MOVES = (-1, 0, 0, 1)
_SIZES = tuple(Decimal(n) for n in (100, 200, 300, 500))


class SimBook:
    """One security's market at the simulator. Prices are whole ticks (a tick a power of ten:
    0.01), so the walk is integer arithmetic and the text sent is formatted from integers;
    `bid`, `ask` are the Decimals the fills use."""

    __slots__ = (
        "symbol",
        "places",
        "bid_ticks",
        "spread_ticks",
        "last",
        "volume",
        "value",
        "paused",
        "trades",
    )

    def __init__(self, symbol: str, tick: Decimal, mid: Decimal, spread_ticks: int = 2):
        self.symbol = symbol
        self.places = -tick.normalize().as_tuple().exponent
        half = tick * spread_ticks / 2
        self.bid_ticks = int(((mid - half) / tick).quantize(Decimal(1), ROUND_HALF_UP))
        self.spread_ticks = spread_ticks
        self.last: Decimal | None = None
        self.volume = Decimal(0)
        self.value = Decimal(0)
        self.paused = False
        self.trades: list = []  # fills since the last publish, sent with the next refresh

    def text(self, ticks: int) -> str:
        """A price in ticks as the decimal text sent: 5001 -> "50.01"."""
        if not self.places:
            return str(ticks)
        units, rest = divmod(ticks, 10**self.places)
        return f"{units}.{rest:0{self.places}d}"

    @property
    def tick(self) -> Decimal:
        return Decimal(1).scaleb(-self.places)

    @property
    def bid(self) -> Decimal:
        return Decimal(self.bid_ticks).scaleb(-self.places)

    @property
    def ask(self) -> Decimal:
        return Decimal(self.bid_ticks + self.spread_ticks).scaleb(-self.places)

    @property
    def vwap(self) -> Decimal | None:
        return (self.value / self.volume).quantize(Decimal("0.0001")) if self.volume else None


def incremental_refresh(begin_string: str, chunk: list[tuple[str, list]]) -> fix.Message:
    """A 35=X carrying these securities' changed entries ((symbol, [(MDEntryType, price,
    size)]), None where absent), composed as wire text and read once by QuickFIX with the data
    dictionary (which places the repeating group): building it field by field through the
    binding costs about fifteen times as much, and the publisher sends hundreds a second.
    The session sets the header (CompIDs, MsgSeqNum, SendingTime), length and checksum."""
    parts = []
    count = 0
    for symbol, entries in chunk:
        for entry_type, px, size in entries:
            parts.append(f"279=1{SOH}269={entry_type}{SOH}55={symbol}{SOH}")
            if px is not None:
                parts.append(f"270={px}{SOH}")
            if size is not None:
                parts.append(f"271={size}{SOH}")
            count += 1
    text = f"8={begin_string}{SOH}9=0{SOH}35=X{SOH}268={count}{SOH}{''.join(parts)}10=000{SOH}"
    return fix.Message(text, fixmsg.data_dictionary(begin_string), False)


class SimMarket:
    def __init__(self, reference, *, seed: int = 11):
        self.reference = reference  # symbol -> Decimal
        self.lock = threading.RLock()
        self.rng = random.Random(seed)
        self.books: dict[str, SimBook] = {}
        # session id string -> (session, {symbol: MDReqID})
        self.subscribers: dict[str, tuple[object, dict[str, str]]] = {}
        self.rate = 2.0  # updates a second per security
        self.batch = 40  # securities per 35=X
        self.trade_probability = 0.3
        self.reject_symbols: set[str] = set()
        self.requests: list[dict] = []
        self.sent_updates = 0
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._publish_loop, name="sim-md", daemon=True)
        self.thread.start()

    def book(self, symbol: str) -> SimBook:
        book = self.books.get(symbol)
        if book is None:
            ref = Decimal(str(self.reference(symbol)))
            book = self.books[symbol] = SimBook(symbol, Decimal("0.01"), ref)
        return book

    def active(self, symbol: str) -> bool:
        """Whether the simulator makes a market in it (someone subscribed to it)."""
        return symbol in self.books

    # -- fills at the quote ---------------------------------------------------------------------

    def fill_price(self, symbol: str, side: str, limit: Decimal | None) -> Decimal | None:
        """A buy takes the ask, a sell hits the bid; a limit that does not reach it rests."""
        with self.lock:
            book = self.book(symbol)
            buy = side == "1"
            price = book.ask if buy else book.bid
            if limit is not None and ((buy and limit < price) or (not buy and limit > price)):
                return None
            return price

    def trade(self, symbol: str, qty: Decimal, price: Decimal) -> None:
        """A fill the simulator gave is a trade of the market: last, volume and VWAP move."""
        with self.lock:
            book = self.book(symbol)
            book.last = price
            book.volume += qty
            book.value += qty * price
            # Published with the next refresh, by the publisher: a fill must not wait on it.
            book.trades.append(("2", price, qty))

    # -- subscriptions -----------------------------------------------------------------------

    def on_request(self, message, session) -> None:
        req_id = get(message, 262)
        kind = get(message, 263)
        symbols = [
            value
            for tag, value in (p.partition("=")[::2] for p in message.toString().split("\x01"))
            if tag == "55"
        ]
        self.requests.append({"md_req_id": req_id, "type": kind, "symbols": symbols})
        refused = [s for s in symbols if s in self.reject_symbols]
        if refused:
            reply = fixmsg.new_message("Y")
            reply.setField(262, req_id)
            reply.setField(281, "0")  # unknown symbol
            reply.setField(58, f"unknown symbol {', '.join(refused)}")
            fix.Session.sendToTarget(reply, session)
            symbols = [s for s in symbols if s not in refused]
        with self.lock:
            key = session.toString()
            _, subs = self.subscribers.setdefault(key, (session, {}))
            for symbol in symbols:
                if kind == "2":
                    subs.pop(symbol, None)
                    continue
                subs[symbol] = req_id
                if kind in ("0", "1"):
                    self._send_snapshot(session, req_id, self.book(symbol))
            if kind == "0":  # snapshot only
                for symbol in symbols:
                    subs.pop(symbol, None)

    def _send_snapshot(self, session, req_id: str, book: SimBook) -> None:
        message = fixmsg.new_message("W")
        message.setField(262, req_id)
        message.setField(55, book.symbol)
        entries = [("0", book.bid, Decimal(100)), ("1", book.ask, Decimal(100))]
        if book.last is not None:
            entries.append(("2", book.last, Decimal(0)))
        entries.append(("B", None, book.volume))
        if book.vwap is not None:
            entries.append(("9", book.vwap, None))
        for entry_type, px, size in entries:
            group = fix.Group(268, 269)
            group.setField(269, entry_type)
            if px is not None:
                group.setField(270, str(px))
            if size is not None:
                group.setField(271, str(size))
            message.addGroup(group)
        fix.Session.sendToTarget(message, session)

    def _send_updates(self, changes: list[tuple[SimBook, list]]) -> list:
        """Incremental refreshes of these books to every session subscribed to them, at most
        `batch` securities a message. Called with the lock held; the messages are built from
        plain values, so the sending (the costly part) happens after it is released."""
        out = []
        for session, subs in list(self.subscribers.values()):
            mine = [(b.symbol, e) for b, e in changes if b.symbol in subs]
            for start in range(0, len(mine), max(1, self.batch)):
                out.append((session, mine[start : start + self.batch]))
        return out

    def _send(self, out: list) -> None:
        for session, chunk in out:
            fix.Session.sendToTarget(
                incremental_refresh(session.getBeginString().getValue(), chunk), session
            )
            self.sent_updates += len(chunk)

    # -- the random walk -----------------------------------------------------------------------

    def step(self, book: SimBook) -> list:
        """Move one book a tick (or not) and maybe trade: the entries that changed, prices
        and sizes as the text sent."""
        rng = self.rng
        book.bid_ticks = max(1, book.bid_ticks + _MOVES[int(rng.random() * 4)])
        bid, ask = book.text(book.bid_ticks), book.text(book.bid_ticks + book.spread_ticks)
        entries = [("0", bid, "100"), ("1", ask, "100")]
        if book.trades:
            entries += book.trades
            entries += [("B", None, book.volume), ("9", book.vwap, None)]
            book.trades = []
        elif rng.random() < self.trade_probability:
            price = Decimal(ask if rng.random() < 0.5 else bid)
            qty = _SIZES[int(rng.random() * 4)]
            book.last = price
            book.volume += qty
            book.value += qty * price
            entries += [("2", price, qty), ("B", None, book.volume), ("9", book.vwap, None)]
        return entries

    def _publish_loop(self) -> None:
        next_at = time.monotonic()
        while not self.stopped.is_set():
            period = 1.0 / max(self.rate, 0.001)
            next_at += period
            try:
                with self.lock:
                    symbols = {s for _, subs in self.subscribers.values() for s in subs}
                    changes = [
                        (book, self.step(book))
                        for symbol in sorted(symbols)
                        if not (book := self.book(symbol)).paused
                    ]
                    out = self._send_updates(changes) if changes else []
                self._send(out)
            except Exception:
                log.exception("market data publish failed")
            delay = next_at - time.monotonic()
            if delay < 0:
                next_at = time.monotonic()  # behind: do not try to catch up in a burst
            else:
                self.stopped.wait(delay)

    def stop(self) -> None:
        self.stopped.set()

    def state(self) -> dict:
        with self.lock:
            return {
                "books": {
                    s: {
                        "bid": str(b.bid),
                        "ask": str(b.ask),
                        "last": str(b.last) if b.last is not None else None,
                        "volume": str(b.volume),
                        "vwap": str(b.vwap) if b.vwap is not None else None,
                        "paused": b.paused,
                    }
                    for s, b in self.books.items()
                },
                "requests": list(self.requests),
                "subscribed": sorted({s for _, subs in self.subscribers.values() for s in subs}),
                "sent_updates": self.sent_updates,
            }
