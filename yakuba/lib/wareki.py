"""The one Japanese date formatter: 和暦 (Japanese era) and 西暦 (Western) forms.

Eras start on the day the new emperor acceded, not on 1 January, so 平成31年4月30日
is followed by 令和元年5月1日; the first year of an era is written 元年.
"""

from __future__ import annotations

import datetime as dt
from typing import NamedTuple


class Era(NamedTuple):
    name: str
    romaji: str
    start: dt.date
    # The Western year of 元年.  Only 明治 differs from ``start.year``: it began in 1868,
    # but dates are supported only from the solar calendar's adoption (明治6年).
    first_year: int


# Newest first.  Dates before 明治6年 (1873, the solar calendar) are not supported.
ERAS: tuple[Era, ...] = (
    Era("令和", "Reiwa", dt.date(2019, 5, 1), 2019),
    Era("平成", "Heisei", dt.date(1989, 1, 8), 1989),
    Era("昭和", "Showa", dt.date(1926, 12, 25), 1926),
    Era("大正", "Taisho", dt.date(1912, 7, 30), 1912),
    Era("明治", "Meiji", dt.date(1873, 1, 1), 1868),
)

WEEKDAYS_JA = "月火水木金土日"


def era_of(day: dt.date) -> tuple[Era, int]:
    """The era ``day`` falls in and the year number within it."""
    for era in ERAS:
        if day >= era.start:
            return era, day.year - era.first_year + 1
    raise ValueError(f"{day.isoformat()} is before 明治6年 and has no supported era")


def _as_date(value: dt.date | dt.datetime) -> dt.date:
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime: pass an aware one")
        from yakuba.lib.clock import TOKYO

        return value.astimezone(TOKYO).date()
    return value


def wareki(value: dt.date | dt.datetime, *, weekday: bool = False) -> str:
    """令和7年4月1日 (or 令和元年5月1日); with ``weekday``, 令和7年4月1日(火)."""
    day = _as_date(value)
    era, year = era_of(day)
    year_text = "元" if year == 1 else str(year)
    text = f"{era.name}{year_text}年{day.month}月{day.day}日"
    if weekday:
        text += f"({WEEKDAYS_JA[day.weekday()]})"
    return text


def seireki(value: dt.date | dt.datetime, *, weekday: bool = False) -> str:
    """2025年4月1日 (Western year, Japanese form)."""
    day = _as_date(value)
    text = f"{day.year}年{day.month}月{day.day}日"
    if weekday:
        text += f"({WEEKDAYS_JA[day.weekday()]})"
    return text


def wareki_year(value: dt.date | dt.datetime) -> str:
    """令和7年度 style fiscal label is not this: this is the calendar era year, 令和7年."""
    era, year = era_of(_as_date(value))
    return f"{era.name}{'元' if year == 1 else year}年"
