"""Allocation instructions to brokers (35=J out, 35=P in): filled in by part 4."""

from __future__ import annotations


class AllocationSession:
    def __init__(self, broker, app):
        self.broker = broker
        self.app = app

    def send_pending(self) -> int:
        return 0

    def on_ack(self, message) -> None:
        return None
