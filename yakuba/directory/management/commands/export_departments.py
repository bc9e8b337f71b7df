"""``yakuba export-departments [FILE]``: write departments (所属) as CSV in the import format."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from yakuba.audit.record import Actor
from yakuba.directory.actions.staff import do_export_departments
from yakuba.directory.csv_io import CsvExportError


class Command(BaseCommand):
    help = (
        "Export departments (所属) as CSV (UTF-8 with BOM by default; --encoding cp932 for Excel)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", nargs="?", default="-", help="output file (default: stdout)")
        parser.add_argument("--encoding", default="utf-8-sig", help="utf-8-sig (default), cp932")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            data = do_export_departments(
                encoding=options["encoding"], acting_user=Actor.system("CLI export-departments")
            )
        except CsvExportError as exc:
            raise CommandError(str(exc)) from None
        if options["file"] == "-":
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
        else:
            Path(options["file"]).write_bytes(data)
