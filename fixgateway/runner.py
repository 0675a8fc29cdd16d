"""The FIX worker: one QuickFIX initiator per active broker, one owner per broker at a time.

Ownership is a session-level Postgres advisory lock held on a dedicated connection: when the
owning process dies (even `kill -9`), Postgres drops the connection and the lock, and a standby
process polling pg_try_advisory_lock every second takes over well inside 10 s. The same
connection LISTENs for outbox notifications, so a routed order is sent right after its commit.

"Sent" across a crash: QuickFIX writes each outgoing message to its file store (with its
sequence number) before writing it to the socket, and we mark the outbox row sent after
sendToTarget returns. A crash in between leaves a row marked unsent whose ClOrdID is in the
store; start-up reads the store and marks such rows sent instead of sending them again. If the
bytes never reached the broker, the broker sees a sequence gap at the next logon and asks for a
resend, which QuickFIX serves from that store (a stale NewOrderSingle becomes a gap fill).
So the store is the single record of what was sent: nothing is lost, nothing sent twice.

"Received" across a crash: reports are applied by the application's applier thread, many per
transaction, after the QuickFIX callback has returned (and QuickFIX has counted the message as
received). Each batch commits, with its effects, the inbound mark: the store (by its creation
time) and the MsgSeqNum the batch ends at. At start-up, before the engine connects, the session
is wound back to the mark when the store is the same one (`inbound_rewind`): at logon the broker
sees the gap and resends what was received but never committed, flagged PossDup; replays are
idempotent by ExecID.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import re
import socket
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import quickfix as fix
from django.conf import settings
from django.db import close_old_connections, connection

from . import fixmsg, outbound, selectors, sending, sessions
from .application import GatewayApplication
from .models import Broker, OutboxMessage
from .selectors import InboundMark

log = logging.getLogger("fixgateway.runner")

LOCK_NAMESPACE = 5_100_417  # pg_advisory_lock(namespace, broker id)
APPLIER_STOP_SECONDS = 10


def _active_broker_ids() -> list[int]:
    return list(Broker.objects.filter(active=True).order_by("pk").values_list("pk", flat=True))


def _now() -> datetime:
    return datetime.now(UTC)


def _dedicated_connection() -> psycopg.Connection:
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    params.pop("server_side_binding", None)
    params.pop("prepare_threshold", None)
    return psycopg.connect(**params, autocommit=True)


def _store_dir() -> Path:
    return Path(settings.OMS_FIX_STORE_DIR)


def _log_dir() -> Path:
    return Path(settings.OMS_FIX_LOG_DIR)


_MSG_SPLIT = re.compile(r"(?=8=FIX)")
_FIELD = re.compile(r"\x01(\d+)=([^\x01]*)")


def _store_prefix(broker: Broker) -> str:
    """The QuickFIX FileStore's file names for this session (without their extension)."""
    return f"{broker.fix_version}-{broker.sender_comp_id}-{broker.target_comp_id}"


def store_created(broker: Broker) -> str:
    """When this session's QuickFIX store was created (or last reset), as the FileStore keeps
    it in `<prefix>.session` (e.g. "20261126-01:31:53"); "" when there is no store yet. The
    inbound numbering belongs to one store: a reset starts it again at 1."""
    path = _store_dir() / f"{_store_prefix(broker)}.session"
    try:
        return path.read_text(encoding="latin-1").strip()
    except FileNotFoundError:
        return ""


def inbound_rewind_target(
    *, mark: InboundMark | None, store_created: str, expected: int
) -> int | None:
    """The MsgSeqNum to expect next so the broker resends what was received but not committed,
    or None to leave the session alone: when nothing is marked, when the mark belongs to
    another store (a reset renumbered the session), or when the store expects nothing past
    the mark."""
    if mark is None or not store_created or mark.store_created != store_created:
        return None
    if expected > mark.seq_num + 1:
        return mark.seq_num + 1
    return None


def inbound_rewind(broker: Broker) -> int | None:
    """Wind the (created, not yet started) session back to the database's inbound mark.
    Returns the new expected MsgSeqNum, or None when it was left alone."""
    session = _registered_session(broker)
    if session is None:
        raise RuntimeError(f"{broker}: no FIX session to wind back")
    mark = selectors.inbound_mark(broker_id=broker.pk)
    created = store_created(broker)
    expected = session.getExpectedTargetNum()
    if not created:
        log.error(
            "%s: no QuickFIX FileStore under %s: inbound marks cannot be kept, and reports "
            "queued but not committed at a crash would not be resent",
            broker,
            _store_dir(),
        )
    target = inbound_rewind_target(mark=mark, store_created=created, expected=expected)
    if target is None:
        log.info(
            "%s: inbound mark %s, store %s expects %d: nothing to resend",
            broker,
            mark,
            created or "-",
            expected,
        )
        return None
    session.setNextTargetMsgSeqNum(target)
    log.warning(
        "%s: the store expects inbound MsgSeqNum %d but only up to %d is committed: wound back "
        "to %d, the broker resends the rest",
        broker,
        expected,
        mark.seq_num,
        target,
    )
    return target


def store_sent_cl_ord_ids(broker: Broker) -> dict[str, int]:
    """ClOrdID -> sequence number of every order message in this session's QuickFIX store."""
    body = _store_dir() / f"{_store_prefix(broker)}.body"
    if not body.exists():
        return {}
    found: dict[str, int] = {}
    for chunk in _MSG_SPLIT.split(body.read_bytes().decode("latin-1")):
        fields = dict(_FIELD.findall("\x01" + chunk))
        if fields.get("35") in ("D", "F", "G") and "11" in fields:
            found[fields["11"]] = int(fields.get("34", "0") or 0)
    return found


def outbox_reconcile_with_store(broker: Broker) -> int:
    """At start-up, before the engine runs: an unsent or claimed outbox row whose ClOrdID is
    in QuickFIX's store left already (marked SENT, with its MsgSeqNum and the store as its
    epoch); a row claimed by a process that died before handing it over is queued again."""
    unsent = dict(
        OutboxMessage.objects.filter(
            broker=broker,
            sent_at__isnull=True,
            status__in=(OutboxMessage.Status.QUEUED, OutboxMessage.Status.SENDING),
        ).values_list("cl_ord_id", "pk")
    )
    if not unsent:
        return 0
    stored = store_sent_cl_ord_ids(broker)
    epoch = store_created(broker)
    marked = 0
    for cl_ord_id, pk in unsent.items():
        if cl_ord_id in stored:
            sending.outbox_mark_sent(
                message_id=pk, seq_num=stored[cl_ord_id], as_of=_now(), seq_epoch=epoch
            )
            marked += 1
    if marked:
        log.warning("%s: %d outbox rows were in the FIX store already: marked sent", broker, marked)
    requeued = sending.outbox_send_unclaim(
        message_ids=[pk for cl, pk in unsent.items() if cl not in stored]
    )
    if requeued:
        log.warning("%s: %d claimed outbox rows never left: queued again", broker, requeued)
    return marked


def outbox_requeue_unpersisted(broker: Broker) -> int:
    """At start-up, with the engine created and not started: a message is recorded as sent in
    toApp, just before QuickFIX stores it. One recorded in this store's epoch at a MsgSeqNum
    the store has not reached never left (the process died in between): queued again."""
    session = _registered_session(broker)
    epoch = store_created(broker)
    if session is None or not epoch:
        return 0
    requeued = sessions.outbox_requeue_unpersisted(
        broker=broker, seq_epoch=epoch, next_sender_seq_num=session.getExpectedSenderNum()
    )
    if requeued:
        log.warning(
            "%s: %d messages recorded as sent never reached the store: queued again",
            broker,
            requeued,
        )
    return requeued


def initiator_settings(broker: Broker) -> fix.SessionSettings:
    store, logs = _store_dir(), _log_dir()
    store.mkdir(parents=True, exist_ok=True)
    logs.mkdir(parents=True, exist_ok=True)
    default = {
        "ConnectionType": "initiator",
        "FileStorePath": str(store),
        "FileLogPath": str(logs),
        "StartTime": "00:00:00",
        "EndTime": "00:00:00",
        "ReconnectInterval": str(getattr(settings, "OMS_FIX_RECONNECT_SECONDS", 1)),
        "UseDataDictionary": "Y",
        "ValidateUserDefinedFields": "N",
        "AllowUnknownMsgFields": "Y",
        "ValidateFieldsOutOfOrder": "N",
        "PersistMessages": "Y",
        "FileStoreSync": "Y" if getattr(settings, "OMS_FIX_STORE_SYNC", False) else "N",
    }
    session = {
        "BeginString": broker.fix_version,
        "SenderCompID": broker.sender_comp_id,
        "TargetCompID": broker.target_comp_id,
        "SocketConnectHost": broker.host,
        "SocketConnectPort": str(broker.port),
        "HeartBtInt": str(broker.heartbeat_seconds),
        "DataDictionary": fixmsg.data_dictionary_path(broker.fix_version),
    }
    session.update({k: str(v) for k, v in (broker.extra_config or {}).get("session", {}).items()})
    return fixmsg.session_settings(default, [session])


# How often a session checks its broker's row for changes, and the gateway for new brokers.
BROKER_POLL_SECONDS = 2.0
# What a session is built from (initiator_settings, GatewayApplication's options): a change to
# any of these restarts that session.
SESSION_FIELDS = (
    "active",
    "host",
    "port",
    "fix_version",
    "sender_comp_id",
    "target_comp_id",
    "heartbeat_seconds",
    "extra_config",
)


def broker_session_settings(broker_id: int) -> dict | None:
    """The broker's session settings now, or None when it is gone or inactive."""
    row = Broker.objects.filter(pk=broker_id).values(*SESSION_FIELDS).first()
    return row if row and row["active"] else None


def _registered_session(broker: Broker):
    return fix.Session.lookupSession(
        fix.SessionID(broker.fix_version, broker.sender_comp_id, broker.target_comp_id)
    )


class BrokerSession(threading.Thread):
    """Waits for the broker's lock, then runs its initiator and sends from the outbox."""

    def __init__(self, broker_id: int, stop: threading.Event):
        super().__init__(name=f"fix-broker-{broker_id}", daemon=True)
        self.broker_id = broker_id
        self.stop_event = stop
        self.owner = f"{socket.gethostname()}:{os.getpid()}"
        self.app: GatewayApplication | None = None
        self.initiator = None
        self.owning = threading.Event()
        self.heartbeat_stop = threading.Event()

    def run(self) -> None:
        try:
            while not self.stop_event.is_set():
                try:
                    self._own_and_run()
                except Exception:
                    log.exception("broker %s session loop failed; retrying", self.broker_id)
                    self._stop_engine()
                    # A connection the failure broke (a database restart) is not used again:
                    # every retry would fail on it.
                    with contextlib.suppress(Exception):
                        connection.close()
                    self.stop_event.wait(2)
        finally:
            self._stop_engine()
            connection.close()

    def _own_and_run(self) -> None:
        # A deactivated broker's session waits here (without its lock) until it is active again.
        while not self.stop_event.is_set() and not broker_session_settings(self.broker_id):
            close_old_connections()
            self.stop_event.wait(BROKER_POLL_SECONDS)
        lock_conn = _dedicated_connection()
        try:
            while not self.stop_event.is_set():
                got = lock_conn.execute(
                    "SELECT pg_try_advisory_lock(%s, %s)", (LOCK_NAMESPACE, self.broker_id)
                ).fetchone()[0]
                if got:
                    break
                self.stop_event.wait(1)
            if self.stop_event.is_set():
                return
            self.owning.set()
            log.info("broker %s: this process (%s) owns the session", self.broker_id, self.owner)
            lock_conn.execute(f"LISTEN {outbound.NOTIFY_CHANNEL}")
            self._serve(lock_conn)
        finally:
            self.owning.clear()
            self._stop_engine()
            lock_conn.close()

    def _serve(self, lock_conn: psycopg.Connection) -> None:
        close_old_connections()
        broker = Broker.objects.get(pk=self.broker_id)
        outbox_reconcile_with_store(broker)
        stale = _registered_session(broker)
        if stale is not None:
            gc.collect()
            if _registered_session(broker) is not None:
                # A previous engine of this session is still alive: starting another one now
                # would leave QuickFIX's registry pointing at a dead session.
                raise RuntimeError(f"{broker}: the previous FIX engine is still registered")
        self.app = GatewayApplication(broker, store_created=lambda: store_created(broker))
        store_factory = fix.FileStoreFactory(initiator_settings(broker))
        settings_ = initiator_settings(broker)
        self.initiator = fix.SocketInitiator(
            self.app, store_factory, settings_, fix.FileLogFactory(settings_)
        )
        # The session and its store exist now (created with the engine); nothing is connected.
        inbound_rewind(broker)
        self.app.refresh_store_created()
        outbox_requeue_unpersisted(broker)
        self.app.applier_start()
        sessions.session_state_update(
            broker_id=broker.pk, as_of=_now(), logged_on=False, owner=self.owner, heartbeat=True
        )
        self._heartbeat_start(broker)
        # A reset an operator asked for while no process owned the session.
        self._sequence_reset(broker)
        self.initiator.start()
        seen_generation = 0
        started_with = broker_session_settings(broker.pk)
        checked_at = time.monotonic()
        reset_notice = f"{sessions.SESSION_RESET_NOTICE}:{broker.pk}"
        while not self.stop_event.is_set():
            app = self.app
            if app.inbound_failed.is_set():
                # A message could not be queued: restart the engine (and so wind the session
                # back to the mark) rather than carry on past it.
                raise RuntimeError(f"{broker}: an inbound message could not be queued")
            if app.logged_on.is_set() and app.logon_generation != seen_generation:
                seen_generation = app.logon_generation
                self._after_logon(broker, counterparty_reset=app.logon_after_reset)
            problem = app.sequence_problem
            if problem:
                app.sequence_problem = ""
                self._logons_stop(broker, problem)
            if time.monotonic() - checked_at >= BROKER_POLL_SECONDS:
                checked_at = time.monotonic()
                if broker_session_settings(broker.pk) != started_with:
                    # An operator changed the broker's row (address, identities, version,
                    # session settings) or deactivated it: the engine starts again from it,
                    # with no worker restart.
                    log.info("broker %s: its settings changed; restarting its session", broker)
                    return
            app.send_outbox()
            if app.logged_on.is_set():
                if app.market_data is not None:
                    app.market_data.tick()
                app.allocations.send_pending()
            # Wake on an outbox notification (or an operator's reset), or poll twice a
            # second; also proves the lock connection (and so our ownership) is alive.
            for notice in lock_conn.notifies(timeout=0.5, stop_after=1):
                if notice.payload == reset_notice:
                    self._sequence_reset(broker)

    def _after_logon(self, broker: Broker, *, counterparty_reset: bool) -> None:
        if self.app.market_data is not None:
            self.app.market_data.on_logon()
        sessions.session_sequence_resolved(broker=broker, as_of=_now())
        ask = sessions.session_logon_reconcile(
            broker_id=broker.pk, counterparty_reset=counterparty_reset, as_of=_now()
        )
        if not ask:
            log.info("%s: refuses status requests: working orders not asked about", broker)
            return
        asked = self.app.request_status()
        log.info("%s: asked the status of %d working orders", broker, asked)

    def _logons_stop(self, broker: Broker, problem: str) -> None:
        """Every logon would fail the same way: stop trying (a storm of refused logons helps
        no one) until an operator resets the sequence numbers. A restart tries once more."""
        session = _registered_session(broker)
        if session is not None:
            session.logout(problem[:200])  # disables it: the initiator stops reconnecting
        log.error("%s: logons stopped until the sequence numbers are reset: %s", broker, problem)
        sessions.session_sequence_refused(broker=broker, text=problem, as_of=_now())

    def _sequence_reset(self, broker: Broker) -> None:
        """Carry out an operator's reset of the sequence numbers, if one is pending: a new
        store (both numbers at 1, a new sequence epoch), the numbers given if any, and logons
        again."""
        session = _registered_session(broker)
        if session is None:
            return
        reset = sessions.session_sequence_reset_take(broker_id=broker.pk, as_of=_now())
        if reset is None:
            return
        session.reset()
        if reset.next_sender_seq_num:
            session.setNextSenderMsgSeqNum(reset.next_sender_seq_num)
        if reset.next_target_seq_num:
            session.setNextTargetMsgSeqNum(reset.next_target_seq_num)
        self.app.refresh_store_created()
        self.app.sequence_problem = ""
        session.logon()
        log.warning(
            "%s: sequence numbers reset by an operator (store %s, next out %d, next in %d)",
            broker,
            self.app.store_created,
            session.getExpectedSenderNum(),
            session.getExpectedTargetNum(),
        )

    def _heartbeat_start(self, broker: Broker) -> None:
        """The owner's heartbeat, on its own thread so a busy sender never makes a live owner
        look dead: the session state (logon, numbers) about every second."""
        interval = float(getattr(settings, "OMS_FIX_OWNER_HEARTBEAT_SECONDS", 1))
        app = self.app
        beating = threading.Event()
        self.heartbeat_stop = beating

        pooled = bool(connection.settings_dict.get("OPTIONS", {}).get("pool"))

        def beat() -> None:
            try:
                while not beating.wait(interval):
                    try:
                        self._write_state(broker, app)
                    except Exception:
                        log.exception("%s: heartbeat not written", broker)
                        close_old_connections()
                    if pooled:
                        # Back to the pool between beats: a slot held per broker for one
                        # UPDATE a second would crowd out the threads that need one.
                        connection.close()
            finally:
                connection.close()

        threading.Thread(target=beat, name=f"fix-heartbeat-{broker.code}", daemon=True).start()

    def _write_state(self, broker: Broker, app: GatewayApplication) -> None:
        session = fix.Session.lookupSession(app.session_id) if app.session_id else None
        sessions.session_state_update(
            broker_id=broker.pk,
            as_of=_now(),
            logged_on=app.logged_on.is_set(),
            next_sender_seq_num=session.getExpectedSenderNum() if session else None,
            next_target_seq_num=session.getExpectedTargetNum() if session else None,
            last_message_at=app.last_message_at,
            owner=self.owner,
            heartbeat=True,
        )

    def _stop_engine(self) -> None:
        # The heartbeat stops first: it must not outlive the engine it reports on.
        self.heartbeat_stop.set()
        initiator, self.initiator = self.initiator, None
        had_engine = initiator is not None
        app = self.app
        if app is not None:
            # A callback waiting on a full queue gives up now, or the engine could not stop.
            app.inbound_close()
        if initiator is not None:
            try:
                initiator.stop()
            except Exception:
                log.exception("initiator stop failed")
            # Destroy the engine now. Its sessions leave QuickFIX's global registry (by
            # SessionID) only when it is destroyed; if a traceback logged below kept this frame
            # alive, the stale engine would unregister the *next* engine's session when it
            # finally went, and that engine segfaults on its next reconnect or stop.
            del initiator
            gc.collect()
        if app is not None:
            # No callback runs any more: the applier finishes the batch in hand and ends. What
            # it leaves in the queue is above the mark: the next start-up has it resent.
            app.applier_stop(timeout=APPLIER_STOP_SECONDS)
        if had_engine:
            try:
                sessions.session_state_update(
                    broker_id=self.broker_id, as_of=_now(), logged_on=False
                )
            except Exception:
                log.exception("could not record the session as down")


class Gateway:
    """Every active broker's session in this process; a broker added or activated later gets
    its session within BROKER_POLL_SECONDS (unless the gateway was given fixed brokers)."""

    def __init__(self, broker_ids: list[int] | None = None):
        self.watch = broker_ids is None
        ids = broker_ids or _active_broker_ids()
        self.stop_event = threading.Event()
        self.sessions = [BrokerSession(pk, self.stop_event) for pk in ids]
        self.watcher: threading.Thread | None = None

    def start(self) -> None:
        # QuickFIX delivers each message on its own thread, which must take the GIL from
        # whichever Python thread holds it (the applier, the market data writer); Python
        # hands it over only every switch interval (5 ms by default), which caps the callbacks
        # near 200 a second whatever the CPU. A shorter interval lets the socket's reader in.
        sys.setswitchinterval(int(getattr(settings, "OMS_FIX_SWITCH_INTERVAL_US", 5000)) / 1e6)
        for s in self.sessions:
            s.start()
        if self.watch:
            self.watcher = threading.Thread(
                target=self._watch_brokers, name="fix-broker-watch", daemon=True
            )
            self.watcher.start()

    def _watch_brokers(self) -> None:
        try:
            while not self.stop_event.wait(BROKER_POLL_SECONDS):
                try:
                    close_old_connections()
                    known = {s.broker_id for s in self.sessions}
                    for pk in _active_broker_ids():
                        if pk not in known:
                            log.info("broker %s is new or active again: starting its session", pk)
                            session = BrokerSession(pk, self.stop_event)
                            self.sessions.append(session)
                            session.start()
                except Exception:
                    log.exception("looking for new brokers failed; trying again")
        finally:
            connection.close()

    def stop(self, timeout: float = 15) -> None:
        # The engines must be stopped before Python exits (exiting with one running segfaults).
        self.stop_event.set()
        for s in self.sessions:
            s.join(timeout)
