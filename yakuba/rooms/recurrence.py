"""Recurrence rules of recurring bookings (定期予約): which dates a rule gives, and how
the rule reads in Japanese.  Pure functions, no database.

Rules (``frequency``, as ``BookingSeries.Frequency``):

- ``daily``: every ``interval`` days from ``first_date``.
- ``weekly``: on the ISO weekdays in ``weekdays`` (1 = Monday … 7 = Sunday) of every
  ``interval``-th week, weeks counted Monday to Sunday from the week of ``first_date``.
- ``monthly_date``: on one day of every ``interval``-th month, counted from the month of
  ``first_date``.  ``weekdays`` holds ``[day]`` (1–31, or -1 for the last day, 末日); empty
  means the day of ``first_date``.  **A month without that day is skipped** (the 31st
  gives no date in April): this is what RFC 5545 and Google Calendar do, while Outlook
  moves it to the month's last day.  We skip deliberately: a room booked on a date nobody
  chose surprises more than a missing date, and 「末日」 (-1) is there for whoever wants
  the month's end.
- ``monthly_weekday``: on the n-th given weekday of every ``interval``-th month.
  ``weekdays`` holds ``[ISO weekday, n]`` with n 1–5, or -1 for the last one
  (「最終金曜日」 is ``[5, -1]``); empty means the weekday and position of ``first_date``.
  A month without a 5th such weekday is skipped.

``count`` counts the dates the rule gives, the excluded ones included (as RFC 5545's COUNT
with EXDATE): cancelling one date of a 10-date series leaves 9, not a new 10th at the end.
``until_date`` is inclusive.  Dates before ``first_date`` never occur.
"""

from __future__ import annotations

import calendar
import datetime as dt
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

DAILY = "daily"
WEEKLY = "weekly"
MONTHLY_BY_DATE = "monthly_date"
MONTHLY_BY_WEEKDAY = "monthly_weekday"
FREQUENCIES = (DAILY, WEEKLY, MONTHLY_BY_DATE, MONTHLY_BY_WEEKDAY)
LAST = -1

WEEKDAY_NAMES = {1: "月", 2: "火", 3: "水", 4: "木", 5: "金", 6: "土", 7: "日"}


class RuleError(ValueError):
    """A rule that cannot give dates; ``message`` is Japanese, for the person who typed it."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Rule:
    frequency: str
    first_date: dt.date
    interval: int = 1
    weekdays: tuple[int, ...] = ()
    until_date: dt.date | None = None
    count: int | None = None
    excluded_dates: frozenset[dt.date] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        validate(self)

    @property
    def month_day(self) -> int:
        """``monthly_date``: the day of the month, or -1 for its last day."""
        return self.weekdays[0] if self.weekdays else self.first_date.day

    @property
    def month_weekday(self) -> tuple[int, int]:
        """``monthly_weekday``: (ISO weekday, n-th with -1 for the last)."""
        if len(self.weekdays) == 2:
            return self.weekdays[0], self.weekdays[1]
        return self.first_date.isoweekday(), (self.first_date.day - 1) // 7 + 1


class SeriesLike(Protocol):
    frequency: str
    interval: int
    weekdays: Any
    first_date: dt.date
    until_date: dt.date | None
    count: int | None
    excluded_dates: Any


def rule_of(series: SeriesLike) -> Rule:
    """The rule of a ``BookingSeries`` (excluded dates are stored as ISO strings)."""
    return Rule(
        frequency=series.frequency,
        first_date=series.first_date,
        interval=series.interval,
        weekdays=tuple(int(day) for day in series.weekdays or ()),
        until_date=series.until_date,
        count=series.count,
        excluded_dates=frozenset(as_dates(series.excluded_dates or ())),
    )


def as_dates(values: Iterable[dt.date | str]) -> list[dt.date]:
    return [v if isinstance(v, dt.date) else dt.date.fromisoformat(v) for v in values]


def validate(rule: Rule) -> None:
    """Raise ``RuleError`` for a rule that cannot be met."""
    if rule.frequency not in FREQUENCIES:
        raise RuleError("繰り返しの種類が正しくありません。")
    if rule.interval < 1 or rule.interval > 99:
        raise RuleError("間隔は1〜99で指定してください。")
    if rule.count is not None and rule.count < 1:
        raise RuleError("回数は1以上で指定してください。")
    if rule.until_date is not None and rule.until_date < rule.first_date:
        raise RuleError("終了日は開始日以降にしてください。")
    if rule.frequency == WEEKLY:
        if not rule.weekdays:
            raise RuleError("曜日を1つ以上選んでください。")
        if any(day not in WEEKDAY_NAMES for day in rule.weekdays):
            raise RuleError("曜日が正しくありません。")
    elif rule.frequency == MONTHLY_BY_DATE:
        if len(rule.weekdays) > 1 or not (rule.month_day == LAST or 1 <= rule.month_day <= 31):
            raise RuleError("日付は1〜31日か末日で指定してください。")
        if rule.month_day > max(_LONGEST[month] for month in _months_visited(rule)):
            # Every 12th month from February never has a 30th: without this refusal the
            # search for the next date would never end.
            raise RuleError(
                f"この間隔では{rule.month_day}日のある月が来ません。日付か間隔を変えてください。"
            )
    elif rule.frequency == MONTHLY_BY_WEEKDAY:
        if len(rule.weekdays) not in (0, 2):
            raise RuleError("第何週の何曜日かを指定してください。")
        weekday, nth = rule.month_weekday
        if weekday not in WEEKDAY_NAMES or not (nth == LAST or 1 <= nth <= 5):
            raise RuleError("第1〜第5か最終の曜日で指定してください。")


# The most days each month can have (February in a leap year).
_LONGEST = {month: calendar.monthrange(2024, month)[1] for month in range(1, 13)}


def _months_visited(rule: Rule) -> set[int]:
    """The months of the year a monthly rule ever lands in (the pattern repeats after
    twelve steps)."""
    start = rule.first_date.month - 1
    return {(start + step * rule.interval) % 12 + 1 for step in range(12)}


def _candidates(rule: Rule) -> Iterator[dt.date]:
    """Every date the pattern gives from ``first_date`` on, ascending, without limits."""
    first = rule.first_date
    if rule.frequency == DAILY:
        day = first
        while True:
            yield day
            day += dt.timedelta(days=rule.interval)
    elif rule.frequency == WEEKLY:
        monday = first - dt.timedelta(days=first.weekday())
        weekdays = sorted(set(rule.weekdays))
        while True:
            for weekday in weekdays:
                day = monday + dt.timedelta(days=weekday - 1)
                if day >= first:
                    yield day
            monday += dt.timedelta(weeks=rule.interval)
    else:
        year, month = first.year, first.month
        while True:
            day_or_none = _in_month(rule, year, month)
            if day_or_none is not None and day_or_none >= first:
                yield day_or_none
            month += rule.interval
            year, month = year + (month - 1) // 12, (month - 1) % 12 + 1


def _in_month(rule: Rule, year: int, month: int) -> dt.date | None:
    days_in_month = calendar.monthrange(year, month)[1]
    if rule.frequency == MONTHLY_BY_DATE:
        day = days_in_month if rule.month_day == LAST else rule.month_day
        return dt.date(year, month, day) if day <= days_in_month else None
    weekday, nth = rule.month_weekday
    if nth == LAST:
        last = dt.date(year, month, days_in_month)
        return last - dt.timedelta(days=(last.isoweekday() - weekday) % 7)
    first_of_month = dt.date(year, month, 1)
    first_match = 1 + (weekday - first_of_month.isoweekday()) % 7
    day = first_match + 7 * (nth - 1)
    return dt.date(year, month, day) if day <= days_in_month else None


def occurrences(rule: Rule, through: dt.date, *, since: dt.date | None = None) -> list[dt.date]:
    """The dates of ``rule`` up to ``through`` (inclusive), excluded dates left out;
    with ``since``, only those on or after it (``count`` still counts from the start)."""
    dates: list[dt.date] = []
    end = through if rule.until_date is None else min(through, rule.until_date)
    for number, day in enumerate(_candidates(rule), start=1):
        if day > end or (rule.count is not None and number > rule.count):
            break
        if day not in rule.excluded_dates and (since is None or day >= since):
            dates.append(day)
    return dates


def next_date(rule: Rule, day: dt.date) -> dt.date | None:
    """The rule's first date on or after ``day``, excluded or not (None past its end)."""
    for number, candidate in enumerate(_candidates(rule), start=1):
        if (rule.count is not None and number > rule.count) or (
            rule.until_date is not None and candidate > rule.until_date
        ):
            return None
        if candidate >= day:
            return candidate
    return None  # pragma: no cover (the candidates never end)


def last_date(rule: Rule) -> dt.date | None:
    """The rule's last possible date (excluded or not), None for a rule without an end."""
    if rule.count is None:
        return rule.until_date
    last = None
    for number, day in enumerate(_candidates(rule), start=1):
        if number > rule.count or (rule.until_date is not None and day > rule.until_date):
            break
        last = day
    return last


# --- Japanese descriptions ------------------------------------------------------------------


def describe(rule: Rule, *, with_end: bool = True) -> str:
    """The rule as a Japanese phrase for the UI: 「毎週 月・水」「隔週 火」「毎月 第2火曜日」
    「毎月 末日」「3か月ごと 15日」, with its end (「（2025年12月24日まで）」「（10回）」)."""
    text = f"{_every(rule)} {_pattern(rule)}".strip()
    if with_end:
        if rule.until_date is not None:
            end = rule.until_date
            text += f"（{end.year}年{end.month}月{end.day}日まで）"
        elif rule.count is not None:
            text += f"（{rule.count}回）"
    return text


def _every(rule: Rule) -> str:
    unit = {DAILY: "日", WEEKLY: "週"}.get(rule.frequency, "月")
    if rule.interval == 1:
        return f"毎{unit}"
    if rule.interval == 2:
        return f"隔{unit}"
    return f"{rule.interval}{'か月' if unit == '月' else unit}ごと"


def _pattern(rule: Rule) -> str:
    if rule.frequency == WEEKLY:
        return "・".join(WEEKDAY_NAMES[day] for day in sorted(set(rule.weekdays)))
    if rule.frequency == MONTHLY_BY_DATE:
        return "末日" if rule.month_day == LAST else f"{rule.month_day}日"
    if rule.frequency == MONTHLY_BY_WEEKDAY:
        weekday, nth = rule.month_weekday
        position = "最終" if nth == LAST else f"第{nth}"
        return f"{position}{WEEKDAY_NAMES[weekday]}曜日"
    return ""


def weekday_label(day: dt.date) -> str:
    return WEEKDAY_NAMES[day.isoweekday()]


def date_labels(dates: Sequence[dt.date]) -> str:
    """「6/16（月）、6/23（月）」: dates for a message."""
    return "、".join(f"{d.month}/{d.day}（{weekday_label(d)}）" for d in dates)
