"""The `fix` Celery worker: the project's Celery app plus a bootstep that holds the QuickFIX
sessions for as long as the worker runs.

A bootstep, not a long-running task: a task can be acked, retried or time-limited by Celery,
while the sessions must live exactly as long as the process (and the engines must be stopped
before it exits). The worker consumes the `fix` queue (fixgateway.tasks.*), with the solo pool
so tasks run next to the sessions. Start it with:
    celery -A fixgateway.worker worker -Q fix -n fix@%h --pool solo
"""

from __future__ import annotations

from celery import bootsteps

from oms.celery import app


class FixGatewayStep(bootsteps.StartStopStep):
    requires = {"celery.worker.components:Pool"}

    def __init__(self, worker, **kwargs):
        super().__init__(worker, **kwargs)
        self.gateway = None

    def start(self, worker):
        from fixgateway.runner import Gateway

        self.gateway = Gateway()
        self.gateway.start()

    def stop(self, worker):
        if self.gateway is not None:
            self.gateway.stop()
            self.gateway = None


app.steps["worker"].add(FixGatewayStep)
