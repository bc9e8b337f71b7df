"""``yakuba import-holidays FILE``: load 祝日・休庁日 from a CSV (the years in the file are
replaced; a file with any bad line loads nothing)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from yakuba.audit.record import Actor
from yakuba.directory.csv_io import CsvRejected
from yakuba.directory.management.commands._csv import ENCODING_HELP, read_input, rejected
from yakuba.rooms.actions.holidays import check_import_holidays


class Command(BaseCommand):
    help = (
        "Load holidays (祝日・休庁日) from a CSV with the columns 日付,名称; the years in the "
        "file are replaced, and a file with any bad line loads nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="CSV file (- for standard input)")
        parser.add_argument("--encoding", default="auto", help=ENCODING_HELP)

    def handle(self, *args: Any, **options: Any) -> None:
        data = read_input(options["file"])
        try:
            result = check_import_holidays(
                data,
                encoding=options["encoding"],
                file_name=Path(options["file"]).name,
                acting_user=Actor.system("CLI import-holidays"),
            )
        except CsvRejected as exc:
            raise rejected(exc) from None
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        years = "、".join(f"{year}年" for year in result.years)
        self.stdout.write(
            f"{years}の祝日・休庁日: 追加 {result.created} 件、変更 {result.changed} 件、"
            f"削除 {result.removed} 件、変更なし {result.unchanged} 件"
        )
