import datetime as dt

import pytest

from yakuba.lib.wareki import seireki, wareki


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (dt.date(2019, 4, 30), "平成31年4月30日"),
        (dt.date(2019, 5, 1), "令和元年5月1日"),
        (dt.date(2020, 1, 1), "令和2年1月1日"),
        (dt.date(1989, 1, 7), "昭和64年1月7日"),
        (dt.date(1989, 1, 8), "平成元年1月8日"),
        (dt.date(1926, 12, 24), "大正15年12月24日"),
        (dt.date(1926, 12, 25), "昭和元年12月25日"),
        (dt.date(1912, 7, 29), "明治45年7月29日"),
        (dt.date(1912, 7, 30), "大正元年7月30日"),
        (dt.date(2025, 4, 1), "令和7年4月1日"),
    ],
)
def test_it_names_the_era_across_boundaries(day: dt.date, expected: str) -> None:
    assert wareki(day) == expected


def test_it_uses_the_tokyo_date_of_a_utc_time() -> None:
    # 2019-04-30 15:00 UTC is already 5月1日 in Tokyo: the first day of 令和.
    moment = dt.datetime(2019, 4, 30, 15, 0, tzinfo=dt.UTC)
    assert wareki(moment) == "令和元年5月1日"
    assert seireki(moment, weekday=True) == "2019年5月1日(水)"


def test_it_refuses_naive_datetimes_and_dates_before_meiji_6() -> None:
    with pytest.raises(ValueError, match="naive"):
        wareki(dt.datetime(2020, 1, 1))  # noqa: DTZ001
    with pytest.raises(ValueError, match="明治6年"):
        wareki(dt.date(1872, 12, 31))
