from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from oms.services import prices_import


class Command(BaseCommand):
    help = "Update reference prices from a CSV with header symbol,price[,as_of]."

    def add_arguments(self, parser):
        parser.add_argument("path")

    def handle(self, *args, path, **options):
        try:
            text = Path(path).read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            raise CommandError(f"cannot read {path}: {exc}") from exc
        report = prices_import(text=text, as_of=timezone.now())
        for error in report.errors:
            self.stderr.write(error)
        self.stdout.write(
            f"{report.applied} prices updated, {report.unchanged} unchanged, "
            f"{len(report.errors)} errors"
        )
        if report.errors:
            raise CommandError(f"{len(report.errors)} lines were rejected")
