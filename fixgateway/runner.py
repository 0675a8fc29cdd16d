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
"""

from __future__ import annotations

import gc
import logging
import os
import re
import socket
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import quickfix as fix
from django.conf import settings
from django.db import close_old_connections, connection

from . import fixmsg, services
from .application import GatewayApplication
from .models import Broker, OutboxMessage

log = logging.getLogger("fixgateway.runner")

LOCK_NAMESPACE = 5_100_417  # pg_advisory_lock(namespace, broker id)


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


def store_sent_cl_ord_ids(broker: Broker) -> dict[str, int]:
    """ClOrdID -> sequence number of every order message in this session's QuickFIX store."""
    prefix = f"{broker.fix_version}-{broker.sender_comp_id}-{broker.target_comp_id}"
    body = _store_dir() / f"{prefix}.body"
    if not body.exists():
        return {}
    found: dict[str, int] = {}
    for chunk in _MSG_SPLIT.split(body.read_bytes().decode("latin-1")):
        fields = dict(_FIELD.findall("\x01" + chunk))
        if fields.get("35") in ("D", "F", "G") and "11" in fields:
            found[fields["11"]] = int(fields.get("34", "0") or 0)
    return found


def outbox_reconcile_with_store(broker: Broker) -> int:
    unsent = dict(
        OutboxMessage.objects.filter(broker=broker, sent_at__isnull=True).values_list(
            "cl_ord_id", "pk"
        )
    )
    if not unsent:
        return 0
    stored = store_sent_cl_ord_ids(broker)
    marked = 0
    for cl_ord_id, pk in unsent.items():
        if cl_ord_id in stored:
            services.outbox_mark_sent(message_id=pk, seq_num=stored[cl_ord_id], as_of=_now())
            marked += 1
    if marked:
        log.warning("%s: %d outbox rows were in the FIX store already: marked sent", broker, marked)
    return marked


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

    def run(self) -> None:
        try:
            while not self.stop_event.is_set():
                try:
                    self._own_and_run()
                except Exception:
                    log.exception("broker %s session loop failed; retrying", self.broker_id)
                    self._stop_engine()
                    self.stop_event.wait(2)
        finally:
            self._stop_engine()
            connection.close()

    def _own_and_run(self) -> None:
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
            lock_conn.execute(f"LISTEN {services.NOTIFY_CHANNEL}")
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
        self.app = GatewayApplication(broker)
        store_factory = fix.FileStoreFactory(initiator_settings(broker))
        settings_ = initiator_settings(broker)
        self.initiator = fix.SocketInitiator(
            self.app, store_factory, settings_, fix.FileLogFactory(settings_)
        )
        self.initiator.start()
        services.session_state_update(
            broker_id=broker.pk, as_of=_now(), logged_on=False, owner=self.owner
        )
        seen_generation = 0
        last_state = 0.0
        while not self.stop_event.is_set():
            app = self.app
            if app.logged_on.is_set() and app.logon_generation != seen_generation:
                seen_generation = app.logon_generation
                asked = app.request_status()
                log.info("%s: asked the status of %d working orders", broker, asked)
            app.send_outbox()
            if time.monotonic() - last_state > 1:
                last_state = time.monotonic()
                self._write_state(broker)
            # Wake on an outbox notification, or poll twice a second; also proves the lock
            # connection (and so our ownership) is alive.
            for _ in lock_conn.notifies(timeout=0.5, stop_after=1):
                pass

    def _write_state(self, broker: Broker) -> None:
        session = fix.Session.lookupSession(self.app.session_id) if self.app.session_id else None
        services.session_state_update(
            broker_id=broker.pk,
            as_of=_now(),
            logged_on=self.app.logged_on.is_set(),
            next_sender_seq_num=session.getExpectedSenderNum() if session else None,
            next_target_seq_num=session.getExpectedTargetNum() if session else None,
            last_message_at=self.app.last_message_at,
            owner=self.owner,
        )

    def _stop_engine(self) -> None:
        initiator, self.initiator = self.initiator, None
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
            try:
                services.session_state_update(
                    broker_id=self.broker_id, as_of=_now(), logged_on=False
                )
            except Exception:
                log.exception("could not record the session as down")


class Gateway:
    """Every active broker's session in this process."""

    def __init__(self, broker_ids: list[int] | None = None):
        ids = broker_ids or list(Broker.objects.filter(active=True).values_list("pk", flat=True))
        self.stop_event = threading.Event()
        self.sessions = [BrokerSession(pk, self.stop_event) for pk in ids]

    def start(self) -> None:
        for s in self.sessions:
            s.start()

    def stop(self, timeout: float = 15) -> None:
        # The engines must be stopped before Python exits (exiting with one running segfaults).
        self.stop_event.set()
        for s in self.sessions:
            s.join(timeout)
