"""Recurring bookings (定期予約): create all or nothing, skip taken dates, change one /
this and following / all, cancel, extend as the horizon moves, holidays, permissions.

The clock is frozen at Wednesday 2025-06-11 09:00; the horizon is 180 days later
(2025-12-08, a Monday)."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import PermissionDenied
from django.db import connections

from yakuba.audit.models import AuditEntry
from yakuba.directory.models import User
from yakuba.lib import clock
from yakuba.mail.models import OutboundMail
from yakuba.realtime.models import UserEvent
from yakuba.rooms import series_tasks  # noqa: F401  (registers rooms.extend_series until tasks.py imports it)
from yakuba.rooms.access import access_booking_for_change
from yakuba.rooms.actions.booking import BookingConflict, BookingRefused, check_change_booking
from yakuba.rooms.actions.holidays import check_import_holidays
from yakuba.rooms.actions.series import (
    SeriesResult,
    check_change_series,
    check_create_series,
    do_cancel_occurrence,
    do_cancel_series,
    extend_series,
    series_holidays,
)
from yakuba.rooms.models import Booking, BookingSeries, Room
from yakuba.tasks.registry import PERIODIC

from .conftest import NOW, at, book

D = dt.date
T = dt.time
MONDAYS = [D(2025, 6, 16) + dt.timedelta(weeks=n) for n in range(26)]  # 6/16 … 12/8


@pytest.fixture(autouse=True)
def _addresses(alice: User, bob: User) -> None:
    """Alice and Bob have e-mail addresses (the personas have none), so mail is queued."""
    for person in (alice, bob):
        User.objects.filter(pk=person.pk).update(email=f"{person.username}@ward.example.jp")
        person.refresh_from_db()


def weekly_mondays(room: Room, user: User, **fields: Any) -> SeriesResult:
    values: dict[str, Any] = {
        "organiser": user,
        "title": "係内定例",
        "frequency": "weekly",
        "weekdays": [1],
        "first_date": D(2025, 6, 12),
        "start_time": T(10, 0),
        "end_time": T(11, 0),
        "acting_user": user,
    }
    values.update(fields)
    return check_create_series(room, **values)


def live_dates(series: BookingSeries) -> list[dt.date]:
    return sorted(
        d
        for d in Booking.objects.filter(series=series, status__in=Booking.LIVE).values_list(
            "occurrence_date", flat=True
        )
        if d is not None
    )


def test_it_creates_a_weekly_series_up_to_the_horizon(
    frozen_now: dt.datetime, rooms: dict[str, Room], alice: User, bob: User
) -> None:
    series, bookings, skipped = weekly_mondays(rooms["r301"], alice, attendees=[bob])
    assert [b.occurrence_date for b in bookings] == MONDAYS
    assert skipped == []
    assert series.generated_through == D(2025, 12, 8)
    assert {b.status for b in bookings} == {Booking.Status.CONFIRMED}
    assert bookings[0].starts_at == at(16, "10:00")
    assert list(bookings[-1].attendees.all()) == [bob]
    # One audit entry, one event per person and one e-mail for the whole series.
    entry = AuditEntry.objects.get(action="rooms.series_created")
    assert entry.target_id == str(series.pk)
    assert entry.details["dates"] == [d.isoformat() for d in MONDAYS]
    assert entry.details["rule"] == "毎週 月"
    assert not AuditEntry.objects.filter(action="rooms.booking_created").exists()
    for person in (alice, bob):
        events = UserEvent.objects.filter(user=person, payload__type="rooms")
        assert [e.payload["op"] for e in events] == ["series_created"]
        assert events[0].payload["series_id"] == series.pk
    mail = OutboundMail.objects.get()
    assert mail.subject == "【定期予約】係内定例"
    assert sorted(mail.to) == sorted([alice.email, bob.email])
    assert "毎週 月 10:00〜11:00" in mail.body
    assert "ほか14日" in mail.body


def test_it_flags_the_holidays_among_the_occurrences(
    frozen_now: dt.datetime, rooms: dict[str, Room], alice: User, dave: User
) -> None:
    shipped = Path(__file__).parents[2] / "yakuba/rooms/data/holidays.csv"
    check_import_holidays(shipped.read_bytes(), acting_user=dave)
    series, _, _ = weekly_mondays(rooms["r301"], alice)
    flagged = {
        D(2025, 7, 21): "海の日",
        D(2025, 8, 11): "山の日",
        D(2025, 9, 15): "敬老の日",
        D(2025, 10, 13): "スポーツの日",
        D(2025, 11, 3): "文化の日",
        D(2025, 11, 24): "振替休日",
    }
    assert series_holidays(series) == flagged
    entry = AuditEntry.objects.get(action="rooms.series_created")
    assert entry.details["holidays"] == [d.isoformat() for d in flagged]
    body = OutboundMail.objects.get().body
    assert "祝日・休庁日にあたる日: 7/21 海の日、8/11 山の日、9/15 敬老の日、" in body


def test_it_refuses_the_whole_series_when_a_date_is_taken(
    frozen_now: dt.datetime, rooms: dict[str, Room], alice: User, bob: User
) -> None:
    book(rooms["r301"], bob, at(23, "10:30"), at(23, "11:30"), title="秘密の面談", is_private=True)
    book(rooms["r301"], bob, at(D(2025, 7, 7), "09:30"), at(D(2025, 7, 7), "10:15"))
    with pytest.raises(BookingConflict) as refused:
        weekly_mondays(rooms["r301"], alice)
    assert "2025-06-23 10:30〜11:30" in refused.value.message
    assert "2025-07-07 09:30〜10:15" in refused.value.message
    assert "秘密" not in refused.value.message
    assert len(refused.value.details["conflicts"]) == 2
    assert not BookingSeries.objects.exists()
    assert Booking.objects.filter(organiser=alice).count() == 0
    assert not AuditEntry.objects.filter(action="rooms.series_created").exists()


def test_it_skips_taken_dates_when_asked(
    frozen_now: dt.datetime, rooms: dict[str, Room], alice: User, bob: User
) -> None:
    book(rooms["r301"], bob, at(23, "10:30"), at(23, "11:30"))
    series, bookings, skipped = weekly_mondays(rooms["r301"], alice, skip_conflicts=True)
    assert skipped == [D(2025, 6, 23)]
    assert len(bookings) == 25
    assert series.excluded_dates == ["2025-06-23"]
    assert AuditEntry.objects.get(action="rooms.series_created").details["skipped"] == [
        "2025-06-23"
    ]
    mail = OutboundMail.objects.get(subject="【定期予約】係内定例")
    assert "他の予約と重なるため予約しなかった日: 6/23（月）" in mail.body


def test_it_refuses_times_outside_the_rooms_hours(
    frozen_now: dt.datetime, rooms: dict[str, Room], alice: User
) -> None:
    with pytest.raises(BookingRefused) as refused:
        weekly_mondays(rooms["r301"], alice, start_time=T(19, 30), end_time=T(21, 0))
    assert "08:30〜20:00" in refused.value.message
    with pytest.raises(BookingRefused) as refused:
        weekly_mondays(rooms["r301"], alice, until_date=D(2025, 7, 1), count=3)
    assert "どちらか一方" in refused.value.message
    assert not BookingSeries.objects.exists()


def test_it_stops_at_the_count_and_holds_an_approval_room(
    frozen_now: dt.datetime, rooms: dict[str, Room], alice: User
) -> None:
    series, bookings, _ = weekly_mondays(
        rooms["special"], alice, frequency="monthly_weekday", weekdays=[5, -1], count=3
    )
    assert [b.occurrence_date for b in bookings] == [D(2025, 6, 27), D(2025, 7, 25), D(2025, 8, 29)]
    assert {b.status for b in bookings} == {Booking.Status.PENDING}
    assert (series.weekdays, series.count) == ([5, -1], 3)
    assert "承認をお待ちください" in OutboundMail.objects.get().body


def test_it_changes_one_occurrence_and_all_others_keep_the_rule(
    frozen_now: dt.datetime, rooms: dict[str, Room], alice: User
) -> None:
    series, bookings, _ = weekly_mondays(rooms["r301"], alice)
    one = check_change_booking(
        bookings[1], acting_user=alice, starts_at=at(23, "15:00"), ends_at=at(23, "16:00")
    )
    assert one.detached
    result = check_change_series(
        series,
        scope="all",
        acting_user=alice,
        title="定例会",
        start_time=T(13, 0),
        end_time=T(14, 0),
    )
    assert result.series.pk == series.pk
    assert len(result.bookings) == 25
    one.refresh_from_db()
    assert (one.starts_at, one.title) == (at(23, "15:00"), "係内定例")
    first = Booking.objects.get(series=series, occurrence_date=D(2025, 6, 16))
    assert (first.starts_at, first.title, first.ical_sequence) == (at(16, "13:00"), "定例会", 1)
    series.refresh_from_db()
    assert (series.start_time, series.title) == (T(13, 0), "定例会")
    entry = AuditEntry.objects.get(action="rooms.series_changed")
    assert entry.details["scope"] == "all"
    assert entry.details["fields"] == ["time", "title"]
    assert UserEvent.objects.filter(user=alice, payload__op="series_changed").count() == 1


def test_it_changes_all_or_nothing_on_a_conflict(
    frozen_now: dt.datetime, rooms: dict[str, Room], alice: User, bob: User
) -> None:
    series, _, _ = weekly_mondays(rooms["r301"], alice)
    book(rooms["r302"], bob, at(D(2025, 8, 4), "10:00"), at(D(2025, 8, 4), "11:00"))
    with pytest.raises(BookingConflict) as refused:
        check_change_series(series, acting_user=alice, room=rooms["r302"])
    assert "2025-08-04 10:00〜11:00" in refused.value.message
    assert not Booking.objects.filter(series=series, room=rooms["r302"]).exists()
    series.refresh_from_db()
    assert series.room_id == rooms["r301"].pk
    assert not AuditEntry.objects.filter(action="rooms.series_changed").exists()


def test_it_splits_the_series_for_this_and_following(
    frozen_now: dt.datetime, rooms: dict[str, Room], alice: User
) -> None:
    series, bookings, _ = weekly_mondays(
        rooms["r301"], alice, first_date=D(2025, 6, 16), interval=2, count=6
    )
    # Every second week from the week of 6/16: 6/16, 6/30, 7/14, 7/28, 8/11, 8/25.
    assert [b.occurrence_date for b in bookings][2] == D(2025, 7, 14)
    ids = [b.pk for b in bookings]
    new, moved, _ = check_change_series(
        series,
        scope="following",
        from_date=D(2025, 7, 8),
        acting_user=alice,
        room=rooms["r302"],
        start_time=T(15, 0),
        end_time=T(16, 0),
    )
    assert new.pk != series.pk
    assert (new.first_date, new.count, new.interval) == (D(2025, 7, 14), 4, 2)
    assert [b.pk for b in moved] == ids[2:]  # the same rows: ids and calendar UIDs stay
    assert {b.room_id for b in moved} == {rooms["r302"].pk}
    assert moved[0].starts_at == at(D(2025, 7, 14), "15:00")
    series.refresh_from_db()
    assert (series.until_date, series.count) == (D(2025, 7, 13), None)
    assert live_dates(series) == [D(2025, 6, 16), D(2025, 6, 30)]
    assert Booking.objects.get(pk=ids[0]).starts_at == at(16, "10:00")
    entry = AuditEntry.objects.get(action="rooms.series_changed")
    assert (entry.target_id, entry.details["split_from"]) == (str(new.pk), series.pk)
    # Extending either half later makes nothing new (the count is used up).
    with clock.frozen_at(frozen_now + dt.timedelta(days=60)):
        assert extend_series(new).bookings == []
        assert extend_series(series).bookings == []


def test_it_cancels_one_occurrence_as_an_exception(
    frozen_now: dt.datetime, rooms: dict[str, Room], alice: User
) -> None:
    series, bookings, _ = weekly_mondays(rooms["r301"], alice)
    assert do_cancel_occurrence(bookings[2], acting_user=alice, reason="祝日前")
    series.refresh_from_db()
    assert series.excluded_dates == ["2025-06-30"]
    assert D(2025, 6, 30) not in live_dates(series)
    assert AuditEntry.objects.filter(
        action="rooms.booking_cancelled", target_id=str(bookings[2].pk)
    ).exists()
    assert not do_cancel_occurrence(bookings[2], acting_user=alice)


def test_it_cancels_the_following_occurrences_and_then_all_keeping_the_past(
    frozen_now: dt.datetime, rooms: dict[str, Room], alice: User
) -> None:
    series, _, _ = weekly_mondays(rooms["r301"], alice)
    cancelled = do_cancel_series(
        series, scope="following", from_date=D(2025, 9, 1), acting_user=alice
    )
    assert [b.occurrence_date for b in cancelled] == MONDAYS[11:]
    series.refresh_from_db()
    assert (series.status, series.until_date) == (BookingSeries.Status.ACTIVE, D(2025, 8, 31))
    with clock.frozen_at(at(D(2025, 6, 24), "09:00")):  # 6/16 and 6/23 are past
        cancelled = do_cancel_series(series, acting_user=alice, reason="係の再編")
    assert [b.occurrence_date for b in cancelled] == MONDAYS[2:11]
    assert live_dates(series) == MONDAYS[:2]
    series.refresh_from_db()
    assert series.status == BookingSeries.Status.CANCELLED
    entries = AuditEntry.objects.filter(action="rooms.series_cancelled").order_by("pk")
    assert [e.details["scope"] for e in entries] == ["following", "all"]
    assert entries[1].details["reason"] == "係の再編"
    assert OutboundMail.objects.filter(subject="【定期予約】係内定例").count() == 3
    assert "理由: 係の再編" in OutboundMail.objects.order_by("pk").last().body  # type: ignore[union-attr]  # three mails


def test_the_extension_job_makes_new_dates_once_and_skips_taken_ones(
    frozen_now: dt.datetime, rooms: dict[str, Room], alice: User, bob: User
) -> None:
    series, bookings, _ = weekly_mondays(rooms["r301"], alice, weekdays=[1, 2], attendees=[bob])
    assert bookings[-1].occurrence_date == D(2025, 12, 8)
    clock.advance(dt.timedelta(days=7))  # the horizon moves to 12/15
    book(rooms["r301"], bob, at(D(2025, 12, 15), "10:00"), at(D(2025, 12, 15), "10:30"))
    job = PERIODIC["rooms.extend_series"]
    assert job.every == dt.timedelta(hours=1)
    job.function()
    job.function()
    assert live_dates(series)[-1:] == [D(2025, 12, 9)]
    new = Booking.objects.get(series=series, occurrence_date=D(2025, 12, 9))
    assert list(new.attendees.all()) == [bob]
    series.refresh_from_db()
    assert series.generated_through == D(2025, 12, 15)
    assert series.excluded_dates == ["2025-12-15"]
    entry = AuditEntry.objects.get(action="rooms.series_changed")
    assert (entry.actor_kind, entry.details["skipped"]) == ("system", ["2025-12-15"])
    assert entry.details["dates"] == ["2025-12-09"]
    assert OutboundMail.objects.filter(body__contains="12/15（月）").count() == 1


def test_charlie_cannot_reach_alices_series_through_its_bookings(
    frozen_now: dt.datetime, rooms: dict[str, Room], alice: User, charlie: User, dave: User
) -> None:
    series, bookings, _ = weekly_mondays(rooms["r301"], alice)
    with pytest.raises(PermissionDenied):
        access_booking_for_change(charlie, bookings[0].pk)
    denial = AuditEntry.objects.get(action="auth.denied", actor_id=charlie.pk)
    assert denial.target_id == str(bookings[0].pk)
    # The facility manager may.
    assert access_booking_for_change(dave, bookings[0].pk).series_id == series.pk


@pytest.mark.django_db(transaction=True)
def test_two_workers_extending_at_once_make_each_date_once(
    rooms: dict[str, Room], alice: User
) -> None:
    with clock.frozen_at(NOW):
        series = weekly_mondays(rooms["r301"], alice).series
        clock.advance(dt.timedelta(days=14))  # the horizon moves to 12/22
        barrier = threading.Barrier(4)
        made: list[int] = []
        failures: list[BaseException] = []

        def extend() -> None:
            try:
                barrier.wait(10)
                made.append(len(extend_series(series).bookings))
            except BaseException as exc:  # reported below, not lost in the thread
                failures.append(exc)
            finally:
                connections.close_all()

        workers = [threading.Thread(target=extend) for _ in range(4)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(30)
    assert failures == []
    assert sorted(made) == [0, 0, 0, 2]
    assert live_dates(series)[-3:] == [D(2025, 12, 8), D(2025, 12, 15), D(2025, 12, 22)]
    assert Booking.objects.filter(series=series).count() == 28
    assert AuditEntry.objects.filter(action="rooms.series_changed").count() == 1
