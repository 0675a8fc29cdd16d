from celery import shared_task
from django.utils import timezone

from .anchors import audit_anchor_write


@shared_task(name="audit.anchor")
def audit_anchor() -> int | None:
    anchor = audit_anchor_write(as_of=timezone.now())
    return anchor.chain_seq if anchor else None
