"""祝日・休庁日: the shipped list (loaded by migration 0003), lookups, and the CSV import."""

from __future__ import annotations

import datetime as dt
import importlib
from pathlib import Path

import pytest
from django.apps import apps
from django.core.management import CommandError, call_command

from yakuba.audit.models import AuditEntry
from yakuba.directory.csv_io import CsvRejected
from yakuba.directory.models import User
from yakuba.rooms.actions.holidays import check_import_holidays
from yakuba.rooms.holidays import holiday_name, holidays_between, is_holiday
from yakuba.rooms.models import Holiday

D = dt.date
load_holidays = importlib.import_module("yakuba.rooms.migrations.0003_load_holidays")


@pytest.fixture
def shipped(db: None) -> None:
    """The holidays as migration 0003 leaves them.  The migration did run on the test
    database, but a transactional test earlier in the session flushes every table, so
    the migration's function is run again here on an empty table."""
    Holiday.objects.all().delete()
    load_holidays.load(apps, None)


def test_it_ships_the_cabinet_office_list_through_the_migration(shipped: None) -> None:
    assert holiday_name(D(2026, 1, 1)) == "元日"
    assert holiday_name(D(2025, 11, 24)) == "振替休日"
    assert holiday_name(D(2026, 9, 22)) == "国民の休日"
    assert holiday_name(D(2027, 3, 22)) == "振替休日"
    assert holiday_name(D(2025, 12, 30)) == "休庁日（年末年始）"
    assert not is_holiday(D(2025, 6, 11))
    assert Holiday.objects.filter(date__year=2026).count() == 23


def test_the_shipped_file_passes_the_strict_import_unchanged(shipped: None, dave: User) -> None:
    data = (load_holidays.CSV_PATH).read_bytes()
    assert data.startswith("# 出典: 内閣府「国民の祝日について」".encode())
    result = check_import_holidays(data, acting_user=dave)
    assert (result.years, result.created, result.changed, result.removed) == (
        [2025, 2026, 2027],
        0,
        0,
        0,
    )
    assert result.unchanged == Holiday.objects.count() == 69


def test_it_looks_up_a_month_in_one_query(
    shipped: None, django_assert_num_queries: pytest.FixtureRequest
) -> None:
    with django_assert_num_queries(1):  # type: ignore[operator]  # pytest-django fixture
        may = holidays_between(D(2025, 5, 1), D(2025, 5, 31))
    assert may == {
        D(2025, 5, 3): "憲法記念日",
        D(2025, 5, 4): "みどりの日",
        D(2025, 5, 5): "こどもの日",
        D(2025, 5, 6): "振替休日",
    }


def test_it_replaces_the_years_in_the_file_and_audits_it(shipped: None, alice: User) -> None:
    data = (
        "# 2028年の祝日（テスト用）\n日付,名称\n2028/1/1,元日\n2028-01-10,成人の日\n"
        "2027-01-01,がんじつ\n"
    ).encode()
    result = check_import_holidays(data, file_name="h.csv", acting_user=alice)
    assert (result.years, result.created, result.changed) == ([2027, 2028], 2, 1)
    # The 21 other shipped 2027 dates were not in the file, so they are gone; 2026 stays.
    assert result.removed == 21
    assert Holiday.objects.filter(date__year=2027).count() == 1
    assert Holiday.objects.filter(date__year=2026).count() == 23
    assert holiday_name(D(2027, 1, 1)) == "がんじつ"
    assert holiday_name(D(2027, 3, 22)) is None
    assert holiday_name(D(2028, 1, 10)) == "成人の日"
    assert holiday_name(D(2026, 1, 1)) == "元日"
    entry = AuditEntry.objects.get(action="rooms.holidays_changed")
    assert entry.details["created"] == ["2028-01-01", "2028-01-10"]
    assert entry.details["changed"] == ["2027-01-01"]
    assert "2027-03-22" in entry.details["removed"]


def test_it_reads_the_cabinet_office_file_in_shift_jis(db: None, alice: User) -> None:
    data = "国民の祝日・休日月日,国民の祝日・休日名称\r\n2028/1/1,元日\r\n".encode("cp932")
    result = check_import_holidays(data, acting_user=alice)
    assert result.created == 1
    assert holiday_name(D(2028, 1, 1)) == "元日"


def test_it_rejects_bad_rows_by_line_and_changes_nothing(shipped: None, alice: User) -> None:
    before = list(Holiday.objects.values_list("date", "name"))
    data = (
        "# comment\n日付,名称\n2026-01-01,元日\n2026-02-30,ない日\n2026-03-01,\n2026-01-01,二重\n"
    ).encode()
    with pytest.raises(CsvRejected) as rejected:
        check_import_holidays(data, acting_user=alice)
    assert [str(error) for error in rejected.value.errors] == [
        "4行目: 日付「2026-02-30」が読めません（例: 2026-01-01）",
        "5行目: 名称を入力してください",
        "6行目: 2026-01-01 は3行目にもあります",
    ]
    assert list(Holiday.objects.values_list("date", "name")) == before
    assert not AuditEntry.objects.filter(action="rooms.holidays_changed").exists()


def test_it_rejects_a_file_without_the_header(db: None, alice: User) -> None:
    with pytest.raises(CsvRejected) as rejected:
        check_import_holidays(b"2026-01-01,x\n", acting_user=alice)
    assert str(rejected.value) == "1行目: 見出し行に「日付」と「名称」の列が必要です"


def test_the_command_imports_and_reports_errors(db: None, tmp_path: Path) -> None:
    good = tmp_path / "good.csv"
    good.write_text("日付,名称\n2028-01-01,元日\n", encoding="utf-8-sig")
    call_command("import_holidays", str(good))
    assert holiday_name(D(2028, 1, 1)) == "元日"
    entry = AuditEntry.objects.get(action="rooms.holidays_changed")
    assert entry.actor_kind == "system"
    bad = tmp_path / "bad.csv"
    bad.write_text("日付,名称\n2029-13-01,x\n", encoding="utf-8")
    with pytest.raises(CommandError) as failed:
        call_command("import_holidays", str(bad))
    assert "2行目" in str(failed.value)
    assert "1件も取り込みませんでした" in str(failed.value)
    assert not Holiday.objects.filter(date__year=2029).exists()
