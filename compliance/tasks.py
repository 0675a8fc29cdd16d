"""The nightly post-trade sweep: every active rule against the portfolios after the close."""

from celery import shared_task
from django.utils import timezone


@shared_task(name="compliance.post_trade_sweep")
def post_trade_sweep() -> int:
    from .services import compliance_post_trade_run

    run = compliance_post_trade_run(actor=None, as_of=timezone.now())
    return run.pk
