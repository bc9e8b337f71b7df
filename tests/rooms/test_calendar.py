"""Calendars: every feed and attachment is parsed with the ``icalendar`` package."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import icalendar
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from yakuba.audit.models import AuditAction, AuditEntry
from yakuba.directory.models import Department, User
from yakuba.mail.models import OutboundMail
from yakuba.rooms.actions.booking import do_cancel_booking
from yakuba.rooms.models import Booking, CalendarFeed, Room

from .conftest import at, book, restrict_to


def _client(user: User | None = None) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def _parse(content: bytes) -> icalendar.Calendar:
    calendar = icalendar.Calendar.from_ical(content)
    assert isinstance(calendar, icalendar.Calendar)
    return calendar


def _events(calendar: icalendar.Calendar) -> list[icalendar.Event]:
    return list(calendar.events)


def _assert_tokyo(calendar: icalendar.Calendar, content: bytes) -> None:
    zones = [str(tz["TZID"]) for tz in calendar.walk("VTIMEZONE")]
    assert zones == ["Asia/Tokyo"]
    for event in _events(calendar):
        assert event["DTSTART"].params["TZID"] == "Asia/Tokyo"
        assert event["DTEND"].params["TZID"] == "Asia/Tokyo"
    assert b"\r\n" in content
    assert all(len(line) <= 75 for line in content.split(b"\r\n"))


def _feed_of(user: User) -> str:
    """The person's feed URL, issued (by POST) the first time, as on the page."""
    client = _client(user)
    if not CalendarFeed.objects.filter(user=user).exists():
        assert client.post("/rooms/feeds/reset/").status_code == 302
    response = client.get("/rooms/feeds/")
    assert response.status_code == 200
    secret = CalendarFeed.objects.filter(user=user).values_list("secret", flat=True).get()
    assert f"/rooms/feeds/person/{secret}.ics" in response.content.decode()
    return f"/rooms/feeds/person/{secret}.ics"


def test_it_serves_a_rooms_feed_hiding_private_titles(
    frozen_now: dt.datetime, rooms: dict[str, Room], alice: User, bob: User
) -> None:
    book(
        rooms["r301"],
        alice,
        at(12, "10:00"),
        at(12, "11:00"),
        title="人事の内緒話",
        is_private=True,
    )
    public = book(rooms["r301"], bob, at(12, "13:00"), at(12, "14:00"), title="係会議")
    book(rooms["r302"], bob, at(12, "13:00"), at(12, "14:00"), title="別の部屋")
    response = _client().get(f"/rooms/feeds/room/{rooms['r301'].feed_secret}.ics")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/calendar; charset=utf-8"
    calendar = _parse(response.content)
    _assert_tokyo(calendar, response.content)
    summaries = sorted(str(event["SUMMARY"]) for event in _events(calendar))
    assert summaries == ["予約あり", "係会議"]
    assert "人事の内緒話" not in response.content.decode()
    private = next(e for e in _events(calendar) if str(e["SUMMARY"]) == "予約あり")
    assert "ORGANIZER" not in private
    assert "DESCRIPTION" not in private
    public_event = next(e for e in _events(calendar) if str(e["SUMMARY"]) == "係会議")
    assert str(public_event["UID"]) == f"{public.ical_uid}@yakuba"
    assert public_event.start == at(12, "13:00")
    assert str(public_event["STATUS"]) == "CONFIRMED"
    assert public_event.sequence == 0
    assert "DTSTAMP" in public_event


def test_it_answers_404_for_a_wrong_secret(rooms: dict[str, Room], alice: User) -> None:
    assert _client().get("/rooms/feeds/room/not-the-secret.ics").status_code == 404
    assert _client().get("/rooms/feeds/person/not-the-secret.ics").status_code == 404


def test_it_serves_a_persons_feed_with_attended_bookings(
    frozen_now: dt.datetime, rooms: dict[str, Room], alice: User, bob: User, charlie: User
) -> None:
    book(
        rooms["r301"],
        alice,
        at(12, "10:00"),
        at(12, "11:00"),
        title="秘密の打合せ",
        is_private=True,
        attendees=[bob],
    )
    book(rooms["r302"], bob, at(13, "10:00"), at(13, "11:00"), title="自分の会議")
    book(rooms["r302"], charlie, at(13, "13:00"), at(13, "14:00"), title="他人の会議")
    cancelled = book(rooms["r302"], bob, at(16, "10:00"), at(16, "11:00"), title="取り消した")
    do_cancel_booking(cancelled, acting_user=bob)
    response = _client().get(_feed_of(bob))
    assert response.status_code == 200
    calendar = _parse(response.content)
    _assert_tokyo(calendar, response.content)
    assert sorted(str(e["SUMMARY"]) for e in _events(calendar)) == ["秘密の打合せ", "自分の会議"]


def test_it_resets_the_feed_so_the_old_url_stops_working(
    frozen_now: dt.datetime, rooms: dict[str, Room], alice: User
) -> None:
    old = _feed_of(alice)
    assert _client().get(old).status_code == 200
    response = _client(alice).post("/rooms/feeds/reset/")
    assert response.status_code == 302
    assert _client().get(old).status_code == 404
    new = _feed_of(alice)
    assert new != old
    assert _client().get(new).status_code == 200
    entry = AuditEntry.objects.filter(action=AuditAction.CALENDAR_FEED_RESET).get()
    assert entry.actor_id == alice.pk


def test_it_issues_a_feed_only_when_asked(rooms: dict[str, Room], alice: User) -> None:
    """Opening the page (or a link preview of it) creates no secret URL."""
    client = _client(alice)
    assert "配信URLを発行する" in client.get("/rooms/feeds/").content.decode()
    assert not CalendarFeed.objects.filter(user=alice).exists()
    assert client.post("/rooms/feeds/reset/").status_code == 302
    assert CalendarFeed.objects.filter(user=alice).exists()
    assert AuditEntry.objects.filter(action=AuditAction.CALENDAR_FEED_CREATED).count() == 1
    assert not AuditEntry.objects.filter(action=AuditAction.CALENDAR_FEED_RESET).exists()


def test_it_lists_room_feeds_for_staff(rooms: dict[str, Room], charlie: User) -> None:
    page = _client(charlie).get("/rooms/feeds/").content.decode()
    assert f"/rooms/feeds/room/{rooms['special'].feed_secret}.ics" in page


def test_it_downloads_one_bookings_ics(
    frozen_now: dt.datetime, rooms: dict[str, Room], alice: User, charlie: User
) -> None:
    booking = book(
        rooms["r301"], alice, at(12, "10:00"), at(12, "11:00"), title="非公開", is_private=True
    )
    response = _client(alice).get(f"/rooms/bookings/{booking.pk}/booking.ics")
    assert response.status_code == 200
    calendar = _parse(response.content)
    _assert_tokyo(calendar, response.content)
    assert [str(e["SUMMARY"]) for e in _events(calendar)] == ["非公開"]
    assert _client(charlie).get(f"/rooms/bookings/{booking.pk}/booking.ics").status_code == 404


def test_it_attaches_ics_to_booking_mail(
    frozen_now: dt.datetime, rooms: dict[str, Room], alice: User, bob: User
) -> None:
    User.objects.filter(pk__in=[alice.pk, bob.pk]).update(email="x@example.test")
    alice.refresh_from_db()
    booking = book(
        rooms["r301"], alice, at(12, "10:00"), at(12, "11:00"), title="係会議", attendees=[bob]
    )
    mail = OutboundMail.objects.get()
    [attachment] = mail.attachments
    assert attachment["content_type"].startswith("text/calendar; method=REQUEST")
    calendar = _parse(attachment["content"].encode())
    assert str(calendar["METHOD"]) == "REQUEST"
    _assert_tokyo(calendar, attachment["content"].encode())
    [event] = _events(calendar)
    assert str(event["UID"]) == f"{booking.ical_uid}@yakuba"

    assert do_cancel_booking(booking, acting_user=alice)
    cancel = OutboundMail.objects.order_by("-pk").first()
    assert cancel is not None
    assert cancel.pk != mail.pk
    calendar = _parse(cancel.attachments[0]["content"].encode())
    assert str(calendar["METHOD"]) == "CANCEL"
    [event] = _events(calendar)
    assert str(event["STATUS"]) == "CANCELLED"
    assert str(event["UID"]) == f"{booking.ical_uid}@yakuba"
    assert event.sequence == 1


def _ics(*events: tuple[str, str, str], extra: str = "") -> bytes:
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//test//test//EN"]
    for number, (summary, start, end) in enumerate(events):
        lines += [
            "BEGIN:VEVENT",
            f"UID:event-{number}@test",
            "DTSTAMP:20250601T000000Z",
            f"DTSTART;TZID=Asia/Tokyo:{start}",
            f"DTEND;TZID=Asia/Tokyo:{end}",
            f"SUMMARY:{summary}",
            *([extra] if extra and number == 0 else []),
            "END:VEVENT",
        ]
    lines.append("END:VCALENDAR")
    return ("\r\n".join(lines) + "\r\n").encode()


def _upload(client: Client, room: Room, content: bytes, name: str = "events.ics") -> Any:
    return client.post(
        "/rooms/import-ics/",
        {"room": str(room.pk), "file": SimpleUploadedFile(name, content, "text/calendar")},
    )


def test_it_imports_every_event_of_a_good_file(
    frozen_now: dt.datetime, rooms: dict[str, Room], alice: User
) -> None:
    content = _ics(
        ("課内会議", "20250612T100000", "20250612T110000"),
        ("研修準備", "20250613T140000", "20250613T153000"),
    )
    response = _upload(_client(alice), rooms["r301"], content)
    assert response.status_code == 200
    made = Booking.objects.filter(room=rooms["r301"]).order_by("starts_at")
    assert [(b.title, b.starts_at, b.organiser_id) for b in made] == [
        ("課内会議", at(12, "10:00"), alice.pk),
        ("研修準備", at(13, "14:00"), alice.pk),
    ]
    entry = AuditEntry.objects.filter(action=AuditAction.BOOKINGS_IMPORTED).get()
    assert entry.details["count"] == 2
    assert not AuditEntry.objects.filter(action=AuditAction.BOOKING_CREATED).exists()


def test_it_imports_nothing_when_one_event_conflicts(
    frozen_now: dt.datetime, rooms: dict[str, Room], alice: User, bob: User
) -> None:
    book(rooms["r301"], bob, at(13, "14:00"), at(13, "15:00"), title="坂東の会議")
    content = _ics(
        ("課内会議", "20250612T100000", "20250612T110000"),
        ("研修準備", "20250613T143000", "20250613T153000"),
    )
    response = _upload(_client(alice), rooms["r301"], content)
    assert response.status_code == 400
    page = response.content.decode()
    assert "「研修準備」 2025-06-13 14:30" in page
    assert "既に予約されています" in page
    assert "坂東の会議" not in page  # the other booking's title is not revealed
    assert not Booking.objects.filter(organiser=alice).exists()
    assert not AuditEntry.objects.filter(action=AuditAction.BOOKINGS_IMPORTED).exists()


def test_it_reports_every_problem_of_a_bad_file(
    frozen_now: dt.datetime, rooms: dict[str, Room], alice: User
) -> None:
    content = _ics(
        ("毎週の会議", "20250612T100000", "20250612T110000"),
        ("早朝会議", "20250613T060000", "20250613T070000"),
        ("重なる1", "20250616T100000", "20250616T110000"),
        ("重なる2", "20250616T103000", "20250616T113000"),
        extra="RRULE:FREQ=WEEKLY;COUNT=4",
    )
    response = _upload(_client(alice), rooms["r301"], content)
    assert response.status_code == 400
    page = response.content.decode()
    assert "「毎週の会議」 2025-06-12 10:00: 繰り返しの予定は取り込めません" in page
    assert "「早朝会議」 2025-06-13 06:00: この会議室の利用時間は08:30〜20:00です" in page
    assert not Booking.objects.exists()


def test_it_refuses_a_file_that_is_not_icalendar(
    frozen_now: dt.datetime, rooms: dict[str, Room], alice: User
) -> None:
    response = _upload(_client(alice), rooms["r301"], b"name,room\n1,2\n", "rooms.csv")
    assert response.status_code == 400
    page = response.content.decode()
    assert "iCalendar（.ics）ファイルとして読めませんでした" in page
    assert f'<option value="{rooms["r301"].pk}" selected>' in page  # what was chosen stays


def test_it_refuses_a_file_over_one_megabyte(
    frozen_now: dt.datetime, rooms: dict[str, Room], alice: User
) -> None:
    response = _upload(_client(alice), rooms["r301"], b"x" * (1024 * 1024 + 1))
    assert response.status_code == 400
    assert "1MBまで" in response.content.decode()


def test_it_refuses_import_into_a_room_the_user_may_not_book(
    frozen_now: dt.datetime,
    rooms: dict[str, Room],
    charlie: User,
    ward: dict[str, Department],
) -> None:
    room = rooms["r302"]
    restrict_to(room, ward["somu_ka"])
    content = _ics(("会議", "20250612T100000", "20250612T110000"))
    response = _upload(_client(charlie), room, content)
    assert response.status_code == 403
    assert not Booking.objects.exists()
    assert AuditEntry.objects.filter(action=AuditAction.PERMISSION_DENIED).exists()


def test_it_refuses_ten_thousand_events_without_parsing_them(
    frozen_now: dt.datetime, rooms: dict[str, Room], alice: User, monkeypatch: Any
) -> None:
    event = (
        "BEGIN:VEVENT\r\nDTSTART:20250612T010000Z\r\nDTEND:20250612T020000Z\r\n"
        "SUMMARY:x\r\nEND:VEVENT\r\n"
    )
    content = f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\n{event * 10_000}END:VCALENDAR\r\n".encode()
    assert len(content) < 1024 * 1024  # under the size limit: the count must stop it

    def no_parsing(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("parsed 10,000 events (about 2 s) only to refuse them")

    monkeypatch.setattr(icalendar.Calendar, "from_ical", no_parsing)
    response = _upload(_client(alice), rooms["r301"], content)
    assert response.status_code == 400
    assert "一度に取り込めるのは500件までです" in response.content.decode()
    assert not Booking.objects.exists()


def test_it_reports_unreadable_times_instead_of_failing(
    frozen_now: dt.datetime, rooms: dict[str, Room], alice: User
) -> None:
    content = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:a@test\r\n"
        "DTSTART:20250612T010000Z\r\nDURATION:P99999999D\r\nSUMMARY:永い会議\r\n"
        "END:VEVENT\r\nEND:VCALENDAR\r\n"
    ).encode()
    response = _upload(_client(alice), rooms["r301"], content)
    assert response.status_code == 400
    assert "「永い会議」: 日時を読み取れません" in response.content.decode()
    assert not Booking.objects.exists()


def test_it_drops_control_characters_from_imported_titles(
    frozen_now: dt.datetime, rooms: dict[str, Room], alice: User
) -> None:
    content = _ics(("課内\x00会議\x1b", "20250612T100000", "20250612T110000"))
    response = _upload(_client(alice), rooms["r301"], content)
    assert response.status_code == 200
    assert Booking.objects.get().title == "課内会議"  # PostgreSQL refuses a NUL in text


def test_it_answers_404_for_secrets_that_cannot_be_ours(rooms: dict[str, Room]) -> None:
    for path in (
        "/rooms/feeds/room/" + "a" * 65 + ".ics",
        "/rooms/feeds/room/abc+def.ics",
        "/rooms/feeds/person/%E9%9D%92.ics",
    ):
        response = _client().get(path)
        assert response.status_code == 404, path
    # A NUL never reaches the view (on PostgreSQL it was a 500): refused ward-wide.
    for path in (
        "/rooms/feeds/room/%00.ics",
        "/rooms/feeds/person/%00abc.ics",
        f"/rooms/feeds/room/{rooms['r301'].feed_secret}%00.ics",
    ):
        assert _client().get(path).status_code == 400, path


def test_the_import_page_offers_only_bookable_rooms_in_a_fixed_number_of_queries(
    frozen_now: dt.datetime, rooms: dict[str, Room], ward: dict[str, Department], alice: User
) -> None:
    client = _client(alice)

    def offered() -> tuple[list[str], int]:
        with CaptureQueriesContext(connection) as queries:
            page = client.get("/rooms/import-ics/").content.decode()
        names = re.findall(r"<option value=\"\d+\">本庁舎 \S+ (\S+)</option>", page)
        return sorted(names), len(queries)

    offered()  # the first request of a session also writes to it
    before, queries_before = offered()
    assert before == ["会議室301", "会議室302", "特別会議室"]
    for n in range(10):
        room = Room.objects.create(
            floor=rooms["r301"].floor, code=f"F{n:02d}", name=f"会議室F{n}", capacity=10
        )
        # Alice's 係 lies below 総務部; 戸籍住民課 is not hers.
        restrict_to(room, ward["somu_bu"] if n % 2 else ward["koseki"])
    after, queries_after = offered()
    assert after == sorted([*before, *(f"会議室F{n}" for n in (1, 3, 5, 7, 9))])
    assert queries_after == queries_before
