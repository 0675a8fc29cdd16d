"""Run the FIX gateway in the foreground (the `fix` worker hosts the same Gateway)."""

from __future__ import annotations

import signal
import threading

from django.core.management.base import BaseCommand

from fixgateway.runner import Gateway


class Command(BaseCommand):
    help = "Hold one QuickFIX initiator session per active broker (hot standby if another owns it)."

    def add_arguments(self, parser):
        parser.add_argument("--broker", action="append", default=[], help="broker code (repeat)")

    def handle(self, *args, broker: list[str], **options):
        from fixgateway.models import Broker

        ids = None
        if broker:
            ids = list(Broker.objects.filter(code__in=broker).values_list("pk", flat=True))
        gateway = Gateway(ids)
        done = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: done.set())
        gateway.start()
        self.stdout.write(f"FIX gateway running for {len(gateway.sessions)} broker(s)")
        self.stdout.flush()
        try:
            while not done.wait(1):
                pass
        finally:
            gateway.stop()
