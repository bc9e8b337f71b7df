"""The automatic release of no-shows (未使用予約の自動解放), with the clock moved."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from django.db import connection, connections
from pytest_django.fixtures import Settings as SettingsWrapper

import yakuba.rooms.release_tasks  # noqa: F401  (registers the periodic job)
from yakuba.audit.models import AuditEntry
from yakuba.chat.models import Message
from yakuba.directory.models import User
from yakuba.lib import clock
from yakuba.mail.models import OutboundMail
from yakuba.realtime.models import UserEvent
from yakuba.rooms.actions.booking import BookingRefused, BookingRequest, check_create_booking
from yakuba.rooms.actions.door import do_check_in, do_release_no_show, due_for_release, release_due
from yakuba.rooms.models import Booking, BookingSeries, Room
from yakuba.rooms.occupancy import RELEASED, room_states
from yakuba.tasks import worker
from yakuba.tasks.registry import PERIODIC

from .conftest import at, book


@pytest.fixture
def alice_mail(alice: User) -> str:
    User.objects.filter(pk=alice.pk).update(email="alice@ward.example.jp")
    alice.refresh_from_db()
    return alice.email


def released_mail(address: str) -> list[OutboundMail]:
    return [m for m in OutboundMail.objects.all() if "自動解放" in m.subject and address in m.to]


def test_it_releases_a_no_show_after_the_grace_period(
    frozen_now: dt.datetime, rooms: dict[str, Room], alice: User, alice_mail: str
) -> None:
    booking = book(rooms["r301"], alice, at(11, "10:00"), at(11, "11:00"))
    assert booking.release_due_at == at(11, "10:10")
    with clock.frozen_at(at(11, "10:09") + dt.timedelta(seconds=59)):
        assert release_due(clock.now()) == 0
    booking.refresh_from_db()
    assert booking.status == Booking.Status.CONFIRMED
    assert not released_mail(alice_mail)

    with clock.frozen_at(at(11, "10:10")):
        assert release_due(clock.now()) == 1
        [state] = room_states([rooms["r301"]])
        assert release_due(clock.now()) == 0  # once only
    booking.refresh_from_db()
    assert booking.status == Booking.Status.RELEASED
    assert booking.released_at == at(11, "10:10")
    assert state.state == RELEASED
    entry = AuditEntry.objects.get(action="rooms.released", target_id=str(booking.pk))
    assert entry.details["lag_seconds"] == 0
    assert UserEvent.objects.filter(user=alice, payload__op="released").count() == 1
    [mail] = released_mail(alice_mail)
    assert "打合せ" in mail.body
    # And a chat message in Alice's お知らせ, from the system.
    [notice] = Message.objects.filter(conversation__direct_key=f"notices:{alice.pk}")
    assert "チェックインがなかったため、予約を解放しました" in notice.text
    assert "打合せ" in notice.text
    assert notice.sender_label == "会議室予約"
    # Released, the room can be taken by someone else at once.
    with clock.frozen_at(at(11, "10:12")):
        again = book(rooms["r301"], alice, at(11, "10:15"), at(11, "11:00"))
    assert again.status == Booking.Status.CONFIRMED


def test_it_keeps_a_booking_that_was_checked_in(
    frozen_now: dt.datetime, rooms: dict[str, Room], alice: User
) -> None:
    booking = book(rooms["r301"], alice, at(11, "10:00"), at(11, "11:00"))
    with clock.frozen_at(at(11, "10:09")):
        do_check_in(booking, acting_user=alice, method=Booking.CheckInMethod.PANEL)
    with clock.frozen_at(at(11, "10:30")):
        assert due_for_release(clock.now()) == []
        assert release_due(clock.now()) == 0
    booking.refresh_from_db()
    assert booking.status == Booking.Status.CONFIRMED
    assert not AuditEntry.objects.filter(action="rooms.released").exists()


@pytest.mark.parametrize(
    ("case", "start", "end"),
    [
        ("opted_out", "10:00", "11:00"),
        ("longer_than_max_hours", "10:00", "14:30"),
        ("booked_on_the_spot", "09:20", "10:00"),
    ],
)
def test_it_never_releases_what_the_rules_exempt(
    frozen_now: dt.datetime,
    rooms: dict[str, Room],
    alice: User,
    case: str,
    start: str,
    end: str,
) -> None:
    room = rooms["r301"]
    if case == "opted_out":
        Room.objects.filter(pk=room.pk).update(auto_release=False)
        room.refresh_from_db()
    booking = book(room, alice, at(11, start), at(11, end))
    assert booking.release_due_at is None
    with clock.frozen_at(at(11, end) - dt.timedelta(minutes=1)):
        assert release_due(clock.now()) == 0
    booking.refresh_from_db()
    assert booking.status == Booking.Status.CONFIRMED


def test_it_releases_on_the_first_worker_run_after_a_downtime(
    frozen_now: dt.datetime, rooms: dict[str, Room], alice: User, alice_mail: str
) -> None:
    assert "rooms.release_no_shows" in PERIODIC
    assert PERIODIC["rooms.release_no_shows"].every <= dt.timedelta(seconds=60)
    booking = book(rooms["r301"], alice, at(11, "10:00"), at(11, "11:00"))
    # No worker ran from 09:00 until 13:00, long after the deadline.
    with clock.frozen_at(at(11, "13:00")):
        worker.run_once()
    booking.refresh_from_db()
    assert booking.status == Booking.Status.RELEASED
    entry = AuditEntry.objects.get(action="rooms.released", target_id=str(booking.pk))
    assert entry.details["lag_seconds"] == 170 * 60
    assert released_mail(alice_mail)


def test_it_releases_every_due_booking_even_when_one_fails(
    frozen_now: dt.datetime,
    rooms: dict[str, Room],
    alice: User,
    bob: User,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = book(rooms["r301"], alice, at(11, "10:00"), at(11, "11:00"))
    second = book(rooms["r302"], bob, at(11, "10:00"), at(11, "11:00"))
    from yakuba.rooms import notifications

    original = notifications.booking_released

    def fail_for_alice(booking: Booking) -> None:
        if booking.organiser_id == alice.pk:
            raise RuntimeError("broken row")
        original(booking)

    monkeypatch.setattr(notifications, "booking_released", fail_for_alice)
    with clock.frozen_at(at(11, "10:15")):
        assert release_due(clock.now()) == 1
    first.refresh_from_db()
    second.refresh_from_db()
    # The failing release rolled back whole; the other went through.
    assert first.status == Booking.Status.CONFIRMED
    assert second.status == Booking.Status.RELEASED


def make_series(room: Room, organiser: User, weeks: int) -> tuple[BookingSeries, list[Booking]]:
    """A weekly series on Wednesdays 10:00–11:00 from 2025-06-11, with its occurrences
    placed through the booking action."""
    series = BookingSeries.objects.create(
        room=room,
        organiser=organiser,
        booked_by=organiser,
        title="定例会",
        frequency=BookingSeries.Frequency.WEEKLY,
        weekdays=[3],
        first_date=dt.date(2025, 6, 11),
        start_time=dt.time(10),
        end_time=dt.time(11),
    )
    occurrences = []
    for week in range(weeks):
        day = dt.date(2025, 6, 11) + dt.timedelta(weeks=week)
        request = BookingRequest(
            room=room,
            starts_at=at(day, "10:00"),
            ends_at=at(day, "11:00"),
            title="定例会",
            organiser=organiser,
            series_id=series.pk,
            occurrence_date=day,
        )
        occurrences.append(check_create_booking(request, acting_user=organiser))
    return series, occurrences


def test_it_never_cancels_a_series_when_the_limit_is_zero(
    frozen_now: dt.datetime, rooms: dict[str, Room], alice: User, settings: SettingsWrapper
) -> None:
    settings.ROOMS_SERIES_NO_SHOW_LIMIT = 0  # "never", as docs/configuration.md says
    series, occurrences = make_series(rooms["r301"], alice, weeks=3)
    for week in range(2):
        day = occurrences[week].starts_at.astimezone(clock.TOKYO).date()
        with clock.frozen_at(at(day, "10:11")):
            assert release_due(clock.now()) == 1
    series.refresh_from_db()
    assert series.status == BookingSeries.Status.ACTIVE
    assert series.no_show_warned_at is None
    assert Booking.objects.get(pk=occurrences[2].pk).status == Booking.Status.CONFIRMED
    assert not AuditEntry.objects.filter(action__startswith="rooms.series_").exists()


def test_it_warns_before_and_cancels_a_series_after_k_no_shows(
    frozen_now: dt.datetime,
    rooms: dict[str, Room],
    alice: User,
    alice_mail: str,
    settings: SettingsWrapper,
) -> None:
    settings.ROOMS_SERIES_NO_SHOW_LIMIT = 3
    series, occurrences = make_series(rooms["r301"], alice, weeks=5)
    for week in range(2):
        with clock.frozen_at(
            at(occurrences[week].starts_at.astimezone(clock.TOKYO).date(), "10:11")
        ):
            assert release_due(clock.now()) == 1
    series.refresh_from_db()
    assert series.consecutive_no_shows == 2
    assert series.no_show_warned_at is not None
    assert (
        AuditEntry.objects.filter(action="rooms.series_warned", target_id=str(series.pk)).count()
        == 1
    )
    assert UserEvent.objects.filter(user=alice, payload__op="series_warned").count() == 1
    assert [m for m in OutboundMail.objects.all() if "定期予約の未使用" in m.subject]
    assert series.status == BookingSeries.Status.ACTIVE

    with clock.frozen_at(at(25, "10:11")):
        assert release_due(clock.now()) == 1
    series.refresh_from_db()
    assert series.status == BookingSeries.Status.CANCELLED
    assert [b.status for b in Booking.objects.filter(series=series).order_by("starts_at")] == [
        Booking.Status.RELEASED,
        Booking.Status.RELEASED,
        Booking.Status.RELEASED,
        Booking.Status.CANCELLED,
        Booking.Status.CANCELLED,
    ]
    entry = AuditEntry.objects.get(action="rooms.series_cancelled", target_id=str(series.pk))
    assert len(entry.details["dates"]) == 2
    assert entry.details["reason"] == "3回続けて使われなかったため（自動解放）"
    assert entry.actor_kind == "system"
    assert UserEvent.objects.filter(user=alice, payload__op="series_cancelled").count() == 1
    assert [
        m
        for m in OutboundMail.objects.all()
        if "定期予約が取り消されました" in m.body and "3回続けて" in m.body
    ]
    # Warned once only.
    assert AuditEntry.objects.filter(action="rooms.series_warned").count() == 1
    notices = Message.objects.filter(conversation__direct_key=f"notices:{alice.pk}")
    assert [n.text.split("\n")[0] for n in notices.order_by("seq")] == [
        "開始から10分たってもチェックインがなかったため、予約を解放しました。"
        "会議室を使う場合は、空いていれば改めて予約してください。",
        "開始から10分たってもチェックインがなかったため、予約を解放しました。"
        "会議室を使う場合は、空いていれば改めて予約してください。",
        "この定期予約は2回続けて使われませんでした。"
        "あと1回使われないと（3回連続）、定期予約全体が取り消されます。",
        "開始から10分たってもチェックインがなかったため、予約を解放しました。"
        "会議室を使う場合は、空いていれば改めて予約してください。",
        "3回続けて使われなかったため、この定期予約を取り消しました。",
    ]


def test_a_check_in_resets_the_series_count(
    frozen_now: dt.datetime, rooms: dict[str, Room], alice: User, settings: SettingsWrapper
) -> None:
    settings.ROOMS_SERIES_NO_SHOW_LIMIT = 3
    series, occurrences = make_series(rooms["r301"], alice, weeks=4)
    for day in (11, 18):
        with clock.frozen_at(at(day, "10:11")):
            release_due(clock.now())
    with clock.frozen_at(at(25, "10:05")):
        do_check_in(occurrences[2], acting_user=alice, method=Booking.CheckInMethod.QR)
    series.refresh_from_db()
    assert (series.consecutive_no_shows, series.no_show_warned_at) == (0, None)
    with clock.frozen_at(at(dt.date(2025, 7, 2), "10:11")):
        release_due(clock.now())
    series.refresh_from_db()
    assert series.consecutive_no_shows == 1
    assert series.status == BookingSeries.Status.ACTIVE


def race(booking: Booking, user: User) -> tuple[bool, bool]:
    """Check in to ``booking`` and release it at once, from two threads (each with its own
    database connection) 11 minutes after its start; (checked in, released)."""
    results: dict[str, bool] = {}
    barrier = threading.Barrier(2)

    def check_in() -> None:
        barrier.wait()
        try:
            results["in"] = do_check_in(
                booking, acting_user=user, method=Booking.CheckInMethod.PANEL
            )
        except BookingRefused:
            results["in"] = False
        finally:
            connections.close_all()

    def release() -> None:
        barrier.wait()
        try:
            results["out"] = do_release_no_show(booking.pk)
        finally:
            connections.close_all()

    with clock.frozen_at(booking.starts_at + dt.timedelta(minutes=11)):
        threads = [threading.Thread(target=check_in), threading.Thread(target=release)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    return results["in"], results["out"]


@pytest.mark.django_db(transaction=True)
def test_a_check_in_racing_the_release_has_one_winner(
    frozen_now: dt.datetime, rooms: dict[str, Room], alice: User
) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("the race runs on PostgreSQL (SQLite serialises every writer)")
    bookings = [
        book(room, alice, at(11, "10:00"), at(11, "11:00"))
        for room in rooms.values()
        if not room.requires_approval
    ]
    bookings += [book(rooms["r301"], alice, at(11, "13:00"), at(11, "14:00"))]
    for booking in bookings:
        checked_in, released = race(booking, alice)
        assert checked_in != released
        booking.refresh_from_db()
        if checked_in:
            assert booking.status == Booking.Status.CONFIRMED
            assert booking.checked_in_at is not None
        else:
            assert booking.status == Booking.Status.RELEASED
            assert booking.checked_in_at is None
    audited = AuditEntry.objects.filter(action__in=["rooms.checked_in", "rooms.released"])
    assert audited.count() == len(bookings)


def test_it_keeps_the_bookings_of_a_room_that_opted_out_after_they_were_made(
    frozen_now: dt.datetime, rooms: dict[str, Room], alice: User, alice_mail: str
) -> None:
    room = rooms["r301"]
    booking = book(room, alice, at(11, "10:00"), at(11, "11:00"))
    assert booking.release_due_at == at(11, "10:10")
    room.auto_release = False
    room.save(update_fields=["auto_release"])

    with clock.frozen_at(at(11, "10:30")):
        assert due_for_release(clock.now()) == []
        assert release_due(clock.now()) == 0
        assert do_release_no_show(booking.pk) is False

    booking.refresh_from_db()
    assert booking.status == Booking.Status.CONFIRMED
    assert not AuditEntry.objects.filter(action="rooms.released").exists()
    assert not released_mail(alice_mail)
    # Opted in again, the deadline that passed meanwhile is as due as any.
    room.auto_release = True
    room.save(update_fields=["auto_release"])
    with clock.frozen_at(at(11, "10:31")):
        assert release_due(clock.now()) == 1
    booking.refresh_from_db()
    assert booking.status == Booking.Status.RELEASED
