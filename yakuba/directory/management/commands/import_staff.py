"""``yakuba import-staff FILE``: import staff (職員) from CSV, all rows or none."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from yakuba.audit.record import Actor
from yakuba.directory.actions.staff import check_import_staff
from yakuba.directory.csv_io import CsvRejected
from yakuba.directory.management.commands._csv import ENCODING_HELP, read_input, rejected, report


class Command(BaseCommand):
    help = "Import staff (職員) from a CSV file; a file with any bad row imports nothing."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="CSV file (- for standard input)")
        parser.add_argument("--encoding", default="auto", help=ENCODING_HELP)
        parser.add_argument(
            "--dry-run", action="store_true", help="check the file and show what would change"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        data = read_input(options["file"])
        try:
            outcome = check_import_staff(
                data,
                encoding=options["encoding"],
                dry_run=options["dry_run"],
                file_name=Path(options["file"]).name,
                acting_user=Actor.system("CLI import-staff"),
            )
        except CsvRejected as exc:
            raise rejected(exc) from None
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        report(self.stdout, outcome)
