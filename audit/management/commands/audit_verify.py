from django.core.management.base import BaseCommand, CommandError

from audit.selectors import audit_chain_verify


class Command(BaseCommand):
    help = "Walk the audit hash chain and name the first broken link."

    def handle(self, *args, **options):
        checked, broken = audit_chain_verify()
        if broken:
            raise CommandError(
                f"audit chain broken at event #{broken.chain_seq} (id {broken.event_id}): "
                f"{broken.reason}; {checked} events before it verified"
            )
        self.stdout.write(self.style.SUCCESS(f"audit chain intact: {checked} events verified"))
