"""Hold the market data sessions of brokers whose row gives market data a FIX session of its
own (extra_config {"market_data": {"session": {...}}}; fixgateway.mdsession), in this process:
every such broker, followed as the rows change (the Procfile's `md`), or the one --broker names."""

from __future__ import annotations

import signal
import threading

from django.core.management.base import BaseCommand, CommandError

from fixgateway.mdsession import market_data_run, market_data_supervise, separate_session


class Command(BaseCommand):
    help = (
        "Hold the market data FIX sessions of brokers whose row gives market data one of its own"
        " (every such broker, or the one --broker names)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--broker", help="only this broker (by code)")
        parser.add_argument(
            "--poll-seconds",
            type=float,
            default=5.0,
            help="how often the broker rows are read again (without --broker)",
        )

    def handle(self, *args, broker: str | None = None, poll_seconds: float = 5.0, **options):
        from fixgateway.models import Broker

        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        if broker is None:
            self.stdout.write("market data sessions of every broker configured with one running")
            self.stdout.flush()
            market_data_supervise(stop=stop, poll_seconds=poll_seconds)
            return
        row = Broker.objects.filter(code=broker, active=True).first()
        if row is None:
            raise CommandError(f"no active broker {broker!r}")
        if separate_session(row) is None:
            raise CommandError(
                f"broker {broker}'s market data has no session of its own"
                ' (extra_config {"market_data": {"session": {...}}})'
            )
        self.stdout.write(f"market data session of {broker} running")
        self.stdout.flush()
        market_data_run(broker=row, stop=stop)
