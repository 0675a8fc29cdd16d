from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from allocation.selectors import booking_differences
from allocation.services import bookings_due_book
from fixgateway.selectors import executed_by_block
from positions.selectors import reconcile_differences


class Command(BaseCommand):
    help = (
        "Recompute every position and cash balance from the opening balances and the fill "
        "ledger, and check the booking ledger against the brokers' executions, the orders, the "
        "positions ledger, the allocations and the custodian files; list any difference and "
        "exit non-zero if there is one. Executions still waiting for the booker (wide "
        "blocks) are booked first, so only real differences are listed."
    )

    def handle(self, *args, **options):
        bookings_due_book(as_of=timezone.now())
        diffs = [
            *reconcile_differences(),
            *booking_differences(executed_by_block=executed_by_block()),
        ]
        for diff in diffs:
            self.stdout.write(str(diff))
        if diffs:
            raise CommandError(f"{len(diffs)} difference(s).", returncode=1)
        self.stdout.write(
            self.style.SUCCESS(
                "Positions, cash, executions, allocations and files reconcile: 0 differences."
            )
        )
