from django.core.management.base import BaseCommand, CommandError

from audit.anchors import audit_anchors_verify
from audit.selectors import audit_chain_verify


class Command(BaseCommand):
    help = (
        "Walk the audit hash chain and name the first broken link; then check the chain "
        "against the signed anchors kept outside the database and name the first broken one."
    )

    def handle(self, *args, **options):
        checked, broken = audit_chain_verify()
        if broken:
            raise CommandError(
                f"audit chain broken at event #{broken.chain_seq} (id {broken.event_id}): "
                f"{broken.reason}; {checked} events before it verified"
            )
        anchored, anchor_break = audit_anchors_verify()
        if anchor_break:
            raise CommandError(
                f"audit anchor {anchor_break.anchor.where} (event #{anchor_break.anchor.chain_seq})"
                f" broken: {anchor_break.reason}; {anchored} anchors before it held"
            )
        self.stdout.write(
            self.style.SUCCESS(
                f"audit chain intact: {checked} events verified, {anchored} anchors held"
            )
        )
