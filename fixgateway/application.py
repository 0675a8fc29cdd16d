"""The QuickFIX Application of the OMS side: outbox rows out, execution reports in.

Every callback is wrapped: an exception escaping into QuickFIX's thread calls Py_Exit there and
the session hangs silently, so anything unexpected is logged and the session goes on.

Inbound messages are not applied in the callback. The callback turns each one into an
`InboundItem` (the report, its MsgSeqNum and the QuickFIX store it is numbered in) and puts it
on a bounded queue; one applier thread takes them off in arrival order and applies many per
transaction (`inbound.inbound_batch_apply`), recording with them how far the inbound numbering
is covered (the mark). QuickFIX counts a message as received when the callback returns, so a
crash can lose what sits in the queue: at start-up the runner winds the session back to the
mark (`runner.inbound_rewind`) and the broker resends it (PossDup; replays are idempotent by
ExecID). When the queue is full the callback waits (the socket buffers what follows); while the
database is unreachable the applier keeps its batch and retries. The applier has its own Django
database connection (connections are per thread).
"""

from __future__ import annotations

import logging
import queue
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import quickfix as fix
from django.conf import settings
from django.db import (
    InterfaceError,
    OperationalError,
    close_old_connections,
    connection,
    transaction,
)

from . import allocinstr, fixmsg, inbound, marketdata, monitor, reports, sending
from .algo import algo_fields
from .fixmsg import get, get_date, get_decimal
from .models import Broker, OutboxMessage
from .selectors import InboundMark, fix_orders_working, inbound_mark

log = logging.getLogger("fixgateway.session")
alerts = logging.getLogger("fixgateway.alerts")

DB_UNAVAILABLE = (OperationalError, InterfaceError)
ADMIN_MSG_TYPES = frozenset({"0", "1", "2", "4", "5", "A"})
# How many sent messages the process remembers by MsgSeqNum (for matching rejects).
SENT_INDEX_SIZE = 100_000
# "tag 847", "Tag #6403", "tag=848" in a business reject's text.
TAG_IN_TEXT = re.compile(r"\btag\s*[#=:]?\s*(\d{1,5})\b", re.IGNORECASE)
CXL_REJECT_REASONS = {
    "0": "Too late to cancel",
    "1": "Unknown order",
    "2": "Broker option",
    "3": "Already pending cancel or replace",
    "6": "Duplicate ClOrdID",
    "99": "Other",
}
SEQUENCE_TOO_LOW = re.compile(r"MsgSeqNum too low|sequence (number )?too low", re.IGNORECASE)
# How long a callback waits on a full queue before it looks whether the engine is stopping.
PUT_WAIT_SECONDS = 0.5


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class InboundItem:
    """One inbound message as the applier needs it: the report, where it sits in the inbound
    numbering (MsgSeqNum and the QuickFIX store's creation time), and the original message's
    Symbol, Side and OrderQty (55/54/38) for a DontKnowTrade."""

    report: reports.InboundReport
    seq_num: int | None
    store_created: str
    symbol: str = ""
    side: str = ""
    order_qty: str = ""


class GatewayApplication(fix.Application):
    """One per broker (each broker has its own initiator engine)."""

    def __init__(self, broker: Broker, store_created: Callable[[], str] | None = None):
        super().__init__()
        self.broker = broker
        self.session_id: fix.SessionID | None = None
        self.logged_on = threading.Event()
        self.logon_generation = 0
        self.last_message_at: datetime | None = None
        # What this process sent, by (sequence epoch, MsgSeqNum): MsgType and ClOrdID, written
        # in toApp before the bytes leave, so a reject (35=3 / 35=j) naming a RefSeqNum is
        # matched whatever its speed, including status requests that are no outbox row.
        self.sent_index: OrderedDict[tuple[str, int], tuple[str, str]] = OrderedDict()
        self._sent_lock = threading.Lock()
        # Set when either side's MsgSeqNum went below what the other expects (read by the
        # runner, which stops logging on until an operator resets the numbers).
        self.sequence_problem = ""
        # Whether the latest logon followed a reset of the numbering (a new store, the
        # broker's ResetSeqNumFlag): what was in flight is not resent, so working orders
        # must be confirmed again. Set in onLogon, read by the runner with the generation.
        self.logon_after_reset = False
        self._reset_flag_seen = False
        self.last_recorded = ""  # the ClOrdID toApp last recorded as sent
        self.stale_seconds = getattr(settings, "OMS_FIX_STALE_ORDER_SECONDS", 120)
        self.stats = {"applied": 0, "duplicate": 0, "quarantined": 0, "unknown": 0}
        # Inbound: callbacks (QuickFIX's thread) -> queue -> applier thread.
        self.batch_size = max(1, int(getattr(settings, "OMS_FIX_APPLY_BATCH", 500)))
        self.inbound: queue.Queue[InboundItem] = queue.Queue(
            maxsize=max(1, int(getattr(settings, "OMS_FIX_INBOUND_QUEUE", 5000)))
        )
        self._read_store_created = store_created or (lambda: "")
        self.store_created = ""
        # Set when the engine is stopping: callbacks stop queueing (what they drop is above
        # the mark, so the next start-up has it resent). Never cleared: a gap in the queue
        # must not be followed by anything the applier would mark as covered.
        self.inbound_closed = threading.Event()
        # Set when a message could not be queued while the engine runs: the runner restarts
        # the engine (and so winds the session back) rather than carry on past a gap.
        self.inbound_failed = threading.Event()
        self._applier_stop = threading.Event()
        self._applier: threading.Thread | None = None
        # Market data (35=V/W/X) and allocation instructions (35=J/P) live in modules of their
        # own; these are their only hooks here.
        # (Where market data has a FIX session of its own, its process holds it: mdsession.)
        self.market_data = (
            marketdata.MarketDataSession(broker, self)
            if marketdata.wants_market_data(broker) and not marketdata.has_own_session(broker)
            else None
        )
        self.allocations = allocinstr.AllocationSession(broker, self)

    # -- session events ----------------------------------------------------------------------

    def onCreate(self, sessionID):  # noqa: N802, N803 (QuickFIX's names)
        self.session_id = sessionID

    def onLogon(self, sessionID):  # noqa: N802, N803
        try:
            # A logon may have reset the store (ResetOnLogon, a new session day): what comes
            # next is numbered in the new one.
            before = self.store_created
            self.refresh_store_created()
            self.logon_after_reset = self._numbering_restarted(before)
            self._reset_flag_seen = False
            self.logon_generation += 1
            self.logged_on.set()
            log.info("FIX logon %s (store created %s)", sessionID.toString(), self.store_created)
        except BaseException:  # noqa: BLE001 (see module docstring)
            log.exception("onLogon failed")

    def _numbering_restarted(self, store_before: str) -> bool:
        """Whether this logon's numbering starts again: the broker sent ResetSeqNumFlag, our
        store was reset at logon, or the last report we committed was numbered in another
        store (reset while this process was not running)."""
        if self._reset_flag_seen or (store_before and store_before != self.store_created):
            return True
        try:
            mark = inbound_mark(broker_id=self.broker.pk)
        except DB_UNAVAILABLE:
            log.error("%s: database unavailable at logon: reset not checked", self.broker)
            return False
        return mark is not None and mark.store_created != self.store_created

    def onLogout(self, sessionID):  # noqa: N802, N803
        try:
            self.logged_on.clear()
            log.info("FIX logout %s", sessionID.toString())
        except BaseException:  # noqa: BLE001
            log.exception("onLogout failed")

    def toAdmin(self, message, sessionID):  # noqa: N802, N803
        try:
            # The broker's numbering went back (it restarted with a fresh store): QuickFIX
            # refuses it and logs out, again at every reconnect. A person must decide.
            self._sequence_problem_check(message, "we refused the broker's logon")
        except BaseException:  # noqa: BLE001
            log.exception("toAdmin failed")

    def _sequence_problem_check(self, message, who: str) -> None:
        """A Logout saying "MsgSeqNum too low" (QuickFIX's words, and most engines'): one
        side restarted its numbering and every logon will fail the same way."""
        if fixmsg.msg_type(message) == "5" and SEQUENCE_TOO_LOW.search(get(message, 58)):
            self.sequence_problem = f"{who}: {get(message, 58)}"

    def fromAdmin(self, message, sessionID):  # noqa: N802, N803
        try:
            self.last_message_at = _now()
            self._sequence_problem_check(message, "the broker refused our logon")
            if fixmsg.msg_type(message) == "A" and get(message, 141) == "Y":
                self._reset_flag_seen = True
            if fixmsg.msg_type(message) == "3" and self._about_app_message(message):
                self._enqueue(message)
        except BaseException:  # noqa: BLE001
            log.exception("fromAdmin failed")
            self.inbound_failed.set()

    def _about_app_message(self, reject) -> bool:
        """A session Reject of one of our application messages (an order, a cancel, a status
        request...), not of a heartbeat or a logon."""
        ref_type = get(reject, 372)
        if ref_type:
            return ref_type not in ADMIN_MSG_TYPES
        seq = get(reject, 45)
        # Without RefMsgType: ours if we sent an application message with that number (or we
        # cannot tell, as after a restart: the service then matches it, or opens an exception).
        return (
            not seq.isdigit()
            or (self.store_created, int(seq)) in self.sent_index
            or (not self.sent_index)
        )

    def toApp(self, message, sessionID):  # noqa: N802, N803
        # DoNotSend must reach QuickFIX (it turns the resend into a gap fill, or keeps a
        # message we could not record off the wire); nothing else may.
        refuse = False
        try:
            header = message.getHeader()
            kind = fixmsg.msg_type(message)
            if get(header, 43) == "Y":
                if kind in ("D", "G"):
                    sent = fixmsg.parse_fix_time(get(header, 122) or get(header, 52))
                    refuse = sent is None or _now() - sent > timedelta(seconds=self.stale_seconds)
                    if refuse:
                        log.warning("not re-sending stale order %s", get(message, 11))
            else:
                refuse = not self._record_sent(message, kind, header)
        except BaseException:  # noqa: BLE001
            log.exception("toApp failed")
        if refuse:
            raise fix.DoNotSend()

    def _record_sent(self, message, kind: str, header) -> bool:
        """Record what is about to leave, before QuickFIX writes it (toApp runs first): the
        MsgSeqNum and epoch of an order message go on its outbox row. False (do not send)
        when that cannot be recorded: a reject of it could not be matched."""
        seq = int(get(header, 34) or 0)
        cl_ord_id = get(message, 11)
        with self._sent_lock:
            self.sent_index[(self.store_created, seq)] = (kind, cl_ord_id)
            while len(self.sent_index) > SENT_INDEX_SIZE:
                self.sent_index.popitem(last=False)
        raw = fixmsg.raw_text(message)
        if kind not in ("D", "F", "G") or not cl_ord_id:
            self._keep_sent(message, kind, seq, raw)
            return True
        try:
            sending.outbox_record_sent(
                broker_id=self.broker.pk,
                msg_type=kind,
                cl_ord_id=cl_ord_id,
                seq_num=seq,
                seq_epoch=self.store_created,
                as_of=_now(),
                raw=raw,
                orig_cl_ord_id=get(message, 41),
            )
        except DB_UNAVAILABLE:
            log.error("%s: database unavailable: %s %s not sent", self.broker, kind, cl_ord_id)
            return False
        self.last_recorded = cl_ord_id
        return True

    def _keep_sent(self, message, kind: str, seq: int, raw: str) -> None:
        """Keep a message that is no outbox row for the monitor; it goes out even when the
        database cannot take it (a status request must not wait for the monitor)."""
        try:
            monitor.fix_message_sent(
                broker_id=self.broker.pk,
                message=monitor.SentMessage(
                    msg_type=kind,
                    seq_num=seq,
                    seq_epoch=self.store_created,
                    raw=raw,
                    cl_ord_id=get(message, 11),
                    order_id=get(message, 37),
                    exec_id=get(message, 17),
                ),
                as_of=_now(),
            )
        except DB_UNAVAILABLE:
            log.warning("%s: database unavailable: %s %s not kept", self.broker, kind, seq)

    def fromApp(self, message, sessionID):  # noqa: N802, N803
        try:
            self.last_message_at = _now()
            kind = fixmsg.msg_type(message)
            if kind in marketdata.MD_MSG_TYPES and self.market_data is not None:
                self.market_data.on_message(message)
                return
            if kind == "P":
                self.allocations.on_ack(message)
                return
            self._enqueue(message)
        except BaseException:  # noqa: BLE001
            log.exception("fromApp failed")
            self.inbound_failed.set()

    def refresh_store_created(self) -> None:
        try:
            self.store_created = self._read_store_created()
        except Exception:
            log.exception("could not read the FIX store's creation time")
            self.store_created = ""

    # -- inbound: the callback side ------------------------------------------------------------

    def _enqueue(self, message) -> None:
        """Queue the message for the applier; wait while the queue is full (backpressure),
        but give up once the engine is stopping: a message not queued is above the mark and
        comes again after the next start-up's rewind."""
        item = self._item(message)
        while not self.inbound_closed.is_set():
            try:
                self.inbound.put(item, timeout=PUT_WAIT_SECONDS)
                return
            except queue.Full:
                continue
        log.info("engine stopping: inbound MsgSeqNum %s left for the resend", item.seq_num)

    def _item(self, message) -> InboundItem:
        header = message.getHeader()
        seq = get(header, 34)
        try:
            report = self._report(message)
        except Exception as exc:
            # It cannot be read, so it must not be applied; it is queued anyway (in its place
            # in the numbering) for the service to quarantine with its raw text.
            kind = get(header, 35)
            alerts.error("FIX message %s could not be parsed: %s", seq or "?", exc)
            report = reports.InboundReport(
                msg_type=kind,
                exec_id=get(message, 17),
                text=f"unparseable: {type(exc).__name__}: {exc}"[:500],
                raw=fixmsg.raw_text(message),
                extra={"parse_error": f"{type(exc).__name__}: {exc}"},
            )
        report.seq_num = int(seq) if seq.isdigit() else None
        return InboundItem(
            report=report,
            seq_num=report.seq_num,
            store_created=self.store_created,
            symbol=get(message, 55),
            side=get(message, 54),
            order_qty=get(message, 38),
        )

    def _report(self, message) -> reports.InboundReport:
        header = message.getHeader()
        exec_type = get(message, 150)
        trans_type = get(message, 20)  # FIX 4.2: 1 cancel (bust), 2 correct, 3 status
        if trans_type == "1":
            exec_type = "H"
        elif trans_type == "2":
            exec_type = "G"
        elif trans_type == "3":
            exec_type = "I"
        return reports.InboundReport(
            msg_type=fixmsg.msg_type(message),
            cl_ord_id=get(message, 11),
            orig_cl_ord_id=get(message, 41),
            order_id=get(message, 37),
            exec_id=get(message, 17),
            exec_type=exec_type,
            ord_status=get(message, 39),
            exec_ref_id=get(message, 19),
            last_qty=get_decimal(message, 32),
            last_px=get_decimal(message, 31),
            cum_qty=get_decimal(message, 14),
            avg_px=get_decimal(message, 6),
            leaves_qty=get_decimal(message, 151),
            trade_date=get_date(message, 75),
            poss_dup=get(header, 43) == "Y",
            text=get(message, 58),
            ref_seq_num=int(get(message, 45)) if get(message, 45).isdigit() else None,
            business_ref_id=get(message, 379),
            seq_epoch=self.store_created,
            raw=fixmsg.raw_text(message),
            **self._reject_fields(message),
        )

    def _reject_fields(self, message) -> dict:
        """A reject's references, readable by a trader: the tag it names (371, or "tag NNN" in
        the text of a business reject) with its field name from the data dictionary, the
        reason (373 / 380 / 102) in words, and what we sent with that RefSeqNum."""
        kind = fixmsg.msg_type(message)
        if kind not in ("3", "j", "9"):
            return {}
        fields: dict = {"ref_msg_type": get(message, 372), "extra": {}}
        tag_text = get(message, 371)
        if not tag_text:
            found = TAG_IN_TEXT.search(get(message, 58))
            tag_text = found.group(1) if found else ""
        if tag_text.isdigit():
            fields["ref_tag"] = int(tag_text)
            fields["ref_tag_label"] = fixmsg.tag_label(int(tag_text), self.broker.fix_version)
        reason_tag, names = {
            "3": (373, fixmsg.SESSION_REJECT_REASONS),
            "j": (380, fixmsg.BUSINESS_REJECT_REASONS),
            "9": (102, CXL_REJECT_REASONS),
        }[kind]
        reason = get(message, reason_tag)
        if reason:
            fields["reject_reason"] = reason
            fields["reject_reason_text"] = names.get(reason, f"reason {reason}")
        seq = get(message, 45)
        with self._sent_lock:
            sent = self.sent_index.get((self.store_created, int(seq))) if seq.isdigit() else None
        if sent is not None:
            fields["extra"] = {"sent_msg_type": sent[0], "sent_cl_ord_id": sent[1]}
        return fields

    # -- inbound: the applier thread -------------------------------------------------------------

    def applier_start(self) -> None:
        self._applier = threading.Thread(
            target=self._apply_loop, name=f"fix-apply-{self.broker.code}", daemon=True
        )
        self._applier.start()

    def inbound_close(self) -> None:
        """Callbacks stop queueing (and stop waiting on a full queue): the engine is stopping."""
        self.inbound_closed.set()

    def applier_stop(self, timeout: float = 10) -> bool:
        """Let the applier finish the batch in hand and end; what is left in the queue is
        above the mark and is resent after the next start-up's rewind. True if it ended."""
        if self.market_data is not None:
            self.market_data.stop()
        self.inbound_close()
        self._applier_stop.set()
        thread = self._applier
        if thread is None or thread is threading.current_thread():
            return True
        thread.join(timeout)
        if thread.is_alive():
            log.error("%s: the applier did not end within %.0f s", self.broker, timeout)
            return False
        return True

    def _apply_loop(self) -> None:
        carried: InboundItem | None = None
        try:
            while not self._applier_stop.is_set():
                try:
                    batch, carried = self._next_batch(carried)
                    if batch:
                        self._apply_batch(batch)
                except Exception:
                    # Nothing may end this thread while the engine runs: the queue would fill
                    # and the session stall.
                    log.exception("%s: inbound applier failed; going on", self.broker)
                    time.sleep(0.2)
        finally:
            try:
                connection.close()
            except Exception:
                pass

    def _next_batch(
        self, carried: InboundItem | None
    ) -> tuple[list[InboundItem], InboundItem | None]:
        """The next batch in arrival order: wait for a first item, then take what is already
        queued, up to the batch size. Every item of a batch is numbered in the same store;
        an item of another store ends the batch and starts the next one."""
        first = carried
        while first is None:
            if self._applier_stop.is_set():
                return [], None
            try:
                first = self.inbound.get(timeout=0.2)
            except queue.Empty:
                continue
        batch = [first]
        while len(batch) < self.batch_size:
            try:
                item = self.inbound.get_nowait()
            except queue.Empty:
                break
            if item.store_created != first.store_created:
                return batch, item
            batch.append(item)
        return batch, None

    @staticmethod
    def _mark(batch: list[InboundItem]) -> InboundMark | None:
        seq = next((i.seq_num for i in reversed(batch) if i.seq_num is not None), None)
        if seq is None or not batch[0].store_created:
            return None
        return InboundMark(store_created=batch[0].store_created, seq_num=seq)

    def _apply_batch(self, batch: list[InboundItem]) -> None:
        close_old_connections()
        reports = [item.report for item in batch]
        try:
            results = self._until_committed(
                lambda: inbound.inbound_batch_apply(
                    broker=self.broker, reports=reports, as_of=_now(), mark=self._mark(batch)
                )
            )
        except _Abandoned:
            return
        except Exception:
            # Not the database: something in the batch the service did not expect. Apply the
            # reports one by one, so only the one at fault is set aside.
            log.exception("%s: batch of %d failed; applying one by one", self.broker, len(batch))
            try:
                for item in batch:
                    self._apply_one(item)
            except _Abandoned:
                pass
            return
        if len(results) != len(batch):
            log.error("%s: %d results for %d reports", self.broker, len(results), len(batch))
        for item, result in zip(batch, results, strict=False):
            self._after_commit(item, result)

    def _apply_one(self, item: InboundItem) -> None:
        try:
            (result,) = self._until_committed(
                lambda: inbound.inbound_batch_apply(
                    broker=self.broker,
                    reports=[item.report],
                    as_of=_now(),
                    mark=self._mark([item]),
                )
            )
        except _Abandoned:
            raise
        except Exception as exc:
            log.exception("FIX message could not be applied; quarantined")
            self.stats["quarantined"] += 1
            self._quarantine(item, exc)
            return
        self._after_commit(item, result)

    def _quarantine(self, item: InboundItem, exc: Exception) -> None:
        def record() -> None:
            with transaction.atomic():
                reports.quarantine_failure(
                    broker=self.broker, report=item.report, exc=exc, as_of=_now()
                )

        try:
            self._until_committed(record)
        except _Abandoned:
            raise
        except Exception:
            log.exception("could not even quarantine: %s", item.report.raw)

    def _until_committed(self, work):
        """Run `work` until it is not refused for an unreachable database: the batch is kept
        and tried again (0.2 s doubling to 2 s), never dropped. Once the engine is stopping it
        is abandoned instead (nothing of it is committed: it is resent after the rewind)."""
        delay = 0.2
        while True:
            try:
                return work()
            except DB_UNAVAILABLE:
                if self._applier_stop.is_set():
                    log.warning(
                        "%s: database unavailable while stopping; batch left for the resend",
                        self.broker,
                    )
                    raise _Abandoned from None
                log.warning("%s: database unavailable; holding the batch", self.broker)
                self._reconnect_after(delay)
                delay = min(delay * 2, 2.0)

    @staticmethod
    def _reconnect_after(delay: float) -> None:
        try:
            connection.close()
        except Exception:  # a dead connection may fail to close; it is dropped either way
            pass
        time.sleep(delay)

    def _after_commit(self, item: InboundItem, result: reports.ApplyResult) -> None:
        self.stats[result.outcome] = self.stats.get(result.outcome, 0) + 1
        if result.dont_know:
            try:
                self._send_dont_know(item)
            except Exception:
                log.exception("could not send DontKnowTrade for %s", item.report.exec_id)

    def _send_dont_know(self, item: InboundItem) -> None:
        report = item.report
        dk = fixmsg.new_message("Q")
        dk.setField(37, report.order_id or "NONE")
        dk.setField(17, report.exec_id or "NONE")
        dk.setField(127, "D")  # no matching order
        dk.setField(55, item.symbol or "UNKNOWN")
        dk.setField(54, item.side or "1")
        dk.setField(38, item.order_qty or "0")
        if report.last_qty:
            dk.setField(32, str(report.last_qty))
            dk.setField(31, str(report.last_px))
        dk.setField(58, f"unknown ClOrdID {report.cl_ord_id}")
        fix.Session.sendToTarget(dk, self.session_id)

    # -- outbound ----------------------------------------------------------------------------

    def build(self, row: OutboxMessage) -> fix.Message:
        p = row.payload
        kind = {"NEW": "D", "CANCEL": "F", "REPLACE": "G"}[row.kind]
        message = fixmsg.new_message(kind)
        message.setField(11, row.cl_ord_id)
        if row.orig_cl_ord_id:
            message.setField(41, row.orig_cl_ord_id)
        if p.get("broker_order_id"):
            message.setField(37, p["broker_order_id"])
        message.setField(55, p["symbol"])
        message.setField(54, fixmsg.SIDE_TO_FIX[p["side"]])
        message.setField(60, fixmsg.fix_time(row.created_at))
        message.setField(38, p["quantity"])
        if kind in ("D", "G"):
            message.setField(21, "1")  # automated, no broker intervention
            message.setField(40, fixmsg.ORD_TYPE_TO_FIX[p["order_type"]])
            if p.get("limit_price"):
                message.setField(44, p["limit_price"])
            if p.get("stop_price"):
                message.setField(99, p["stop_price"])
            message.setField(59, fixmsg.TIF_TO_FIX[p["time_in_force"]])
            if p.get("expire_date"):
                message.setField(432, p["expire_date"].replace("-", ""))
        if kind == "D":
            if p.get("currency"):
                message.setField(15, p["currency"])
            for tag, value in self._algo(p):
                message.setField(int(tag), str(value))
        return message

    def _algo(self, payload: dict) -> list:
        if "algo_fields" in payload:
            return payload["algo_fields"]  # decided when it was routed
        # A row queued before routing decided them: the same rules, now.
        return algo_fields(
            broker_code=self.broker.code,
            fix_version=self.broker.fix_version,
            extra_config=self.broker.extra_config,
            strategy=payload.get("strategy") or "",
            params=payload.get("strategy_params") or {},
        )

    def send_outbox(self) -> int:
        """Send what the outbox holds for this broker, oldest first. Returns how many.

        Each message is claimed first (QUEUED -> SENDING, `sending.outbox_send_claim`): a
        trader's cancel withdraws a message only while it is unclaimed, so a cancelled order
        never leaves. A NewOrderSingle queued longer than the broker allows is held for the
        trader instead. toApp records each message as sent before QuickFIX writes it."""
        if not self.logged_on.is_set() or self.session_id is None:
            return 0
        close_old_connections()
        claim = sending.outbox_send_claim(broker=self.broker, as_of=_now())
        if claim.held:
            log.warning("%s: %d queued orders held for a trader", self.broker, len(claim.held))
        sent = 0
        for i, row in enumerate(claim.send):
            if not fix.Session.sendToTarget(self.build(row), self.session_id):
                # Not handed to QuickFIX (the session dropped, or toApp refused): queued again.
                sending.outbox_send_unclaim(message_ids=[r.pk for r in claim.send[i:]])
                break
            if self.last_recorded != row.cl_ord_id:
                # toApp failed unexpectedly before recording it: sent, number unknown.
                sending.outbox_mark_sent(
                    message_id=row.pk, seq_num=None, as_of=_now(), seq_epoch=self.store_created
                )
            sent += 1
        return sent

    def request_status(self) -> int:
        """OrderStatusRequest for every working order (after each logon)."""
        count = 0
        for fo in fix_orders_working(broker_id=self.broker.pk):
            message = fixmsg.new_message("H")
            message.setField(11, fo.cl_ord_id)
            if fo.broker_order_id:
                message.setField(37, fo.broker_order_id)
            message.setField(55, fo.block.security.symbol)
            message.setField(54, fixmsg.SIDE_TO_FIX[fo.block.side])
            if fix.Session.sendToTarget(message, self.session_id):
                count += 1
        return count


class _Abandoned(Exception):
    """The engine is stopping and the database is unreachable: the batch is left uncommitted."""
