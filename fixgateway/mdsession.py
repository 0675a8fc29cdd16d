"""Market data over a FIX session of its own, in a process of its own, where the broker's row
says so: extra_config {"market_data": {"session": {"SenderCompID": "OMSMD", ...}}} (QuickFIX
settings of that session over the order session's: typically another SenderCompID, or another
host and port where the broker serves market data apart).

Why: on the order session, market data and execution reports share one socket read by one
thread, in one process. A burst of fills the applier cannot take at once fills the inbound
queue, QuickFIX's reader waits on it, and every quote behind the fills in the socket waits
too (seconds, at 25,000 updates a second); and the process's one GIL is shared between
reading quotes and applying fills. Apart, neither waits for the other.

The session carries nothing that must not be lost: each logon starts the numbering again
(ResetOnLogon) and subscribes afresh (a snapshot, then refreshes), so it has no outbox, no
resend and no inbound mark. `manage.py run_market_data` (the Procfile's `md`) holds the
session of every broker configured so, started and stopped as broker rows change
(market_data_supervise); `--broker CODE` holds one.
"""

from __future__ import annotations

import json
import logging
import sys
import threading

import quickfix as fix
from django.conf import settings
from django.db import close_old_connections, connection

from . import fixmsg
from .marketdata import MD_MSG_TYPES, MarketDataSession

log = logging.getLogger("fixgateway.marketdata")


def separate_session(broker) -> dict | None:
    """The QuickFIX settings of the broker's market data session, if its market data has a
    session of its own; None when it rides the order session (or there is none)."""
    config = (broker.extra_config or {}).get("market_data")
    if isinstance(config, dict) and isinstance(config.get("session"), dict):
        return {str(k): str(v) for k, v in config["session"].items()}
    return None


class MarketDataApplication(fix.Application):
    """The QuickFIX Application of a market-data-only session: 35=W / 35=X / 35=Y into the
    books (fixgateway.marketdata), nothing else. Every callback is wrapped: an exception
    escaping into QuickFIX's thread hangs the session."""

    def __init__(self, broker):
        super().__init__()
        self.broker = broker
        self.session_id: fix.SessionID | None = None
        self.logged_on = threading.Event()
        self.market_data = MarketDataSession(broker, self)

    def onCreate(self, sessionID):  # noqa: N802, N803 (QuickFIX's names)
        self.session_id = sessionID

    def onLogon(self, sessionID):  # noqa: N802, N803
        try:
            self.market_data.on_logon()
            self.logged_on.set()
            log.info("market data session logged on: %s", sessionID.toString())
        except BaseException:  # noqa: BLE001
            log.exception("onLogon failed")

    def onLogout(self, sessionID):  # noqa: N802, N803
        try:
            self.logged_on.clear()
            log.info("market data session logged out: %s", sessionID.toString())
        except BaseException:  # noqa: BLE001
            log.exception("onLogout failed")

    def toAdmin(self, message, sessionID):  # noqa: N802, N803
        pass

    def fromAdmin(self, message, sessionID):  # noqa: N802, N803
        pass

    def toApp(self, message, sessionID):  # noqa: N802, N803
        pass

    def fromApp(self, message, sessionID):  # noqa: N802, N803
        try:
            if fixmsg.msg_type(message) in MD_MSG_TYPES:
                self.market_data.on_message(message)
        except BaseException:  # noqa: BLE001
            log.exception("market data fromApp failed")


def md_initiator_settings(broker, session: dict) -> fix.SessionSettings:
    """The order session's settings (fixgateway.runner.initiator_settings) with the market
    data session's over them, a store of its own, and the numbering reset at every logon."""
    from .runner import _log_dir, _store_dir

    store, logs = _store_dir() / "market-data", _log_dir() / "market-data"
    store.mkdir(parents=True, exist_ok=True)
    logs.mkdir(parents=True, exist_ok=True)
    default = {
        "ConnectionType": "initiator",
        "FileStorePath": str(store),
        "StartTime": "00:00:00",
        "EndTime": "00:00:00",
        "ReconnectInterval": "1",
        "UseDataDictionary": "Y",
        "ValidateUserDefinedFields": "N",
        "AllowUnknownMsgFields": "Y",
        "ValidateFieldsOutOfOrder": "N",
        "ResetOnLogon": "Y",
        "PersistMessages": "N",
    }
    values = {
        "BeginString": broker.fix_version,
        "SenderCompID": broker.sender_comp_id,
        "TargetCompID": broker.target_comp_id,
        "SocketConnectHost": broker.host,
        "SocketConnectPort": str(broker.port),
        "HeartBtInt": str(broker.heartbeat_seconds),
        "DataDictionary": fixmsg.data_dictionary_path(broker.fix_version),
        **session,
    }
    return fixmsg.session_settings(default, [values])


def market_data_run(*, broker, stop: threading.Event) -> None:
    """Hold the broker's market data session until `stop` is set: log on (QuickFIX reconnects
    by itself), and subscribe to what needs quoting (MarketDataSession.tick) twice a second."""
    session = separate_session(broker)
    if session is None:
        raise ValueError(f"broker {broker.code} has no market data session of its own")
    # As in the order gateway (fixgateway.runner): QuickFIX's reader must not wait 5 ms for
    # the GIL before every refresh while the pusher or the writer holds it.
    sys.setswitchinterval(int(getattr(settings, "OMS_FIX_SWITCH_INTERVAL_US", 5000)) / 1e6)
    app = MarketDataApplication(broker)
    cfg = md_initiator_settings(broker, session)
    # No message log: hundreds of refreshes a second would be written to disk for nothing.
    initiator = fix.ThreadedSocketInitiator(
        app, fix.FileStoreFactory(cfg), cfg, fix.ScreenLogFactory(False, False, False)
    )
    initiator.start()
    try:
        while not stop.wait(0.5):
            try:
                close_old_connections()
                if app.logged_on.is_set():
                    app.market_data.tick()
            except Exception:
                log.exception("%s: market data subscription check failed; going on", broker)
    finally:
        app.market_data.stop()
        initiator.stop()


def _session_key(broker) -> str:
    """What the market data session of the broker is made of: a change restarts it."""
    return json.dumps(
        [
            broker.host,
            broker.port,
            broker.sender_comp_id,
            broker.target_comp_id,
            broker.fix_version,
            broker.heartbeat_seconds,
            separate_session(broker),
        ],
        sort_keys=True,
    )


def market_data_supervise(*, stop: threading.Event, poll_seconds: float = 5.0) -> None:
    """Hold the market data session of every active broker whose row gives market data a
    session of its own, each on a thread of its own, until `stop` is set. Every poll_seconds
    the broker rows are read again: a broker configured so is started, one deactivated or
    configured otherwise is stopped, a changed one restarted, a session whose thread died is
    started again. With none configured it only waits (the Procfile runs it regardless)."""
    from .models import Broker

    running: dict[int, tuple[threading.Thread, threading.Event, str]] = {}

    def halt(broker_id: int) -> None:
        thread, own_stop, _ = running.pop(broker_id)
        own_stop.set()
        thread.join(30)

    def hold(broker, own_stop: threading.Event) -> None:
        try:
            market_data_run(broker=broker, stop=own_stop)
        except Exception:
            log.exception("%s: market data session failed; starting it again", broker)
        finally:
            connection.close()  # this thread's own

    try:
        while True:
            try:
                close_old_connections()
                wanted = {
                    b.pk: b
                    for b in Broker.objects.filter(active=True)
                    if separate_session(b) is not None
                }
            except Exception:
                log.exception("reading the brokers failed; going on")
                wanted = None
            if wanted is not None:
                for broker_id, (thread, _, key) in list(running.items()):
                    broker = wanted.get(broker_id)
                    if broker is None or _session_key(broker) != key or not thread.is_alive():
                        halt(broker_id)
                for broker_id, broker in wanted.items():
                    if broker_id not in running:
                        own_stop = threading.Event()
                        thread = threading.Thread(
                            target=hold, args=(broker, own_stop), name=f"md-{broker.code}"
                        )
                        thread.start()
                        running[broker_id] = (thread, own_stop, _session_key(broker))
                        log.info("market data session of %s started", broker.code)
            if stop.wait(poll_seconds):
                return
    finally:
        for broker_id in list(running):
            halt(broker_id)
