"""稼働率: exact figures from known bookings, the heat map, holidays, 所属 grouping, the
CSV and the PDF report, and who may see them.

June 2025 has 30 days: 9 weekend days, and 6/13 (Fri) is made a holiday here, so 20
working days.  Three rooms open 8:30–20:00 (11.5 h): 230 h each, 690 h in all.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from pathlib import Path
from xml.etree import ElementTree

import pytest
from django.test import Client
from pytest_django.fixtures import Settings as SettingsWrapper

from yakuba.audit.models import AuditAction, AuditEntry
from yakuba.directory.models import Department, User
from yakuba.lib import clock
from yakuba.rooms import utilisation
from yakuba.rooms.actions.booking import do_cancel_booking
from yakuba.rooms.actions.door import do_check_in, do_end_early, do_release_no_show
from yakuba.rooms.models import Booking, Holiday, Room
from yakuba.rooms.utilisation import Filters

from .conftest import at, book

JUNE = (dt.date(2025, 6, 1), dt.date(2025, 6, 30))
HOUR = 3600


@pytest.fixture
def june(
    rooms: dict[str, Room], alice: User, bob: User, charlie: User, dave: User
) -> dict[str, Booking]:
    """A: 301, alice, Mon 6/2 10:00–12:00, checked in 10:05, ended 11:30 (used 85 min;
    ending early shortens the booking, so it counts 1.5 booked hours).
    B: 301, charlie, Tue 6/3 14:00–15:00, released as a no-show.
    C: 302, bob, Wed 6/4 9:00–10:00, checked in 8:55 (used 60 min from the start).
    D: 301, alice, on the holiday 6/13: left out.  E: cancelled: left out.
    F: 302, alice, Fri 6/20 10:00–11:00, still ahead on 6/16: booked, not eligible."""
    Holiday.objects.create(date=dt.date(2025, 6, 13), name="開庁記念日")
    with clock.frozen_at(at(1, "10:00")):
        made = {
            "A": book(rooms["r301"], alice, at(2, "10:00"), at(2, "12:00"), title="=SUM(A1)"),
            "B": book(rooms["r301"], charlie, at(3, "14:00"), at(3, "15:00")),
            "C": book(rooms["r302"], bob, at(4, "09:00"), at(4, "10:00")),
            "D": book(rooms["r301"], alice, at(13, "10:00"), at(13, "11:00")),
            "E": book(rooms["r301"], alice, at(5, "10:00"), at(5, "11:00")),
            "F": book(rooms["r302"], alice, at(20, "10:00"), at(20, "11:00")),
        }
        assert do_cancel_booking(made["E"], acting_user=alice)
    with clock.frozen_at(at(2, "10:05")):
        assert do_check_in(made["A"], acting_user=alice, method="web")
    with clock.frozen_at(at(2, "11:30")):
        made["A"].refresh_from_db()
        do_end_early(made["A"], acting_user=alice)
    with clock.frozen_at(at(3, "14:11")):
        assert do_release_no_show(made["B"].pk)
    with clock.frozen_at(at(4, "08:55")):
        assert do_check_in(made["C"], acting_user=bob, method="panel")
    return made


def _report(filters: Filters | None = None) -> utilisation.Report:
    with clock.frozen_at(at(16, "12:00")):
        return utilisation.compute(*JUNE, filters)


def test_it_computes_exact_figures(june: dict[str, Booking]) -> None:
    report = _report()
    total = report.total
    assert len(report.working_days) == 20
    assert report.weekend_days == 9
    assert report.closed_days == [(dt.date(2025, 6, 13), "開庁記念日")]
    assert total.available == 690 * HOUR
    assert total.booked == 4.5 * HOUR  # A 1.5 h (ended early) + B, C, F 1 h each
    assert total.used == (85 + 60) * 60
    assert total.released == 1 * HOUR
    assert total.bookings == 4
    assert (total.eligible, total.no_shows) == (3, 1)  # F's deadline is still ahead
    assert total.no_show_rate == pytest.approx(1 / 3)
    assert total.utilisation == pytest.approx(145 * 60 / (690 * HOUR))
    assert total.booking_rate == pytest.approx(4.5 / 690)

    by_room = {row.label: row.figures for row in report.rooms}
    r301 = by_room["本庁舎 3階 会議室301"]
    assert (r301.available, r301.booked, r301.used, r301.released) == (
        230 * HOUR,
        2.5 * HOUR,
        85 * 60,
        HOUR,
    )
    assert by_room["本庁舎 5階 特別会議室"].booked == 0
    by_floor = {row.label: row.figures for row in report.floors}
    assert by_floor["本庁舎 3階"].available == 460 * HOUR
    assert by_floor["本庁舎 3階"].used == 145 * 60
    by_hour = {row.key: row.figures for row in report.hours}
    assert by_hour[8].available == 3 * 20 * 1800  # rooms open at 8:30
    assert by_hour[9].used == HOUR  # C
    assert by_hour[10].used == 55 * 60  # A from 10:05
    assert by_hour[11].used == 30 * 60  # A until it ended at 11:30
    assert by_hour[12].used == 0
    assert by_hour[10].booked == 2 * HOUR  # A and F
    assert by_hour[10].bookings == 2
    assert (by_hour[14].released, by_hour[14].no_shows) == (HOUR, 1)  # B
    assert by_hour[14].no_show_rate == 1.0


def test_it_draws_a_heat_map_of_weekday_and_hour(june: dict[str, Booking]) -> None:
    heat = _report().heat
    # Five working Mondays in June 2025 × three rooms × one hour.
    assert heat[0][10] == pytest.approx(55 * 60 / (5 * 3 * HOUR))
    # Wednesdays: 6/4, 6/11, 6/18, 6/25.
    assert heat[2][9] == pytest.approx(HOUR / (4 * 3 * HOUR))
    assert heat[1][14] == 0  # B was released, never used
    assert heat[4][10] == 0  # the holiday booking D is not counted


def test_it_leaves_holidays_out(june: dict[str, Booking]) -> None:
    Holiday.objects.filter(date=dt.date(2025, 6, 13)).delete()
    report = _report()
    assert len(report.working_days) == 21
    assert report.total.available == 21 * 3 * 11.5 * HOUR
    assert report.total.booked == 5.5 * HOUR  # D counts on a working day


def test_it_groups_by_the_organisers_department(
    june: dict[str, Booking], ward: dict[str, Department]
) -> None:
    report = _report()
    by_department = {row.label: row.figures for row in report.departments}
    assert set(by_department) == {"文書係", "戸籍住民課"}
    assert by_department["文書係"].booked == 3.5 * HOUR  # A, C, F
    assert by_department["文書係"].used == 145 * 60
    assert by_department["戸籍住民課"].no_shows == 1
    assert by_department["戸籍住民課"].no_show_rate == 1.0

    # A filter on 総務部 covers its sub-departments (文書係) but not 戸籍住民課.
    only = _report(Filters(department_id=ward["somu_bu"].pk))
    assert only.total.booked == 3.5 * HOUR
    assert only.total.no_shows == 0
    assert only.total.available == 690 * HOUR


def test_it_filters_by_floor_and_room(june: dict[str, Booking], rooms: dict[str, Room]) -> None:
    floor = _report(Filters(floor_id=rooms["special"].floor_id))
    assert floor.total.available == 230 * HOUR
    assert floor.total.bookings == 0
    room = _report(Filters(room_id=rooms["r302"].pk))
    assert [row.label for row in room.rooms] == ["本庁舎 3階 会議室302"]
    assert room.total.booked == 2 * HOUR


def test_it_reads_the_period_in_a_few_queries(
    june: dict[str, Booking], django_assert_max_num_queries: object
) -> None:
    # rooms, holidays, bookings (values_list) — whatever the number of bookings.
    with django_assert_max_num_queries(3):  # type: ignore[operator]  # pytest-django fixture
        _report()


def _client(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_it_shows_the_page_with_svg_charts_and_tables(june: dict[str, Booking], dave: User) -> None:
    with clock.frozen_at(at(16, "12:00")):
        response = _client(dave).get("/rooms/analytics/?start=2025-06-01&end=2025-06-30")
    assert response.status_code == 200
    html = response.content.decode()
    assert html.count("<svg") == 2
    for chunk in html.split("<svg")[1:]:
        # Well-formed XML (our own output, in a test).
        svg = ElementTree.fromstring("<svg" + chunk.split("</svg>")[0] + "</svg>")  # noqa: S314
        assert svg.get("role") == "img"
    assert ">100%〜<" not in html  # the legend's steps are 0–80 %
    assert ">80%〜<" in html
    assert 'role="img"' in html
    assert "会議室ごとの稼働率" in html
    assert "<caption>" in html
    assert "開庁記念日" in html
    assert "0.6%" in html  # 301: 85 min of 230 h
    assert "33.3%" in html  # the no-show rate


def test_it_reports_a_ward_without_rooms(db: None) -> None:
    report = utilisation.compute(*JUNE)
    assert report.rooms == []
    assert report.total.available == 0
    assert report.total.utilisation is None


def test_it_refuses_a_bad_period(dave: User) -> None:
    response = _client(dave).get("/rooms/analytics/?start=2025-06-30&end=2025-06-01")
    assert response.status_code == 400
    assert "終了日は開始日以降にしてください。" in response.content.decode()


def test_it_exports_csv_with_bom_and_safe_cells(
    june: dict[str, Booking], dave: User, rooms: dict[str, Room]
) -> None:
    Room.objects.filter(pk=rooms["r302"].pk).update(name="=HYPERLINK(1)")
    with clock.frozen_at(at(16, "12:00")):
        response = _client(dave).get("/rooms/analytics.csv?start=2025-06-01&end=2025-06-30")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert response.content.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert rows[0][:3] == ["区分", "名称", "利用可能時間"]
    assert rows[1][:6] == ["合計", "合計", "690.0", "4.5", "2.4", "1.0"]
    names = [row[1] for row in rows if row[0] == "会議室"]
    assert "'本庁舎 3階 =HYPERLINK(1)" not in names  # the cell starts with the floor
    assert "本庁舎 3階 =HYPERLINK(1)" in names
    heat_row = next(row for row in rows if row[1] == "月 10時")
    assert heat_row[0] == "曜日×時間帯"
    assert heat_row[8] == "6.1%"  # 55 min of 5 Mondays × 3 rooms × 1 h
    entry = AuditEntry.objects.filter(action=AuditAction.ROOM_REPORT_EXPORTED).get()
    assert entry.actor_id == dave.pk
    assert entry.details["format"] == "csv"


def test_it_escapes_formula_cells_in_the_csv(
    june: dict[str, Booking], dave: User, ward: dict[str, Department]
) -> None:
    Department.objects.filter(pk=ward["bunsho"].pk).update(name="=cmd|' /C calc'!A0")
    with clock.frozen_at(at(16, "12:00")):
        response = _client(dave).get("/rooms/analytics.csv?start=2025-06-01&end=2025-06-30")
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    departments = [row[1] for row in rows if row[0] == "所属"]
    assert "'=cmd|' /C calc'!A0" in departments


def test_it_prints_the_monthly_pdf_with_an_embedded_font(
    june: dict[str, Booking], dave: User
) -> None:
    with clock.frozen_at(at(16, "12:00")):
        response = _client(dave).get("/rooms/analytics/report.pdf?month=2025-06")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    content = response.content
    assert content.startswith(b"%PDF")
    assert b"/FontFile2" in content or b"/FontFile3" in content
    assert b"/ToUnicode" in content  # the Japanese text can be copied and searched
    assert utilisation_title_in(content)
    entry = AuditEntry.objects.filter(action=AuditAction.ROOM_REPORT_EXPORTED).get()
    assert entry.details["format"] == "pdf"
    assert entry.details["start"] == "2025-06-01"


def utilisation_title_in(content: bytes) -> bool:
    """fpdf2 writes the document title as UTF-16BE in the Info dictionary."""
    title = "会議室稼働率月報 令和7年6月"
    encoded = ("\ufeff" + title).encode("utf-16-be")
    return encoded in content or encoded.hex().upper().encode() in content.upper()


def test_it_says_which_font_is_missing(dave: User, settings: SettingsWrapper) -> None:
    settings.PDF_FONT = "/nonexistent/font.ttc"
    response = _client(dave).get("/rooms/analytics/report.pdf?month=2025-06")
    assert response.status_code == 503
    page = response.content.decode()
    assert "/nonexistent/font.ttc" in page
    assert "YAKUBA_PDF_FONT" in page
    assert not AuditEntry.objects.filter(action=AuditAction.ROOM_REPORT_EXPORTED).exists()


def test_it_says_which_font_cannot_be_read(
    dave: User, settings: SettingsWrapper, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.ttf"
    broken.write_bytes(b"not a font at all")
    settings.PDF_FONT = str(broken)
    response = _client(dave).get("/rooms/analytics/report.pdf?month=2025-06")
    assert response.status_code == 503
    assert "YAKUBA_PDF_FONT" in response.content.decode()
    assert not AuditEntry.objects.filter(action=AuditAction.ROOM_REPORT_EXPORTED).exists()


@pytest.mark.parametrize("month", ["2025-13", "9999-12", "0001-01", "2025-06\n", "2025-6", ""])
def test_it_refuses_a_bad_month(dave: User, month: str) -> None:
    response = _client(dave).get("/rooms/analytics/report.pdf", {"month": month})
    assert response.status_code == 400
    assert "2025-06" in response.content.decode()


def test_it_refuses_a_report_filter_naming_nothing(dave: User, rooms: dict[str, Room]) -> None:
    # Silently reporting the whole ward instead of the building asked for would mislead.
    response = _client(dave).get("/rooms/analytics/report.pdf?month=2025-06&building=99999")
    assert response.status_code == 400
    assert not AuditEntry.objects.filter(action=AuditAction.ROOM_REPORT_EXPORTED).exists()


@pytest.mark.parametrize(
    "period",
    [
        {"start": "9999-12-31", "end": "9999-12-31"},  # the day after overflows
        {"start": "0001-01-01", "end": "0001-01-02"},  # before the epoch in UTC
        {"start": "2025-06-01", "end": "2026-06-02"},  # over a year
        {"start": "2025-06-01", "end": "いつか"},
    ],
)
def test_it_refuses_periods_it_cannot_compute(
    dave: User, rooms: dict[str, Room], period: dict[str, str]
) -> None:
    for url in ("/rooms/analytics/", "/rooms/analytics.csv"):
        response = _client(dave).get(url, period)
        assert response.status_code == 400, (url, period)
    assert not AuditEntry.objects.filter(action=AuditAction.ROOM_REPORT_EXPORTED).exists()


@pytest.mark.parametrize(
    "url",
    [
        "/rooms/analytics/",
        "/rooms/analytics.csv",
        "/rooms/analytics/report.pdf?month=2025-06",
    ],
)
def test_it_refuses_anyone_but_facility_managers(
    url: str, charlie: User, rooms: dict[str, Room]
) -> None:
    response = _client(charlie).get(url)
    assert response.status_code == 403
    denial = AuditEntry.objects.filter(action=AuditAction.PERMISSION_DENIED).get()
    assert denial.actor_id == charlie.pk
    assert denial.details["what"] == "rooms.analytics"
    assert not AuditEntry.objects.filter(action=AuditAction.ROOM_REPORT_EXPORTED).exists()
