"""Recurrence rules: the dates they give and how they read in Japanese (no database)."""

from __future__ import annotations

import datetime as dt

import pytest

from yakuba.rooms.recurrence import (
    Rule,
    RuleError,
    describe,
    last_date,
    next_date,
    occurrences,
)

D = dt.date


def test_it_skips_months_without_the_31st() -> None:
    rule = Rule("monthly_date", D(2025, 1, 31))
    assert occurrences(rule, D(2025, 8, 31)) == [
        D(2025, 1, 31),
        D(2025, 3, 31),
        D(2025, 5, 31),
        D(2025, 7, 31),
        D(2025, 8, 31),
    ]


def test_it_takes_the_last_day_of_each_month_for_matsujitsu() -> None:
    rule = Rule("monthly_date", D(2024, 1, 10), weekdays=(-1,))
    assert occurrences(rule, D(2024, 4, 30)) == [
        D(2024, 1, 31),
        D(2024, 2, 29),
        D(2024, 3, 31),
        D(2024, 4, 30),
    ]
    assert describe(rule, with_end=False) == "毎月 末日"


def test_it_keeps_feb_29_only_in_leap_years() -> None:
    rule = Rule("monthly_date", D(2024, 1, 29), interval=1, count=3)
    assert occurrences(rule, D(2025, 12, 31)) == [D(2024, 1, 29), D(2024, 2, 29), D(2024, 3, 29)]
    yearly_feb = Rule("monthly_date", D(2024, 2, 29), interval=12)
    assert occurrences(yearly_feb, D(2028, 12, 31)) == [D(2024, 2, 29), D(2028, 2, 29)]


def test_it_skips_months_without_a_fifth_tuesday() -> None:
    rule = Rule("monthly_weekday", D(2025, 4, 29), weekdays=(2, 5))
    assert occurrences(rule, D(2025, 12, 31)) == [
        D(2025, 4, 29),
        D(2025, 7, 29),
        D(2025, 9, 30),
        D(2025, 12, 30),
    ]
    assert describe(rule, with_end=False) == "毎月 第5火曜日"


def test_it_finds_the_last_friday_stored_as_minus_one() -> None:
    rule = Rule("monthly_weekday", D(2025, 6, 1), weekdays=(5, -1), count=3)
    assert occurrences(rule, D(2026, 12, 31)) == [D(2025, 6, 27), D(2025, 7, 25), D(2025, 8, 29)]
    assert describe(rule) == "毎月 最終金曜日（3回）"


def test_it_derives_the_second_tuesday_from_the_first_date() -> None:
    rule = Rule("monthly_weekday", D(2025, 6, 10))
    assert occurrences(rule, D(2025, 8, 31)) == [D(2025, 6, 10), D(2025, 7, 8), D(2025, 8, 12)]
    assert describe(rule, with_end=False) == "毎月 第2火曜日"


def test_it_counts_excluded_dates_towards_count_but_not_until() -> None:
    by_count = Rule("daily", D(2025, 6, 16), count=5, excluded_dates=frozenset({D(2025, 6, 17)}))
    assert occurrences(by_count, D(2025, 12, 31)) == [
        D(2025, 6, 16),
        D(2025, 6, 18),
        D(2025, 6, 19),
        D(2025, 6, 20),
    ]
    by_until = Rule("daily", D(2025, 6, 16), until_date=D(2025, 6, 18))
    assert occurrences(by_until, D(2025, 12, 31)) == [
        D(2025, 6, 16),
        D(2025, 6, 17),
        D(2025, 6, 18),
    ]
    assert last_date(by_count) == D(2025, 6, 20)
    assert last_date(by_until) == D(2025, 6, 18)
    assert last_date(Rule("daily", D(2025, 6, 16))) is None


def test_it_stops_at_the_horizon_and_starts_at_since() -> None:
    rule = Rule("weekly", D(2025, 6, 11), weekdays=(1, 3))
    assert occurrences(rule, D(2025, 6, 25)) == [
        D(2025, 6, 11),
        D(2025, 6, 16),
        D(2025, 6, 18),
        D(2025, 6, 23),
        D(2025, 6, 25),
    ]
    assert occurrences(rule, D(2025, 6, 25), since=D(2025, 6, 19)) == [
        D(2025, 6, 23),
        D(2025, 6, 25),
    ]
    assert describe(rule, with_end=False) == "毎週 月・水"


def test_it_keeps_the_rhythm_of_every_second_week() -> None:
    rule = Rule("weekly", D(2025, 6, 11), interval=2, weekdays=(1,), until_date=D(2025, 7, 31))
    # The week of 6/11 is the first; its Monday (6/9) is before the first date.
    assert occurrences(rule, D(2025, 12, 31)) == [D(2025, 6, 23), D(2025, 7, 7), D(2025, 7, 21)]
    assert next_date(rule, D(2025, 6, 24)) == D(2025, 7, 7)
    assert next_date(rule, D(2025, 7, 22)) is None
    assert describe(rule) == "隔週 月（2025年7月31日まで）"


def test_it_repeats_every_third_month_and_every_other_day() -> None:
    quarterly = Rule("monthly_date", D(2025, 1, 15), interval=3)
    assert occurrences(quarterly, D(2025, 12, 31)) == [
        D(2025, 1, 15),
        D(2025, 4, 15),
        D(2025, 7, 15),
        D(2025, 10, 15),
    ]
    assert describe(quarterly, with_end=False) == "3か月ごと 15日"
    every_other_day = Rule("daily", D(2025, 6, 30), interval=2, count=3)
    assert occurrences(every_other_day, D(2025, 12, 31)) == [
        D(2025, 6, 30),
        D(2025, 7, 2),
        D(2025, 7, 4),
    ]
    assert describe(every_other_day) == "隔日（3回）"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"frequency": "weekly"}, "曜日を1つ以上"),
        ({"frequency": "weekly", "weekdays": (8,)}, "曜日が正しくありません"),
        ({"frequency": "monthly_date", "weekdays": (32,)}, "1〜31日か末日"),
        ({"frequency": "monthly_weekday", "weekdays": (2, 6)}, "第1〜第5か最終"),
        ({"frequency": "daily", "interval": 0}, "間隔"),
        ({"frequency": "daily", "until_date": D(2025, 1, 1)}, "終了日は開始日以降"),
        ({"frequency": "yearly"}, "繰り返しの種類"),
    ],
)
def test_it_refuses_rules_that_cannot_be_met(fields: dict[str, object], message: str) -> None:
    with pytest.raises(RuleError) as refused:
        Rule(first_date=D(2025, 6, 11), **fields)  # type: ignore[arg-type]  # parametrised fields
    assert message in refused.value.message


def test_it_refuses_a_monthly_date_that_the_interval_never_reaches() -> None:
    # Every 12th month from February is always February: it never has a 30th, and the
    # search for a date would never end.  Every 6th month (Feb, Aug) reaches the 31st.
    with pytest.raises(RuleError) as refused:
        Rule("monthly_date", D(2026, 2, 10), interval=12, weekdays=(30,))
    assert "30日のある月が来ません" in refused.value.message
    with pytest.raises(RuleError):
        Rule("monthly_date", D(2026, 4, 10), interval=12, weekdays=(31,))
    feb_29 = Rule("monthly_date", D(2026, 2, 10), interval=12, weekdays=(29,))
    assert occurrences(feb_29, D(2033, 1, 1)) == [D(2028, 2, 29), D(2032, 2, 29)]
    six_monthly = Rule("monthly_date", D(2026, 2, 10), interval=6, weekdays=(31,))
    assert occurrences(six_monthly, D(2027, 12, 31)) == [D(2026, 8, 31), D(2027, 8, 31)]
    assert next_date(six_monthly, D(2026, 9, 1)) == D(2027, 8, 31)


def test_it_gives_the_last_day_of_every_month_around_the_year_end() -> None:
    rule = Rule("monthly_date", D(2025, 11, 30), weekdays=(-1,), count=4)
    assert occurrences(rule, D(2026, 12, 31)) == [
        D(2025, 11, 30),
        D(2025, 12, 31),
        D(2026, 1, 31),
        D(2026, 2, 28),
    ]
    assert last_date(rule) == D(2026, 2, 28)
    # An exception (除外日) on the month's end leaves the rest, and still counts.
    skipping = Rule(
        "monthly_date",
        D(2025, 11, 30),
        weekdays=(-1,),
        count=4,
        excluded_dates=frozenset({D(2025, 12, 31)}),
    )
    assert occurrences(skipping, D(2026, 12, 31)) == [
        D(2025, 11, 30),
        D(2026, 1, 31),
        D(2026, 2, 28),
    ]
