"""The broker simulator: a QuickFIX acceptor standing in for a broker and its exchange.

It acknowledges orders and fills them against a reference price (the security's, or a price
given to it): at once, or in slices over time following the algo instruction (TWAP evenly,
VWAP on a U-shaped curve, over the StartTime/EndTime window from 848); IOC/FOK; a reject rate;
cancels and replaces; done for day. A small HTTP control port (127.0.0.1 only) lets tests
configure it, inspect it and make it misbehave: duplicates, busts, corrections, unsolicited
cancels, unknown ClOrdIDs, out-of-order reports.

Personalities (PERSONALITIES) are the ways real counterparties differ that the OMS is tested
against: no New acknowledgement, no OrderStatusRequest, no cancel/replace, rejects answered
within microseconds, sequence numbers reset on restart with an empty book, a FIX 4.2
dictionary without 847/848, reports without TradeDate. Their behaviour switches at run time
(control command `personality`, or `config`); what belongs to the FIX engine (a reset on
logon, the dictionary's strictness) is set when the acceptor starts (`acceptor_settings`,
`run_broker_sim --personality`).

ThreadedSocketAcceptor, not SocketAcceptor: on quickfix 1.16 the latter's stop() segfaults
about one run in three.
"""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import random
import re
import select
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import quickfix as fix

from . import fixmsg
from .fixmsg import get
from .simmarket import SimMarket

log = logging.getLogger("fixgateway.simulator")
CENT = Decimal("0.01")


@dataclass
class SimOrder:
    session: object
    cl_ord_id: str
    order_id: str
    symbol: str
    side: str
    quantity: Decimal
    ord_type: str
    price: Decimal | None
    tif: str
    strategy: str = ""
    params: dict = field(default_factory=dict)
    cum: Decimal = Decimal(0)
    value: Decimal = Decimal(0)
    status: str = "0"
    orig_cl_ord_ids: list = field(default_factory=list)
    new_count: int = 0
    tags: dict = field(default_factory=dict)  # algo tags as received (847/848, 5000+)
    fills: list = field(default_factory=list)  # [exec_id, qty, px, live]
    reports: list = field(default_factory=list)  # every ER sent, for duplicates

    @property
    def leaves(self) -> Decimal:
        return self.quantity - self.cum if self.status not in ("4", "8", "C", "2") else Decimal(0)

    @property
    def avg(self) -> Decimal:
        return (self.value / self.cum).quantize(Decimal("0.0001")) if self.cum else Decimal(0)


@dataclass
class SimConfig:
    reject_rate: float = 0.0
    fill_mode: str = "immediate"  # immediate | slices | none
    slices: int = 5
    interval: float = 0.05  # seconds between slices when the order has no window
    time_scale: float = 1.0  # algo window seconds are multiplied by this
    liquidity: Decimal | None = None  # IOC/FOK: what is available right now
    ack: bool = True  # send New before fills (False: after them)
    send_new: bool = True  # False: never acknowledge a new order, fill it straight away
    refuse_cancels: bool = False  # answer cancels and replaces with OrderCancelReject
    status_requests: bool = True  # False: answer OrderStatusRequest with 35=j
    replaces: bool = True  # False: answer OrderCancelReplaceRequest with 35=j
    reject_with: str = "8"  # how reject_rate refuses: 8 ExecutionReport, 3 Reject, j business
    trade_date: bool = True  # False: execution reports carry no TradeDate (75)
    strategy_tag: int = 847  # where the algo's code is read from
    param_tags: dict = field(default_factory=dict)  # parameter -> the broker's own tag
    prices: dict = field(default_factory=dict)
    default_price: Decimal = Decimal("100")


@dataclass(frozen=True)
class Personality:
    """A counterparty's way of doing things: SimConfig values (switchable at run time) and
    acceptor session settings (taken when the acceptor starts)."""

    doc: str
    config: dict = field(default_factory=dict)
    session: dict = field(default_factory=dict)
    fresh_store: bool = False  # start with sequence numbers at 1 (and no book)


PERSONALITIES: dict[str, Personality] = {
    "standard": Personality("acknowledges, fills, answers status requests, cancels, replaces"),
    "no_ack": Personality(
        "never sends ExecType New: the first report of an order is its fill",
        config={"send_new": False},
    ),
    "no_status_requests": Personality(
        "answers OrderStatusRequest (35=H) with a BusinessMessageReject (35=j, 380=3)",
        config={"status_requests": False},
    ),
    "no_replace": Personality(
        "answers OrderCancelReplaceRequest (35=G) with a BusinessMessageReject (35=j, 380=3)",
        config={"replaces": False},
    ),
    "fast_reject": Personality(
        "rejects every new order from inside the receiving callback, within microseconds, with a"
        " session-level Reject (35=3) that names only its RefSeqNum",
        config={"reject_rate": 1.0, "reject_with": "3"},
    ),
    "reset_on_restart": Personality(
        "restarts with sequence numbers at 1 and an empty book, and resets them at every logon"
        " (the OMS's session needs ResetOnLogon=Y in the broker's extra_config)",
        session={"ResetOnLogon": "Y"},
        fresh_store=True,
    ),
    "fix42_no_algo_tags": Personality(
        "a strict FIX 4.2 engine: tags outside its dictionary (847, 848) are refused with a"
        " session-level Reject (35=3, 371=tag, 373=0); its own tags (5000+) pass",
        session={"AllowUnknownMsgFields": "N"},
    ),
    "no_trade_date": Personality(
        "execution reports without TradeDate (75)",
        config={"trade_date": False},
    ),
}
# The SimConfig values personalities set: switching personality resets them first.
PERSONALITY_KEYS = frozenset(k for p in PERSONALITIES.values() for k in p.config)


def personality(name: str) -> Personality:
    try:
        return PERSONALITIES[name]
    except KeyError:
        raise ValueError(
            f"unknown personality {name!r}; known: {', '.join(sorted(PERSONALITIES))}"
        ) from None


class BrokerSimulator(fix.Application):
    def __init__(self, config: SimConfig | None = None, price_lookup=None):
        super().__init__()
        self.config = config or SimConfig()
        self.price_lookup = price_lookup
        self.lock = threading.RLock()
        self.orders: dict[str, SimOrder] = {}  # by every ClOrdID it has had
        self.by_order_id: dict[str, SimOrder] = {}
        self.received: dict[str, int] = {}  # NewOrderSingle count per ClOrdID
        self.dk_received: list[dict] = []
        self.rejects_received: list[dict] = []  # session-level Rejects (35=3) from the OMS
        self.personality = "standard"
        self.fast_rejects = 0
        self.status_refused = 0
        self.logons_received = 0  # Logon messages (35=A) from the OMS, accepted or not
        self.sessions: set = set()
        self.ids = itertools.count(1)
        self.exec_ids = itertools.count(1)
        self.run_tag = datetime.now(UTC).strftime("%H%M%S%f")
        self.schedule: list = []
        self.wake = threading.Condition(self.lock)
        self.stopped = False
        self.rng = random.Random(7)
        self.scheduler = threading.Thread(target=self._run_schedule, daemon=True)
        self.scheduler.start()
        # AllocationInstructions received, and how many of the next ones to reject.
        self.allocations_received: list[dict] = []
        self.reject_allocations = 0
        # The market it makes in what it is asked to quote (fixgateway.simmarket).
        self.market = SimMarket(self._reference)

    # -- QuickFIX callbacks (each wrapped: nothing may escape into QuickFIX) -----------------

    def onCreate(self, sessionID):  # noqa: N802, N803
        pass

    def onLogon(self, sessionID):  # noqa: N802, N803
        self.sessions.add(sessionID.toString())

    def onLogout(self, sessionID):  # noqa: N802, N803
        self.sessions.discard(sessionID.toString())

    def toAdmin(self, message, sessionID):  # noqa: N802, N803
        pass

    def fromAdmin(self, message, sessionID):  # noqa: N802, N803
        try:
            if fixmsg.msg_type(message) == "A":
                with self.lock:
                    self.logons_received += 1
            if fixmsg.msg_type(message) == "3":
                with self.lock:
                    self.rejects_received.append(
                        {"ref_seq_num": get(message, 45), "reason": get(message, 373)}
                    )
        except BaseException:  # noqa: BLE001
            log.exception("simulator callback failed")

    def toApp(self, message, sessionID):  # noqa: N802, N803
        pass

    def fromApp(self, message, sessionID):  # noqa: N802, N803
        try:
            kind = fixmsg.msg_type(message)
            with self.lock:
                if kind == "D":
                    self._on_new(message, sessionID)
                elif kind == "F":
                    self._on_cancel(message, sessionID)
                elif kind == "G":
                    self._on_replace(message, sessionID)
                elif kind == "H":
                    self._on_status(message, sessionID)
                elif kind == "V":
                    self.market.on_request(message, sessionID)
                elif kind == "J":
                    self._on_allocation(message, sessionID)
                elif kind == "Q":
                    self.dk_received.append({"exec_id": get(message, 17), "text": get(message, 58)})
        except BaseException:  # noqa: BLE001
            log.exception("simulator callback failed")

    # -- order handling -------------------------------------------------------------------

    def _reference(self, symbol: str) -> Decimal:
        if symbol in self.config.prices:
            return Decimal(str(self.config.prices[symbol]))
        if self.price_lookup:
            price = self.price_lookup(symbol)
            if price:
                return price
        return self.config.default_price

    def _fill_price(self, order: SimOrder) -> Decimal | None:
        """The reference price if the order is marketable at it, else None (it rests); where
        the simulator makes a market, the quote (a buy at the ask, a sell at the bid)."""
        if self.market.active(order.symbol):
            limit = order.price if order.ord_type in ("2", "4") else None
            return self.market.fill_price(order.symbol, order.side, limit)
        ref = self._reference(order.symbol)
        if order.ord_type in ("2", "4") and order.price is not None:
            buy = order.side == "1"
            if (buy and order.price < ref) or (not buy and order.price > ref):
                return None
        return ref

    def _on_new(self, message, session) -> None:
        cl = get(message, 11)
        self.received[cl] = self.received.get(cl, 0) + 1
        if cl in self.orders:  # a duplicate ClOrdID: a real broker rejects it
            self._report_reject(message, session, "duplicate ClOrdID")
            return
        params = {}
        for part in get(message, 848).split(";"):
            if "=" in part:
                k, v = part.split("=", 1)
                params[k] = v
        for name, tag in self.config.param_tags.items():
            if get(message, int(tag)):
                params[name] = get(message, int(tag))
        if self.config.reject_with != "8" and self._rejected_at_once(message, session):
            return
        order = SimOrder(
            session=session,
            cl_ord_id=cl,
            order_id=f"SIM{self.run_tag}-{next(self.ids)}",
            symbol=get(message, 55),
            side=get(message, 54),
            quantity=Decimal(get(message, 38)),
            ord_type=get(message, 40),
            price=Decimal(get(message, 44)) if get(message, 44) else None,
            tif=get(message, 59) or "0",
            strategy=get(message, int(self.config.strategy_tag)),
            params=params,
            tags=_algo_tags(message),
        )
        self.orders[cl] = order
        self.by_order_id[order.order_id] = order
        if self.config.reject_rate and self.rng.random() < self.config.reject_rate:
            order.status = "8"
            self._send_er(order, exec_type="8", text="simulated reject")
            return
        if self.config.send_new and self.config.ack:
            self._send_er(order, exec_type="0")
        self._plan_fills(order)
        if self.config.send_new and not self.config.ack:
            self._send_er(order, exec_type="0")

    def _rejected_at_once(self, message, session) -> bool:
        """Reject a new order by a session Reject (35=3: RefSeqNum only) or a business reject
        (35=j), sent from inside the callback that received it, before the order is booked."""
        if not (self.config.reject_rate and self.rng.random() < self.config.reject_rate):
            return False
        seq = get(message.getHeader(), 34)
        if self.config.reject_with == "3":
            self._session_reject(session, seq, "D", reason="99", text="simulated fast reject")
        else:
            self._business_reject(
                session, seq, "D", get(message, 11), reason="0", text="simulated fast reject"
            )
        self.fast_rejects += 1
        return True

    def _session_reject(
        self, session, ref_seq: str, ref_type: str, *, reason: str, text: str, tag: str = ""
    ) -> None:
        reply = fixmsg.new_message("3")
        reply.setField(45, ref_seq)
        if tag:
            reply.setField(371, tag)
        reply.setField(372, ref_type)
        reply.setField(373, reason)
        reply.setField(58, text)
        fix.Session.sendToTarget(reply, session)

    def _business_reject(
        self, session, ref_seq: str, ref_type: str, ref_id: str, *, reason: str, text: str
    ) -> None:
        reply = fixmsg.new_message("j")
        reply.setField(45, ref_seq)
        reply.setField(372, ref_type)
        if ref_id:
            reply.setField(379, ref_id)
        reply.setField(380, reason)
        reply.setField(58, text)
        fix.Session.sendToTarget(reply, session)

    def _plan_fills(self, order: SimOrder) -> None:
        price = self._fill_price(order)
        if order.tif in ("3", "4"):  # IOC / FOK: now or never
            available = self.config.liquidity if self.config.liquidity is not None else order.leaves
            if price is not None and (order.tif == "3" or available >= order.leaves):
                qty = min(available, order.leaves)
                if qty > 0:
                    self._fill(order, qty, price)
            if order.leaves > 0:
                order.status = "4"
                self._send_er(order, exec_type="4", text="IOC/FOK remainder cancelled")
            return
        if price is None or self.config.fill_mode == "none":
            return
        mode = self.config.fill_mode
        strategy = order.strategy
        if mode == "immediate" and not strategy:
            self._fill(order, order.leaves, price)
            return
        slices = max(1, self.config.slices)
        window = self._window_seconds(order)
        step = (window / slices) if window else self.config.interval
        weights = self._weights(slices, vwap=strategy == "1")
        remaining = order.leaves
        total = sum(weights)
        start = time.monotonic()
        for i, w in enumerate(weights):
            qty = remaining if i == slices - 1 else (order.leaves * w / total).quantize(Decimal(1))
            qty = min(qty, remaining)
            if qty <= 0:
                continue
            remaining -= qty
            heapq.heappush(
                self.schedule, (start + step * (i + 1), next(self.exec_ids), order.order_id, qty)
            )
        self.wake.notify()

    def _window_seconds(self, order: SimOrder) -> float:
        def seconds(text: str) -> int | None:
            hours, _, minutes = text.partition(":")
            return int(hours) * 3600 + int(minutes) * 60 if hours.isdigit() else None

        begin = seconds(order.params.get("start_time", ""))
        end = seconds(order.params.get("end_time", ""))
        if begin is not None and end is not None and end > begin:
            return (end - begin) * self.config.time_scale
        return 0.0

    @staticmethod
    def _weights(slices: int, *, vwap: bool) -> list[Decimal]:
        if not vwap or slices < 3:
            return [Decimal(1)] * slices
        # A U-shaped intraday volume curve: heavier at the open and the close.
        mid = (slices - 1) / 2
        return [Decimal(str(1 + ((i - mid) / mid) ** 2)) for i in range(slices)]

    def _run_schedule(self) -> None:
        while True:
            with self.lock:
                while not self.stopped and (
                    not self.schedule or self.schedule[0][0] > time.monotonic()
                ):
                    timeout = (self.schedule[0][0] - time.monotonic()) if self.schedule else None
                    self.wake.wait(timeout if timeout is None else max(timeout, 0))
                if self.stopped:
                    return
                _, _, order_id, qty = heapq.heappop(self.schedule)
                order = self.by_order_id.get(order_id)
                try:
                    if order and order.leaves > 0 and order.status not in ("4", "3", "C"):
                        price = self._fill_price(order)
                        if price is not None:
                            self._fill(order, min(qty, order.leaves), price)
                except Exception:
                    log.exception("scheduled fill failed")

    def _fill(self, order: SimOrder, qty: Decimal, price: Decimal) -> str:
        order.cum += qty
        order.value += qty * price
        order.status = "2" if order.cum >= order.quantity else "1"
        exec_id = f"E{self.run_tag}-{next(self.exec_ids)}"
        order.fills.append([exec_id, qty, price, True])
        if self.market.active(order.symbol):
            self.market.trade(order.symbol, qty, price)
        self._send_er(order, exec_type="F", last_qty=qty, last_px=price, exec_id=exec_id)
        return exec_id

    def _on_cancel(self, message, session) -> None:
        orig, cl = get(message, 41), get(message, 11)
        order = self.orders.get(orig)
        if order is None or order.leaves <= 0 or self.config.refuse_cancels:
            self._cancel_reject(message, session, "1" if order is None else "0", "too late")
            return
        order.status = "4"
        self.orders[cl] = order
        order.orig_cl_ord_ids.append(order.cl_ord_id)
        order.cl_ord_id = cl
        self._send_er(order, exec_type="4", orig=orig)

    def _on_replace(self, message, session) -> None:
        orig, cl = get(message, 41), get(message, 11)
        if not self.config.replaces:
            self._business_reject(
                session,
                get(message.getHeader(), 34),
                "G",
                cl,
                reason="3",
                text="cancel/replace not supported: cancel and send a new order",
            )
            return
        order = self.orders.get(orig)
        qty = Decimal(get(message, 38))
        if order is None or order.leaves <= 0 or qty < order.cum or self.config.refuse_cancels:
            self._cancel_reject(message, session, "1" if order is None else "0", "cannot replace")
            return
        order.quantity = qty
        if get(message, 44):
            order.price = Decimal(get(message, 44))
        self.orders[cl] = order
        order.orig_cl_ord_ids.append(order.cl_ord_id)
        order.cl_ord_id = cl
        order.status = "2" if order.cum >= qty else ("1" if order.cum else "0")
        self._send_er(order, exec_type="5", orig=orig)
        if order.leaves > 0 and self.config.fill_mode != "none":
            self._plan_fills(order)

    def _on_status(self, message, session) -> None:
        if not self.config.status_requests:
            self.status_refused += 1
            self._business_reject(
                session,
                get(message.getHeader(), 34),
                "H",
                get(message, 11),
                reason="3",
                text="OrderStatusRequest not supported",
            )
            return
        order = self.orders.get(get(message, 11)) or self.by_order_id.get(get(message, 37))
        if order is None:
            ghost = SimOrder(
                session,
                get(message, 11),
                "NONE",
                get(message, 55),
                get(message, 54) or "1",
                Decimal(0),
                "1",
                None,
                "0",
                status="8",
            )
            self._send_er(ghost, exec_type="I", text="unknown order")
            return
        self._send_er(order, exec_type="I")

    def _cancel_reject(self, message, session, reason: str, text: str) -> None:
        reply = fixmsg.new_message("9")
        reply.setField(37, "NONE")
        reply.setField(11, get(message, 11))
        reply.setField(41, get(message, 41))
        order = self.orders.get(get(message, 41))
        reply.setField(39, order.status if order else "8")
        reply.setField(434, "1" if fixmsg.msg_type(message) == "F" else "2")
        reply.setField(102, reason)
        reply.setField(58, text)
        fix.Session.sendToTarget(reply, session)

    def _report_reject(self, message, session, text: str) -> None:
        ghost = SimOrder(
            session,
            get(message, 11),
            "NONE",
            get(message, 55),
            get(message, 54),
            Decimal(get(message, 38) or 0),
            "1",
            None,
            "0",
            status="8",
        )
        self._send_er(ghost, exec_type="8", text=text)

    def _send_er(
        self,
        order: SimOrder,
        *,
        exec_type: str,
        last_qty: Decimal = Decimal(0),
        last_px: Decimal = Decimal(0),
        exec_id: str | None = None,
        exec_ref_id: str = "",
        orig: str = "",
        text: str = "",
        cl_ord_id: str | None = None,
        poss_dup: bool = False,
        session=None,
        send: bool = True,
    ) -> fix.Message:
        er = fixmsg.new_message("8")
        session = session or order.session
        begin = session.getBeginString().getValue()
        er.setField(37, order.order_id)
        er.setField(11, cl_ord_id or order.cl_ord_id)
        if orig:
            er.setField(41, orig)
        er.setField(17, exec_id or f"E{self.run_tag}-{next(self.exec_ids)}")
        status = order.status
        if begin == "FIX.4.2":
            fix42 = {"F": "2" if status == "2" else "1", "I": status}
            er.setField(20, {"H": "1", "G": "2", "I": "3"}.get(exec_type, "0"))
            er.setField(150, fix42.get(exec_type, exec_type if exec_type not in "HG" else status))
        else:
            er.setField(150, exec_type)
        er.setField(39, status)
        if exec_ref_id:
            er.setField(19, exec_ref_id)
        er.setField(55, order.symbol)
        er.setField(54, order.side)
        er.setField(38, str(order.quantity))
        er.setField(32, str(last_qty))
        er.setField(31, str(last_px))
        er.setField(151, str(order.leaves))
        er.setField(14, str(order.cum))
        er.setField(6, str(order.avg))
        if self.config.trade_date:
            er.setField(75, datetime.now(UTC).strftime("%Y%m%d"))
        er.setField(60, fixmsg.fix_time(datetime.now(UTC)))
        if text:
            er.setField(58, text)
        if poss_dup:
            er.getHeader().setField(43, "Y")
        order.reports.append(er)
        if send:
            fix.Session.sendToTarget(er, session)
        return er

    # -- test hooks -------------------------------------------------------------------------

    def control(self, command: str, args: dict) -> dict:
        with self.lock:
            handler = getattr(self, f"_cmd_{command}", None)
            if handler is None:
                raise KeyError(command)
            return handler(**args) or {}

    def _order(self, cl_ord_id: str) -> SimOrder:
        return self.orders[cl_ord_id]

    def _cmd_config(self, **values) -> dict:
        for key, value in values.items():
            if not hasattr(self.config, key):
                raise KeyError(f"no such setting {key!r}")
            if key in ("liquidity", "default_price") and value is not None:
                value = Decimal(str(value))
            setattr(self.config, key, value)
        return {"ok": True}

    def _cmd_personality(self, name: str) -> dict:
        """Behave as the named counterparty from now on (its run-time part; what belongs to
        the engine was set when the acceptor started)."""
        self.personality_apply(name)
        return {"personality": name, "doc": PERSONALITIES[name].doc}

    def personality_apply(self, name: str) -> None:
        chosen = personality(name)
        defaults = SimConfig()
        for key in PERSONALITY_KEYS:
            setattr(self.config, key, getattr(defaults, key))
        for key, value in chosen.config.items():
            setattr(self.config, key, value)
        self.personality = name

    def _cmd_personalities(self) -> dict:
        return {name: p.doc for name, p in PERSONALITIES.items()}

    def _cmd_state(self) -> dict:
        seen = {}
        for order in self.orders.values():
            seen[order.order_id] = {
                "cl_ord_id": order.cl_ord_id,
                "first_cl_ord_id": (order.orig_cl_ord_ids or [order.cl_ord_id])[0],
                "quantity": str(order.quantity),
                "cum": str(order.cum),
                "status": order.status,
                "fills": len(order.fills),
                "strategy": order.strategy,
                "params": order.params,
                "tags": order.tags,
            }
        return {
            "orders": list(seen.values()),
            "received": self.received,
            "dk": self.dk_received,
            "rejects": len(self.rejects_received),
            "sessions": sorted(self.sessions),
            "pending_fills": len(self.schedule),
            "personality": self.personality,
            "fast_rejects": self.fast_rejects,
            "status_refused": self.status_refused,
            "logons_received": self.logons_received,
        }

    def _cmd_fill(self, cl_ord_id: str, quantity: str, price: str | None = None) -> dict:
        order = self._order(cl_ord_id)
        px = Decimal(price) if price else self._reference(order.symbol)
        return {"exec_id": self._fill(order, Decimal(quantity), px)}

    def _cmd_duplicate(self, cl_ord_id: str, poss_dup: bool = True, index: int = -1) -> dict:
        order = self._order(cl_ord_id)
        er = fix.Message(order.reports[index])
        if poss_dup:
            er.getHeader().setField(43, "Y")
            er.getHeader().setField(
                122, get(er.getHeader(), 52) or fixmsg.fix_time(datetime.now(UTC))
            )
        fix.Session.sendToTarget(er, order.session)
        return {"exec_id": get(er, 17)}

    def _cmd_conflict(self, cl_ord_id: str) -> dict:
        """The last fill's ExecID again, with a different quantity (a broker restart bug)."""
        order = self._order(cl_ord_id)
        exec_id, qty, px, _ = order.fills[-1]
        self._send_er(order, exec_type="F", last_qty=qty + 1, last_px=px, exec_id=exec_id)
        return {"exec_id": exec_id}

    def _cmd_bust(self, cl_ord_id: str, exec_id: str | None = None) -> dict:
        order = self._order(cl_ord_id)
        fill = next(f for f in reversed(order.fills) if f[3] and (exec_id in (None, f[0])))
        fill[3] = False
        order.cum -= fill[1]
        order.value -= fill[1] * fill[2]
        order.status = "1" if order.cum else "0"
        self._send_er(order, exec_type="H", last_qty=fill[1], last_px=fill[2], exec_ref_id=fill[0])
        return {"busted": fill[0]}

    def _cmd_correct(self, cl_ord_id: str, quantity: str, price: str, exec_id: str | None = None):
        order = self._order(cl_ord_id)
        fill = next(f for f in reversed(order.fills) if f[3] and (exec_id in (None, f[0])))
        fill[3] = False
        qty, px = Decimal(quantity), Decimal(price)
        order.cum += qty - fill[1]
        order.value += qty * px - fill[1] * fill[2]
        order.status = "2" if order.cum >= order.quantity else ("1" if order.cum else "0")
        new_id = f"E{self.run_tag}-{next(self.exec_ids)}"
        order.fills.append([new_id, qty, px, True])
        self._send_er(
            order, exec_type="G", last_qty=qty, last_px=px, exec_id=new_id, exec_ref_id=fill[0]
        )
        return {"corrected": fill[0], "exec_id": new_id}

    def _cmd_unsolicited_cancel(self, cl_ord_id: str) -> dict:
        order = self._order(cl_ord_id)
        order.status = "4"
        self._send_er(order, exec_type="4", text="cancelled by broker")
        return {}

    def _cmd_unknown(self, session_index: int = 0) -> dict:
        any_order = next(iter(self.orders.values()))
        ghost = SimOrder(
            any_order.session,
            "NOT-OURS-1",
            "SIM-X",
            any_order.symbol,
            "1",
            Decimal(100),
            "1",
            None,
            "0",
            cum=Decimal(10),
            value=Decimal(1000),
            status="1",
        )
        er = self._send_er(ghost, exec_type="F", last_qty=Decimal(10), last_px=Decimal(100))
        return {"exec_id": get(er, 17)}

    def _cmd_out_of_order(self, cl_ord_id: str) -> dict:
        """Two fills sent newest first (cum of the first report above the second's)."""
        order = self._order(cl_ord_id)
        price = self._reference(order.symbol)
        q1 = min(Decimal(1), order.leaves)
        order.cum += q1
        order.value += q1 * price
        first = (f"E{self.run_tag}-{next(self.exec_ids)}", q1)
        q2 = min(Decimal(1), order.leaves)
        order.cum += q2
        order.value += q2 * price
        order.status = "2" if order.cum >= order.quantity else "1"
        second = (f"E{self.run_tag}-{next(self.exec_ids)}", q2)
        for exec_id, qty in (second, first):
            if qty > 0:
                order.fills.append([exec_id, qty, price, True])
                self._send_er(order, exec_type="F", last_qty=qty, last_px=price, exec_id=exec_id)
        return {}

    def _cmd_replay(self, cl_ord_id: str, poss_dup: bool = True) -> dict:
        """Every execution report of the order again: flagged PossDup (with OrigSendingTime),
        or as new messages carrying the same ExecIDs."""
        order = self._order(cl_ord_id)
        sent = 0
        for report in list(order.reports):
            if get(report, 150) == "I":  # status answers describe a moment, not an execution
                continue
            er = fix.Message(report)
            if poss_dup:
                er.getHeader().setField(43, "Y")
                er.getHeader().setField(
                    122, get(er.getHeader(), 52) or fixmsg.fix_time(datetime.now(UTC))
                )
            elif er.getHeader().isSetField(43):
                er.getHeader().removeField(43)
            fix.Session.sendToTarget(er, order.session)
            sent += 1
        return {"sent": sent}

    def _cmd_fills(self, cl_ord_id: str, fills: list, send_order: list | None = None) -> dict:
        """Fills [[qty, px], ...] executed in this order (each report's CumQty/AvgPx as of its
        execution) and delivered in `send_order` (indices): reports overtaking each other."""
        order = self._order(cl_ord_id)
        built = []
        for qty, px in fills:
            qty, px = Decimal(str(qty)), Decimal(str(px))
            order.cum += qty
            order.value += qty * px
            order.status = "2" if order.cum >= order.quantity else "1"
            exec_id = f"E{self.run_tag}-{next(self.exec_ids)}"
            order.fills.append([exec_id, qty, px, True])
            built.append(
                self._send_er(
                    order, exec_type="F", last_qty=qty, last_px=px, exec_id=exec_id, send=False
                )
            )
        for i in send_order if send_order is not None else range(len(built)):
            fix.Session.sendToTarget(built[i], order.session)
        return {"exec_ids": [get(er, 17) for er in built]}

    def _cmd_malformed(self, cl_ord_id: str, count: int) -> dict:
        """Execution reports with bad fields, which the OMS's engine must refuse with a
        session-level Reject: a non-numeric LastQty, a missing ExecID, an ExecType and a Side
        outside their enumerations, a non-numeric CumQty. Each also claims a fill."""
        order = self._order(cl_ord_id)
        faults = (
            lambda er: er.setField(32, "12x"),
            lambda er: er.removeField(17),
            lambda er: er.setField(150, "Z"),
            lambda er: er.setField(54, "Q"),
            lambda er: er.setField(14, "many"),
        )
        for i in range(count):
            er = self._send_er(
                order,
                exec_type="F",
                last_qty=Decimal(1),
                last_px=self._reference(order.symbol),
                send=False,
            )
            order.reports.pop()  # never replayed as if it were real
            faults[i % len(faults)](er)
            fix.Session.sendToTarget(er, order.session)
        return {"sent": count}

    def _cmd_garbled(self, cl_ord_id: str, count: int) -> dict:
        """Byte strings that are not FIX messages (for FaultProxy.inject): junk, a fill with a
        wrong checksum, a fill whose fields lack their '=' signs. Well framed where framed, so
        the reader's resynchronisation is what is tested, not luck."""
        order = self._order(cl_ord_id)
        begin = order.session.getBeginString().getValue()
        sender = order.session.getSenderCompID().getValue()
        target = order.session.getTargetCompID().getValue()
        out = []
        for i in range(count):
            kind = i % 3
            if kind == 0:
                junk = "".join(
                    self.rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ ,.;|") for _ in range(40)
                )
                out.append(junk)
                continue
            body = (
                f"35=8\x0149={sender}\x0156={target}\x0134={900000 + i}\x01"
                f"52={fixmsg.fix_time(datetime.now(UTC))}\x0137={order.order_id}\x01"
                f"11={order.cl_ord_id}\x0117=GARBLED-{i}\x01150=F\x0139=1\x0155={order.symbol}"
                f"\x0154={order.side}\x0138={order.quantity}\x0132=1\x0131=1\x01151=0\x01"
                f"14=1\x016=1\x01"
            )
            if kind == 2:
                body = body.replace("32=1", "32 1").replace("17=", "17")
            head = f"8={begin}\x019={len(body)}\x01"
            checksum = sum((head + body).encode("latin-1")) % 256
            if kind == 1:
                checksum = (checksum + 1) % 256
            out.append(f"{head}{body}10={checksum:03d}\x01")
        return {"raw": out}

    def _session_ids(self) -> list:
        ids = []
        for name in sorted(self.sessions):
            begin, rest = name.split(":", 1)
            sender, target = rest.split("->", 1)
            ids.append(fix.SessionID(begin, sender, target))
        return ids

    def _cmd_disconnect(self) -> dict:
        """Log every connected OMS session out (the OMS must reconnect on its own)."""
        names = sorted(self.sessions)  # before disconnect() takes them out
        for session_id in self._session_ids():
            session = fix.Session.lookupSession(session_id)
            if session is not None:
                session.disconnect()  # logout() would also disable it: no more logons
        return {"sessions": names}

    def _cmd_business_reject(
        self, ref_seq_num: int, ref_msg_type: str = "D", text: str = "rejected"
    ) -> dict:
        """A BusinessMessageReject (35=j) naming a sequence number of our choosing, with no
        ClOrdID: what a counterparty sends about a message it numbered in an earlier epoch."""
        sent = 0
        for session_id in self._session_ids():
            reject = fixmsg.new_message("j")
            reject.setField(45, str(ref_seq_num))
            reject.setField(372, ref_msg_type)
            reject.setField(380, "0")
            reject.setField(58, text)
            fix.Session.sendToTarget(reject, session_id)
            sent += 1
        return {"sent": sent}

    def _on_allocation(self, message, session) -> None:
        """Acknowledge an AllocationInstruction (35=P): accepted, or rejected (87=1, 88=0
        unknown account) while `reject_allocations` says so."""
        accounts = re.findall(r"\x0179=([^\x01]*)\x0180=([^\x01]*)", "\x01" + message.toString())
        self.allocations_received.append(
            {
                "alloc_id": get(message, 70),
                "trans_type": get(message, 71),
                "ref_alloc_id": get(message, 72),
                "quantity": get(message, 53),
                "avg_px": get(message, 6),
                "accounts": {a: q for a, q in accounts},
            }
        )
        ack = fixmsg.new_message("P")
        ack.setField(70, get(message, 70))
        ack.setField(75, get(message, 75))
        ack.setField(60, fixmsg.fix_time(datetime.now(UTC)))
        if self.reject_allocations > 0:
            self.reject_allocations -= 1
            ack.setField(87, "1")
            ack.setField(88, "0")
            ack.setField(58, "simulated: account unknown to the broker")
        else:
            ack.setField(87, "0")
        fix.Session.sendToTarget(ack, session)

    def _cmd_allocations(self) -> dict:
        return {"received": list(self.allocations_received)}

    def _cmd_reject_allocations(self, count: int = 1) -> dict:
        self.reject_allocations = int(count)
        return {"ok": True}

    def _cmd_md_config(self, **values) -> dict:
        """rate (updates a second per security), batch (securities per 35=X),
        trade_probability."""
        for key, value in values.items():
            if key not in ("rate", "batch", "trade_probability"):
                raise KeyError(f"no such market data setting {key!r}")
            setattr(self.market, key, type(getattr(self.market, key))(value))
        return {"ok": True}

    def _cmd_md_pause(self, symbols: list, paused: bool = True) -> dict:
        """Stop (or restart) publishing these securities: the OMS should flag them stale."""
        with self.market.lock:
            for symbol in symbols:
                self.market.book(symbol).paused = paused
        return {"ok": True}

    def _cmd_md_reject(self, symbols: list) -> dict:
        """Refuse market data requests for these securities (35=Y)."""
        self.market.reject_symbols = set(symbols)
        return {"ok": True}

    def _cmd_md_state(self) -> dict:
        return self.market.state()

    def _cmd_done_for_day(self) -> dict:
        count = 0
        for order in {id(o): o for o in self.orders.values()}.values():
            if order.leaves > 0 and order.status not in ("4", "8", "3"):
                order.status = "3"
                self._send_er(order, exec_type="3")
                count += 1
        return {"orders": count}

    def stop(self) -> None:
        self.market.stop()
        with self.lock:
            self.stopped = True
            self.wake.notify_all()


def _algo_tags(message) -> dict:
    """The algo instruction as it arrived: 847, 848 and any tag of the broker's own (5000+)."""
    found = {}
    for tag, value in re.findall(r"\x01(\d+)=([^\x01]*)", "\x01" + message.toString()):
        if tag in ("847", "848") or int(tag) >= 5000:
            found[tag] = value
    return found


def acceptor_settings(
    sessions: list[dict],
    store_dir: Path,
    log_dir: Path | None = None,
    personalities: list[str] | tuple[str, ...] = (),
) -> fix.SessionSettings:
    """The acceptor's settings: one session per entry ({"port", "sender", "target",
    "fix_version", "settings": {extra QuickFIX settings}}), with the engine side of the
    personalities (e.g. ResetOnLogon, AllowUnknownMsgFields=N) on every session."""
    engine: dict = {}
    for name in personalities:
        engine.update(personality(name).session)
    store_dir.mkdir(parents=True, exist_ok=True)
    default = {
        "ConnectionType": "acceptor",
        "FileStorePath": str(store_dir),
        "StartTime": "00:00:00",
        "EndTime": "00:00:00",
        "UseDataDictionary": "Y",
        "ValidateUserDefinedFields": "N",
        "AllowUnknownMsgFields": "Y",
        "ValidateFieldsOutOfOrder": "N",
    }
    if log_dir:
        log_dir.mkdir(parents=True, exist_ok=True)
        default["FileLogPath"] = str(log_dir)
    values = []
    for s in sessions:
        values.append(
            {
                "BeginString": s.get("fix_version", "FIX.4.4"),
                "SenderCompID": s["sender"],
                "TargetCompID": s["target"],
                "SocketAcceptPort": str(s["port"]),
                # Like most brokers, the simulator takes TargetStrategy (847) codes in the user
                # range 1000+ (TWAP is 1001 here); the standard dictionary only lists 1-3.
                "DataDictionary": fixmsg.open_enum_dictionary(
                    s.get("fix_version", "FIX.4.4"), store_dir
                ),
                **engine,
                **{k: str(v) for k, v in (s.get("settings") or {}).items()},
            }
        )
    return fixmsg.session_settings(default, values)


class ControlServer(ThreadingHTTPServer):
    daemon_threads = True


def control_server(sim: BrokerSimulator, port: int) -> ControlServer:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            command = self.path.strip("/")
            try:
                result, code = sim.control(command, body), 200
            except Exception as exc:  # a bad hook call is the caller's answer, not a crash
                result, code = {"error": f"{type(exc).__name__}: {exc}"}, 400
            data = json.dumps(result, default=str).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = ControlServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


_FRAME = re.compile(rb"8=[^\x01]*\x019=(\d+)\x01")


class FaultProxy:
    """A TCP relay between the OMS (initiator) and the simulator that can misbehave like a
    network: freeze (the counterparty goes silent: bytes are held, nothing is answered), and
    inject raw bytes into the stream towards the OMS, only between whole messages so no real
    message is cut."""

    def __init__(self, target_port: int, listen_port: int = 0, host: str = "127.0.0.1"):
        self.target = (host, target_port)
        self.listener = socket.create_server((host, listen_port))
        self.port = self.listener.getsockname()[1]
        self.frozen = threading.Event()
        self.pending: list[bytes] = []
        self.injected = 0
        self.lock = threading.Lock()
        self.closed = False
        self.pairs: list[tuple[socket.socket, socket.socket]] = []
        threading.Thread(target=self._accept, daemon=True, name="fault-proxy").start()

    def freeze(self) -> None:
        self.frozen.set()

    def thaw(self) -> None:
        self.frozen.clear()

    def inject(self, chunks: list[str | bytes]) -> None:
        with self.lock:
            self.pending.extend(c.encode("latin-1") if isinstance(c, str) else c for c in chunks)

    def close(self) -> None:
        self.closed = True
        self.listener.close()
        for a, b in self.pairs:
            for s in (a, b):
                try:
                    s.close()
                except OSError:
                    pass

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            self.pairs.append((client, upstream))
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, client: socket.socket, upstream: socket.socket) -> None:
        down = bytearray()  # simulator -> OMS, not yet forwarded
        up = bytearray()  # OMS -> simulator
        try:
            while not self.closed:
                readable, _, _ = select.select([client, upstream], [], [], 0.05)
                for s in readable:
                    data = s.recv(65536)
                    if not data:
                        return
                    (down if s is upstream else up).extend(data)
                if self.frozen.is_set():
                    continue
                if up:
                    upstream.sendall(bytes(up))
                    up.clear()
                # Forward whole messages only, injecting between them.
                while True:
                    m = _FRAME.match(down)
                    if not m:
                        break
                    end = down.find(b"\x0110=", m.end() + int(m.group(1)) - 1)
                    if end < 0 or len(down) < end + 8:
                        break
                    client.sendall(bytes(down[: end + 8]))
                    del down[: end + 8]
                if not down:
                    with self.lock:
                        chunks, self.pending = self.pending, []
                    for chunk in chunks:
                        client.sendall(chunk)
                        self.injected += 1
        except OSError:
            return
        finally:
            for s in (client, upstream):
                try:
                    s.close()
                except OSError:
                    pass
