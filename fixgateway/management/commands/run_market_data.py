"""Hold the market data session of brokers whose row gives market data a FIX session of its
own (extra_config {"market_data": {"session": {...}}}; fixgateway.mdsession), in this process."""

from __future__ import annotations

import signal
import threading

from django.core.management.base import BaseCommand, CommandError

from fixgateway.mdsession import market_data_run, separate_session


class Command(BaseCommand):
    help = "Hold the market data FIX session of a broker whose row gives it one of its own."

    def add_arguments(self, parser):
        parser.add_argument("--broker", required=True, help="broker code")

    def handle(self, *args, broker: str, **options):
        from fixgateway.models import Broker

        row = Broker.objects.filter(code=broker, active=True).first()
        if row is None:
            raise CommandError(f"no active broker {broker!r}")
        if separate_session(row) is None:
            raise CommandError(
                f"broker {broker}'s market data has no session of its own"
                ' (extra_config {"market_data": {"session": {...}}})'
            )
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        self.stdout.write(f"market data session of {broker} running")
        self.stdout.flush()
        market_data_run(broker=row, stop=stop)
