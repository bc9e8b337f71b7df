"""Recurrence rules of recurring bookings (定期予約): which dates a rule gives, and how
the rule reads (``describe``).  Pure functions, no database.

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

from django.utils import translation
from django.utils.functional import Promise
from django.utils.translation import gettext, gettext_noop, ngettext, pgettext, pgettext_lazy

DAILY = "daily"
WEEKLY = "weekly"
MONTHLY_BY_DATE = "monthly_date"
MONTHLY_BY_WEEKDAY = "monthly_weekday"
FREQUENCIES = (DAILY, WEEKLY, MONTHLY_BY_DATE, MONTHLY_BY_WEEKDAY)
LAST = -1

# Japanese, always: ``weekday_label`` and ``date_labels`` write the dates of the series
# mail, which stays Japanese whatever the reader's language.
WEEKDAY_NAMES = {1: "月", 2: "火", 3: "水", 4: "木", 5: "金", 6: "土", 7: "日"}
# The same, for the UI (the booking form's check boxes).
WEEKDAY_LABELS: dict[int, Promise] = {
    1: pgettext_lazy("weekday", "月"),
    2: pgettext_lazy("weekday", "火"),
    3: pgettext_lazy("weekday", "水"),
    4: pgettext_lazy("weekday", "木"),
    5: pgettext_lazy("weekday", "金"),
    6: pgettext_lazy("weekday", "土"),
    7: pgettext_lazy("weekday", "日"),
}
# Whole names, for 「第2火曜日」.
_WEEKDAY_FULL_NAMES: dict[int, Promise] = {
    1: pgettext_lazy("weekday", "月曜日"),
    2: pgettext_lazy("weekday", "火曜日"),
    3: pgettext_lazy("weekday", "水曜日"),
    4: pgettext_lazy("weekday", "木曜日"),
    5: pgettext_lazy("weekday", "金曜日"),
    6: pgettext_lazy("weekday", "土曜日"),
    7: pgettext_lazy("weekday", "日曜日"),
}
# 「第n」 and 「最終」 of 「第2火曜日」「最終金曜日」.
_POSITIONS: dict[int, Promise] = {
    1: pgettext_lazy("weekday of the month", "第1"),
    2: pgettext_lazy("weekday of the month", "第2"),
    3: pgettext_lazy("weekday of the month", "第3"),
    4: pgettext_lazy("weekday of the month", "第4"),
    5: pgettext_lazy("weekday of the month", "第5"),
    -1: pgettext_lazy("weekday of the month", "最終"),
}


class RuleError(ValueError):
    """A rule that cannot give dates.  As ``BookingError``: ``message`` is Japanese, for
    the person who typed it, and ``message_en`` its English.  ``template`` is a msgid
    (marked with ``gettext_noop``) with ``%(name)s`` placeholders filled from ``params``."""

    def __init__(self, template: str, **params: object) -> None:
        self.message = template % params if params else template
        with translation.override("en"):
            english = gettext(template)
        self.message_en = english % params if params else english
        super().__init__(self.message)


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
        raise RuleError(gettext_noop("繰り返しの種類が正しくありません。"))
    if rule.interval < 1 or rule.interval > 99:
        raise RuleError(gettext_noop("間隔は1〜99で指定してください。"))
    if rule.count is not None and rule.count < 1:
        raise RuleError(gettext_noop("回数は1以上で指定してください。"))
    if rule.until_date is not None and rule.until_date < rule.first_date:
        raise RuleError(gettext_noop("終了日は開始日以降にしてください。"))
    if rule.frequency == WEEKLY:
        if not rule.weekdays:
            raise RuleError(gettext_noop("曜日を1つ以上選んでください。"))
        if any(day not in WEEKDAY_NAMES for day in rule.weekdays):
            raise RuleError(gettext_noop("曜日が正しくありません。"))
    elif rule.frequency == MONTHLY_BY_DATE:
        if len(rule.weekdays) > 1 or not (rule.month_day == LAST or 1 <= rule.month_day <= 31):
            raise RuleError(gettext_noop("日付は1〜31日か末日で指定してください。"))
        if rule.month_day > max(_LONGEST[month] for month in _months_visited(rule)):
            # Every 12th month from February never has a 30th: without this refusal the
            # search for the next date would never end.
            raise RuleError(
                gettext_noop(
                    "この間隔では%(day)d日のある月が来ません。日付か間隔を変えてください。"
                ),
                day=rule.month_day,
            )
    elif rule.frequency == MONTHLY_BY_WEEKDAY:
        if len(rule.weekdays) not in (0, 2):
            raise RuleError(gettext_noop("第何週の何曜日かを指定してください。"))
        weekday, nth = rule.month_weekday
        if weekday not in WEEKDAY_NAMES or not (nth == LAST or 1 <= nth <= 5):
            raise RuleError(gettext_noop("第1〜第5か最終の曜日で指定してください。"))


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


# --- descriptions ---------------------------------------------------------------------------


def describe(rule: Rule, *, with_end: bool = True, language: str | None = "ja") -> str:
    """The rule as a phrase: 「毎週 月・水」「隔週 火」「毎月 第2火曜日」「毎月 末日」
    「3か月ごと 15日」, with its end (「（2025年12月24日まで）」「（10回）」).

    In Japanese unless asked: the series mail and the audit details, its only callers
    today, are Japanese whatever the reader's language.  A page passes ``language=None``
    for the active language (or a language code)."""
    if language is None:
        return _describe(rule, with_end=with_end)
    with translation.override(language):
        return _describe(rule, with_end=with_end)


def _describe(rule: Rule, *, with_end: bool) -> str:
    text = _phrase(rule)
    if with_end:
        if rule.until_date is not None:
            end = rule.until_date
            text = gettext("%(rule)s（%(year)d年%(month)d月%(day)d日まで）") % {
                "rule": text,
                "year": end.year,
                "month": end.month,
                "day": end.day,
            }
        elif rule.count is not None:
            text = ngettext("%(rule)s（%(count)d回）", "%(rule)s（%(count)d回）", rule.count) % {
                "rule": text,
                "count": rule.count,
            }
    return text


def _phrase(rule: Rule) -> str:
    """The rule without its end, one whole translatable phrase for each shape."""
    n = rule.interval
    if rule.frequency == WEEKLY:
        separator = pgettext("between weekdays", "・")
        days = separator.join(str(WEEKDAY_LABELS[day]) for day in sorted(set(rule.weekdays)))
        if n == 1:
            return gettext("毎週 %(weekdays)s") % {"weekdays": days}
        if n == 2:
            return gettext("隔週 %(weekdays)s") % {"weekdays": days}
        return ngettext("%(n)d週ごと %(weekdays)s", "%(n)d週ごと %(weekdays)s", n) % {
            "n": n,
            "weekdays": days,
        }
    if rule.frequency == MONTHLY_BY_DATE:
        if rule.month_day == LAST:
            if n == 1:
                return gettext("毎月 末日")
            if n == 2:
                return gettext("隔月 末日")
            return ngettext("%(n)dか月ごと 末日", "%(n)dか月ごと 末日", n) % {"n": n}
        values = {"n": n, "day": rule.month_day}
        if n == 1:
            return gettext("毎月 %(day)d日") % values
        if n == 2:
            return gettext("隔月 %(day)d日") % values
        return ngettext("%(n)dか月ごと %(day)d日", "%(n)dか月ごと %(day)d日", n) % values
    if rule.frequency == MONTHLY_BY_WEEKDAY:
        weekday, nth = rule.month_weekday
        place = {
            "n": n,
            "position": str(_POSITIONS[nth]),
            "weekday": str(_WEEKDAY_FULL_NAMES[weekday]),
        }
        if n == 1:
            return gettext("毎月 %(position)s%(weekday)s") % place
        if n == 2:
            return gettext("隔月 %(position)s%(weekday)s") % place
        return (
            ngettext(
                "%(n)dか月ごと %(position)s%(weekday)s", "%(n)dか月ごと %(position)s%(weekday)s", n
            )
            % place
        )
    if n == 1:
        return gettext("毎日")
    if n == 2:
        return gettext("隔日")
    return ngettext("%(n)d日ごと", "%(n)d日ごと", n) % {"n": n}


def weekday_label(day: dt.date) -> str:
    """「月」: Japanese, for the series mail."""
    return WEEKDAY_NAMES[day.isoweekday()]


def date_labels(dates: Sequence[dt.date]) -> str:
    """「6/16（月）、6/23（月）」: dates for a (Japanese) mail."""
    return "、".join(f"{d.month}/{d.day}（{weekday_label(d)}）" for d in dates)
