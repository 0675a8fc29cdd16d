"""Run the broker simulator (a QuickFIX acceptor) until SIGTERM/SIGINT."""

from __future__ import annotations

import json
import signal
import sys
import threading
from decimal import Decimal
from pathlib import Path

import quickfix as fix
from django.conf import settings
from django.core.management.base import BaseCommand

from fixgateway.simulator import (
    PERSONALITIES,
    BrokerSimulator,
    SimConfig,
    acceptor_settings,
    control_server,
    personality,
)


class Command(BaseCommand):
    help = (
        "Stand in for the brokers: one acceptor session per active Broker row (or --session), "
        "behaving as the --personality given (see --list-personalities)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--session",
            action="append",
            default=[],
            help="PORT:SENDER:TARGET[:FIX.4.x] (the simulator's own CompID first); repeatable",
        )
        parser.add_argument("--control-port", type=int, default=9870)
        parser.add_argument("--store", default=str(Path(settings.OMS_RUN_DIR) / "fix" / "sim"))
        parser.add_argument("--ready-file", default="")
        parser.add_argument("--fill-mode", default="immediate")
        parser.add_argument("--reject-rate", type=float, default=0.0)
        parser.add_argument("--prices-from-db", action="store_true", default=True)
        parser.add_argument("--no-db-prices", dest="prices_from_db", action="store_false")
        parser.add_argument(
            "--personality",
            action="append",
            default=[],
            choices=sorted(PERSONALITIES),
            help="behave as this kind of counterparty; repeatable (later ones win)",
        )
        parser.add_argument("--list-personalities", action="store_true")
        parser.add_argument(
            "--no-message-log",
            dest="message_log",
            action="store_false",
            default=True,
            help="keep no log of the FIX messages (a benchmark sending tens of thousands a second)",
        )

    def handle(self, *args, **opts):
        if opts["list_personalities"]:
            for name, chosen in PERSONALITIES.items():
                self.stdout.write(f"{name:22} {chosen.doc}")
            return
        chosen = [personality(name) for name in opts["personality"]]
        sessions = []
        for spec in opts["session"]:
            port, sender, target, *version = spec.split(":")
            sessions.append(
                {
                    "port": int(port),
                    "sender": sender,
                    "target": target,
                    "fix_version": version[0] if version else "FIX.4.4",
                }
            )
        if not sessions:
            from fixgateway.models import Broker

            for b in Broker.objects.filter(active=True):
                sessions.append(
                    {
                        "port": b.port,
                        "sender": b.target_comp_id,
                        "target": b.sender_comp_id,
                        "fix_version": b.fix_version,
                    }
                )
        lookup = None
        if opts["prices_from_db"]:
            from django.db import close_old_connections

            from oms.models import Security

            def lookup(symbol: str) -> Decimal | None:
                close_old_connections()
                return (
                    Security.objects.filter(symbol=symbol)
                    .values_list("reference_price", flat=True)
                    .first()
                )

        sim = BrokerSimulator(
            SimConfig(fill_mode=opts["fill_mode"], reject_rate=opts["reject_rate"]), lookup
        )
        for name in opts["personality"]:
            sim.personality_apply(name)
        store = Path(opts["store"])
        if any(p.fresh_store for p in chosen):
            # A broker that restarts with its numbering at 1 (and, being a new process, an
            # empty book): the acceptor's message store goes.
            for old in (store / "store").glob("*"):
                if old.suffix in (".body", ".header", ".seqnums", ".session"):
                    old.unlink()
        cfg = acceptor_settings(
            sessions, store / "store", store / "log", personalities=opts["personality"]
        )
        # The same short GIL switch interval as the gateway's (fixgateway.runner): the market
        # publisher, the fill sender and QuickFIX's threads each wait up to 5 ms otherwise.
        sys.setswitchinterval(int(getattr(settings, "OMS_FIX_SWITCH_INTERVAL_US", 5000)) / 1e6)
        log = (
            fix.FileLogFactory(cfg)
            if opts["message_log"]
            else fix.ScreenLogFactory(False, False, False)
        )
        acceptor = fix.ThreadedSocketAcceptor(sim, fix.FileStoreFactory(cfg), cfg, log)
        done = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: done.set())
        server = control_server(sim, opts["control_port"])
        acceptor.start()
        ready = {
            "control_port": server.server_address[1],
            "sessions": sessions,
            "personalities": opts["personality"],
        }
        if opts["ready_file"]:
            Path(opts["ready_file"]).write_text(json.dumps(ready))
        self.stdout.write(f"broker simulator ready: {json.dumps(ready)}")
        self.stdout.flush()
        try:
            while not done.wait(1):
                pass
        finally:
            sim.stop()
            acceptor.stop()  # the engine must stop before Python exits
            server.shutdown()
