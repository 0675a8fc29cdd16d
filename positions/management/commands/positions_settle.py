from django.core.management.base import BaseCommand
from django.utils import timezone

from positions.services import cash_settle_due


class Command(BaseCommand):
    help = "Move every cash movement whose settlement date has come into settled cash."

    def handle(self, *args, **options):
        count = cash_settle_due(as_of=timezone.now())
        self.stdout.write(self.style.SUCCESS(f"Settled {count} cash movement(s)."))
