"""The QuickFIX Application of the OMS side: outbox rows out, execution reports in.

Every callback is wrapped: an exception escaping into QuickFIX's thread calls Py_Exit there and
the session hangs silently, so anything unexpected is quarantined with the raw message, alerted,
and the session goes on. Callbacks run on QuickFIX's own thread, which keeps its own Django
database connection (connections are per thread).
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import quickfix as fix
from django.conf import settings
from django.db import (
    InterfaceError,
    OperationalError,
    close_old_connections,
    connection,
    transaction,
)

from . import fixmsg, services
from .fixmsg import get, get_date, get_decimal
from .models import Broker, FixOrder, OutboxMessage

log = logging.getLogger("fixgateway.session")

DB_UNAVAILABLE = (OperationalError, InterfaceError)


def _now() -> datetime:
    return datetime.now(UTC)


class GatewayApplication(fix.Application):
    """One per broker (each broker has its own initiator engine)."""

    def __init__(self, broker: Broker):
        super().__init__()
        self.broker = broker
        self.session_id: fix.SessionID | None = None
        self.logged_on = threading.Event()
        self.logon_generation = 0
        self.last_message_at: datetime | None = None
        self.last_sent_seq: int | None = None
        self.stale_seconds = getattr(settings, "OMS_FIX_STALE_ORDER_SECONDS", 120)
        self.stats = {"applied": 0, "duplicate": 0, "quarantined": 0, "unknown": 0}

    # -- session events ----------------------------------------------------------------------

    def onCreate(self, sessionID):  # noqa: N802, N803 (QuickFIX's names)
        self.session_id = sessionID

    def onLogon(self, sessionID):  # noqa: N802, N803
        try:
            self.logon_generation += 1
            self.logged_on.set()
            log.info("FIX logon %s", sessionID.toString())
        except BaseException:  # noqa: BLE001 (see module docstring)
            log.exception("onLogon failed")

    def onLogout(self, sessionID):  # noqa: N802, N803
        try:
            self.logged_on.clear()
            log.info("FIX logout %s", sessionID.toString())
        except BaseException:  # noqa: BLE001
            log.exception("onLogout failed")

    def toAdmin(self, message, sessionID):  # noqa: N802, N803
        pass

    def fromAdmin(self, message, sessionID):  # noqa: N802, N803
        try:
            self.last_message_at = _now()
            if fixmsg.msg_type(message) == "3" and get(message, 372) in ("D", "F", "G"):
                self._guarded(message, self._reject)
        except BaseException:  # noqa: BLE001
            log.exception("fromAdmin failed")

    def toApp(self, message, sessionID):  # noqa: N802, N803
        # DoNotSend must reach QuickFIX (it turns the resend into a gap fill); nothing else may.
        stale = False
        try:
            header = message.getHeader()
            self.last_sent_seq = int(header.getField(34)) if header.isSetField(34) else None
            if get(header, 43) == "Y" and fixmsg.msg_type(message) in ("D", "G"):
                sent = fixmsg.parse_fix_time(get(header, 122) or get(header, 52))
                stale = sent is None or _now() - sent > timedelta(seconds=self.stale_seconds)
                if stale:
                    log.warning("not re-sending stale order %s", get(message, 11))
        except BaseException:  # noqa: BLE001
            log.exception("toApp failed")
        if stale:
            raise fix.DoNotSend()

    def fromApp(self, message, sessionID):  # noqa: N802, N803
        try:
            self.last_message_at = _now()
            kind = fixmsg.msg_type(message)
            if kind == "8":
                self._guarded(message, self._execution_report)
            elif kind == "9":
                self._guarded(message, self._cancel_reject)
            elif kind == "j":
                self._guarded(message, self._reject)
            else:
                self._guarded(message, self._unexpected)
        except BaseException:  # noqa: BLE001
            log.exception("fromApp failed")

    # -- inbound -----------------------------------------------------------------------------

    def _guarded(self, message, handler) -> None:
        close_old_connections()
        delay = 0.2
        while True:
            try:
                handler(message)
                return
            except DB_UNAVAILABLE:
                # QuickFIX counts a message as received only when this callback returns: while
                # the database is unreachable, hold it here (the socket buffers what follows)
                # and apply it once the database is back. Quarantining cannot work either, and
                # returning would acknowledge a report nobody recorded.
                log.warning("database unavailable; holding %s", fixmsg.raw_text(message)[:120])
                self._reconnect_after(delay)
                delay = min(delay * 2, 2.0)
                continue
            except Exception as exc:
                log.exception("FIX message could not be applied; quarantined")
                self.stats["quarantined"] += 1
                try:
                    self._quarantine_raw(message, exc)
                    return
                except DB_UNAVAILABLE:
                    self._reconnect_after(delay)
                    delay = min(delay * 2, 2.0)

    @staticmethod
    def _reconnect_after(delay: float) -> None:
        try:
            connection.close()
        except Exception:  # a dead connection may fail to close; it is dropped either way
            pass
        time.sleep(delay)

    def _quarantine_raw(self, message, exc: Exception) -> None:
        try:
            if connection.in_atomic_block or not connection.is_usable():
                connection.close()
            with transaction.atomic():
                services.quarantine_record(
                    broker=self.broker,
                    reason="exception",
                    detail=f"{type(exc).__name__}: {exc}",
                    raw=fixmsg.raw_text(message),
                    as_of=_now(),
                )
        except DB_UNAVAILABLE:
            raise  # _guarded holds the message until the database is back
        except Exception:
            log.exception("could not even quarantine: %s", fixmsg.raw_text(message))

    def _report(self, message) -> services.InboundReport:
        header = message.getHeader()
        exec_type = get(message, 150)
        trans_type = get(message, 20)  # FIX 4.2: 1 cancel (bust), 2 correct, 3 status
        if trans_type == "1":
            exec_type = "H"
        elif trans_type == "2":
            exec_type = "G"
        elif trans_type == "3":
            exec_type = "I"
        return services.InboundReport(
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
            raw=fixmsg.raw_text(message),
        )

    def _execution_report(self, message) -> None:
        report = self._report(message)
        result = services.execution_report_apply(broker=self.broker, report=report, as_of=_now())
        self.stats[result.outcome] = self.stats.get(result.outcome, 0) + 1
        if result.dont_know:
            self._send_dont_know(report, message)

    def _cancel_reject(self, message) -> None:
        services.cancel_reject_apply(broker=self.broker, report=self._report(message), as_of=_now())

    def _reject(self, message) -> None:
        services.message_reject_apply(
            broker=self.broker, report=self._report(message), as_of=_now()
        )

    def _unexpected(self, message) -> None:
        with transaction.atomic():
            services.quarantine_record(
                broker=self.broker,
                reason="unexpected_message",
                raw=fixmsg.raw_text(message),
                as_of=_now(),
            )

    def _send_dont_know(self, report: services.InboundReport, original) -> None:
        dk = fixmsg.new_message("Q")
        dk.setField(37, report.order_id or "NONE")
        dk.setField(17, report.exec_id or "NONE")
        dk.setField(127, "D")  # no matching order
        dk.setField(55, get(original, 55) or "UNKNOWN")
        dk.setField(54, get(original, 54) or "1")
        if self.broker.fix_version == Broker.FixVersion.FIX44:
            dk.setField(38, get(original, 38) or "0")
        else:
            dk.setField(38, get(original, 38) or "0")
        if report.last_qty:
            dk.setField(32, str(report.last_qty))
            dk.setField(31, str(report.last_px))
        dk.setField(58, f"unknown ClOrdID {report.cl_ord_id}")
        fix.Session.sendToTarget(dk, self.session_id)

    # -- outbound ----------------------------------------------------------------------------

    def build(self, row: OutboxMessage) -> fix.Message:
        p = row.payload
        extra = self.broker.extra_config or {}
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
            self._strategy_fields(message, p, extra)
        return message

    def _strategy_fields(self, message, payload: dict, extra: dict) -> None:
        strategy = (payload.get("strategy") or "").upper()
        if not strategy or strategy == "DMA":
            return
        codes = {**fixmsg.DEFAULT_STRATEGY_CODES, **extra.get("strategy_codes", {})}
        message.setField(847, str(codes.get(strategy, strategy)))
        params = payload.get("strategy_params") or {}
        tags = extra.get("strategy_tags") or {}
        plain = []
        for name, value in sorted(params.items()):
            if name in tags:
                message.setField(int(tags[name]), str(value))
            else:
                plain.append(f"{name}={value}")
        if plain:
            message.setField(848, ";".join(plain))

    def send_outbox(self) -> int:
        """Send what the outbox holds for this broker, oldest first. Returns how many."""
        if not self.logged_on.is_set() or self.session_id is None:
            return 0
        sent = 0
        close_old_connections()
        rows = list(
            OutboxMessage.objects.filter(broker=self.broker, sent_at__isnull=True).order_by("id")[
                :500
            ]
        )
        for row in rows:
            self.last_sent_seq = None
            if not fix.Session.sendToTarget(self.build(row), self.session_id):
                break
            # QuickFIX has persisted the message in its store before writing it to the socket;
            # if we die before this update, start-up finds it in the store (see runner).
            services.outbox_mark_sent(message_id=row.pk, seq_num=self.last_sent_seq, as_of=_now())
            sent += 1
        return sent

    def request_status(self) -> int:
        """OrderStatusRequest for every working order (after each logon)."""
        count = 0
        for fo in services_working(self.broker.pk):
            message = fixmsg.new_message("H")
            message.setField(11, fo.cl_ord_id)
            if fo.broker_order_id:
                message.setField(37, fo.broker_order_id)
            message.setField(55, fo.block.security.symbol)
            message.setField(54, fixmsg.SIDE_TO_FIX[fo.block.side])
            if fix.Session.sendToTarget(message, self.session_id):
                count += 1
        return count


def services_working(broker_id: int) -> list[FixOrder]:
    from .selectors import fix_orders_working

    return list(fix_orders_working(broker_id=broker_id))


def decimal_or_zero(value: str) -> Decimal:
    try:
        return Decimal(value)
    except Exception:
        return Decimal(0)


def wait_for(predicate, timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
