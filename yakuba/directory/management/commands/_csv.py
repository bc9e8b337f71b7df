"""Shared pieces of the CSV commands: reading a file, printing a result."""

from __future__ import annotations

import sys
from pathlib import Path

from django.core.management.base import CommandError, OutputWrapper

from yakuba.directory.actions.staff import ImportOutcome
from yakuba.directory.csv_io import CsvRejected

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
