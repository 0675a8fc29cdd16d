from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from oms.errors import DomainError
from positions.sod import sod_load, sod_parse


class Command(BaseCommand):
    help = "Load opening positions and settled cash from a custodian start-of-day CSV."

    def add_arguments(self, parser):
        parser.add_argument("path", help="CSV file (see positions/sod.py for the format)")
        parser.add_argument("--dry-run", action="store_true", help="validate only")

    def handle(self, *args, path: str, dry_run: bool, **options):
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CommandError(f"Cannot read {path}: {exc}") from exc
        if dry_run:
            parsed = sod_parse(text)
            for error in parsed.errors:
                self.stderr.write(error)
            if parsed.errors:
                raise CommandError(f"{len(parsed.errors)} error(s).")
            self.stdout.write(
                f"Valid: {len(parsed.positions)} position(s), {len(parsed.cash)} cash line(s)."
            )
            return
        try:
            positions, cash = sod_load(text=text, as_of=timezone.now(), source=Path(path).name)
        except DomainError as exc:
            for error in exc.details.get("errors", []):
                self.stderr.write(error)
            raise CommandError(exc.message) from exc
        self.stdout.write(
            self.style.SUCCESS(f"Loaded {positions} position(s) and {cash} cash balance(s).")
        )
