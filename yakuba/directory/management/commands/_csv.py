"""Shared pieces of the CSV commands: reading a file, printing a result."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser, OutputWrapper

from yakuba.audit.record import Actor
from yakuba.directory.actions.staff import ImportOutcome
from yakuba.directory.csv_io import CsvExportError, CsvRejected

ENCODING_HELP = "auto (default: UTF-8 with or without BOM, or Shift_JIS/CP932), utf-8, cp932"


def read_input(path: str) -> bytes:
    """The bytes of ``path`` (``-`` reads standard input)."""
    if path == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise CommandError(f"ファイル {path} を読めません: {exc.strerror}") from exc


def rejected(exc: CsvRejected) -> CommandError:
    """Every bad row, one per line, and the fact that nothing was imported."""
    lines = [str(error) for error in exc.errors]
    lines.append(f"{len(exc.errors)}件のエラーがあるため、1件も取り込みませんでした。")
    return CommandError("\n".join(lines))


def report(out: OutputWrapper, outcome: ImportOutcome) -> None:
    result = outcome.result
    prefix = "（試行のみ・取り込んでいません）" if outcome.dry_run else ""
    out.write(
        f"{prefix}新規 {len(result.created)} 件、更新 {len(result.changed)} 件、"
        f"変更なし {result.unchanged} 件"
    )
    for key, fields in sorted(result.changed.items()):
        out.write(f"  更新 {key}: {', '.join(fields)}")


class ImportCommand(BaseCommand):
    """``yakuba import-…  FILE``: all rows or none, through one ``check_import_*`` action."""

    command_name: str
    importer: Callable[..., ImportOutcome]

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="CSV file (- for standard input)")
        parser.add_argument("--encoding", default="auto", help=ENCODING_HELP)
        parser.add_argument(
            "--dry-run", action="store_true", help="check the file and show what would change"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        data = read_input(options["file"])
        try:
            outcome = type(self).importer(
                data,
                encoding=options["encoding"],
                dry_run=options["dry_run"],
                file_name=Path(options["file"]).name,
                acting_user=Actor.system(f"CLI {self.command_name}"),
            )
        except CsvRejected as exc:
            raise rejected(exc) from None
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        report(self.stdout, outcome)


class ExportCommand(BaseCommand):
    """``yakuba export-… [FILE]``: the import format, through one ``do_export_*`` action."""

    command_name: str
    exporter: Callable[..., bytes]

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", nargs="?", default="-", help="output file (default: stdout)")
        parser.add_argument("--encoding", default="utf-8-sig", help="utf-8-sig (default), cp932")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            data = type(self).exporter(
                encoding=options["encoding"], acting_user=Actor.system(f"CLI {self.command_name}")
            )
        except CsvExportError as exc:
            raise CommandError(str(exc)) from None
        if options["file"] == "-":
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
        else:
            Path(options["file"]).write_bytes(data)
