"""祝日 and the ward's closed days (休庁日): looked up to flag bookings, never to block them.

The list lives in the ``Holiday`` table.  Migration 0003 loads ``data/holidays.csv`` (the
Cabinet Office's list for 2025–2027 and the year-end closing); a facility manager or the
``yakuba import-holidays FILE`` command loads later years from a CSV of the same shape
(``actions.holidays``).  Each call below is one query, so a month view asks once, not
once per day.

The CSV: UTF-8 (BOM or not) or Shift_JIS/CP932; lines starting with ``#`` are comments;
a header 「日付,名称」; then one date per line.  Dates read ``2026-01-01`` or ``2026/1/1``.
The Cabinet Office's own file (syukujitsu.csv, header 「国民の祝日・休日月日,国民の祝日・休日
名称」) reads as it is.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
from dataclasses import dataclass

from django.utils.translation import gettext

from yakuba.directory.csv_io import CsvRejected, RowError, decode
from yakuba.rooms.models import Holiday

DATE_HEADERS = ("日付", "月日", "国民の祝日・休日月日", "date")
NAME_HEADERS = ("名称", "名前", "国民の祝日・休日名称", "name")
DATE = re.compile(r"^(\d{4})[-/](\d{1,2})[-/](\d{1,2})$")
NAME_MAX = Holiday._meta.get_field("name").max_length or 100


def holidays_between(start: dt.date, end: dt.date) -> dict[dt.date, str]:
    """Holidays and closed days from ``start`` to ``end`` (both inclusive), by date."""
    rows = Holiday.objects.filter(date__gte=start, date__lte=end).values_list("date", "name")
    return dict(rows)


def holiday_name(day: dt.date) -> str | None:
    """The name of ``day``'s holiday, or None on an ordinary day."""
    return holidays_between(day, day).get(day)


def is_holiday(day: dt.date) -> bool:
    return holiday_name(day) is not None


@dataclass(frozen=True)
class HolidayRow:
    """One date of a holiday file; ``line`` is its line number in the file."""

    date: dt.date
    name: str
    line: int = 0


def parse_holidays_csv(data: bytes, *, encoding: str = "auto") -> list[HolidayRow]:
    """Every row of a holiday CSV, or ``CsvRejected`` listing every bad line (line numbers
    count the comment lines too, as an editor shows them).  Raises ``ValueError`` for an
    unknown encoding name."""
    lines, errors, _ = decode(data, encoding)
    bad_lines = {error.line for error in errors}
    rows: list[HolidayRow] = []
    seen: dict[dt.date, int] = {}
    columns: tuple[int, int] | None = None
    for number, text in enumerate(lines, start=1):
        if number in bad_lines or not text.strip() or text.lstrip().startswith("#"):
            continue
        try:
            cells = [cell.strip() for cell in next(csv.reader([text]))]
        except (csv.Error, StopIteration):
            errors.append(RowError(number, gettext("CSVとして読めません")))
            continue
        if columns is None:
            columns = _header(cells)
            if columns is None:
                errors.append(
                    RowError(number, gettext("見出し行に「日付」と「名称」の列が必要です"))
                )
                break
            continue
        date_at, name_at = columns
        if len(cells) <= max(columns):
            errors.append(RowError(number, gettext("日付と名称の両方を入力してください")))
            continue
        day, name = _date(cells[date_at]), cells[name_at]
        if day is None:
            errors.append(
                RowError(
                    number,
                    gettext("日付「%(text)s」が読めません（例: %(example)s）")
                    % {"text": cells[date_at], "example": "2026-01-01"},
                )
            )
        if not name:
            errors.append(RowError(number, gettext("名称を入力してください")))
        elif len(name) > NAME_MAX:
            errors.append(
                RowError(
                    number,
                    gettext("名称は%(max)d文字以内にしてください") % {"max": NAME_MAX},
                )
            )
        if day is not None and day in seen:
            errors.append(
                RowError(
                    number,
                    gettext("%(date)s は%(line)d行目にもあります")
                    % {"date": f"{day:%Y-%m-%d}", "line": seen[day]},
                )
            )
        if day is not None and name and len(name) <= NAME_MAX and day not in seen:
            seen[day] = number
            rows.append(HolidayRow(day, name, number))
    if columns is None and not errors:
        errors.append(RowError(1, gettext("ファイルが空です（見出し行がありません）")))
    if errors:
        raise CsvRejected(errors)
    if not rows:
        raise CsvRejected([RowError(1, gettext("祝日が1件もありません"))])
    return rows


def _header(cells: list[str]) -> tuple[int, int] | None:
    names = [cell.lstrip("\ufeff") for cell in cells]
    date_at = next((i for i, name in enumerate(names) if name in DATE_HEADERS), None)
    name_at = next((i for i, name in enumerate(names) if name in NAME_HEADERS), None)
    if date_at is None or name_at is None:
        return None
    return date_at, name_at


def _date(text: str) -> dt.date | None:
    match = DATE.match(text)
    if match is None:
        return None
    try:
        return dt.date(*(int(part) for part in match.groups()))
    except ValueError:
        return None
