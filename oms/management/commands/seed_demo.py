from django.core.management.base import BaseCommand

from oms.demo import demo_load


class Command(BaseCommand):
    help = "Load the demo firm (users, accounts, securities, brokers). Safe to run again."

    def handle(self, *args, **options):
        created = demo_load()
        self.stdout.write(
            f"demo data: {created['securities']} securities, {created['accounts']} accounts and "
            f"{created['rules']} compliance rules created (all 0 means it was already loaded)"
        )
