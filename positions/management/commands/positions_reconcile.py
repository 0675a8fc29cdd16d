from django.core.management.base import BaseCommand, CommandError

from positions.selectors import reconcile_differences


class Command(BaseCommand):
    help = (
        "Recompute every position and cash balance from the opening balances and the fill "
        "ledger; list any difference and exit non-zero if there is one."
    )

    def handle(self, *args, **options):
        diffs = reconcile_differences()
        for diff in diffs:
            self.stdout.write(str(diff))
        if diffs:
            raise CommandError(f"{len(diffs)} difference(s).", returncode=1)
        self.stdout.write(self.style.SUCCESS("Positions and cash reconcile: 0 differences."))
