"""The core booking action: place, refuse a conflict, respect the buffer."""

from __future__ import annotations

import datetime as dt

import pytest

from yakuba.audit.models import AuditEntry
from yakuba.directory.models import User
from yakuba.mail.models import OutboundMail
from yakuba.realtime.models import UserEvent
from yakuba.rooms.actions.booking import BookingConflict, BookingRefused, check_change_booking
from yakuba.rooms.models import Booking, Room

from .conftest import at, book


def test_it_books_and_refuses_an_overlap_naming_only_the_time(
    frozen_now: dt.datetime, rooms: dict[str, Room], alice: User, charlie: User
) -> None:
    first = book(
        rooms["r301"],
        alice,
        at(12, "10:00"),
        at(12, "11:00"),
        title="人事の内緒話",
        is_private=True,
    )
    assert first.status == Booking.Status.CONFIRMED
    assert AuditEntry.objects.filter(
        action="rooms.booking_created", target_id=str(first.pk)
    ).exists()
    with pytest.raises(BookingConflict) as refused:
        book(rooms["r301"], charlie, at(12, "10:30"), at(12, "11:30"))
    assert "10:00〜11:00" in refused.value.message
    assert "内緒" not in refused.value.message
    assert Booking.objects.filter(room=rooms["r301"]).count() == 1


def test_it_keeps_the_buffer_after_a_booking(
    frozen_now: dt.datetime, rooms: dict[str, Room], alice: User, bob: User
) -> None:
    book(rooms["r302"], alice, at(12, "10:00"), at(12, "11:00"))
    with pytest.raises(BookingConflict):
        book(rooms["r302"], bob, at(12, "11:05"), at(12, "12:00"))
    assert book(rooms["r302"], bob, at(12, "11:10"), at(12, "12:00")).pk


def test_it_refuses_outside_the_rooms_hours(
    frozen_now: dt.datetime, rooms: dict[str, Room], alice: User
) -> None:
    with pytest.raises(BookingRefused) as refused:
        book(rooms["r301"], alice, at(12, "19:30"), at(12, "21:00"))
    assert "08:30〜20:00" in refused.value.message


def test_an_approval_room_holds_the_time_while_pending(
    frozen_now: dt.datetime, rooms: dict[str, Room], alice: User, bob: User
) -> None:
    hold = book(rooms["special"], alice, at(13, "13:00"), at(13, "15:00"))
    assert hold.status == Booking.Status.PENDING
    with pytest.raises(BookingConflict):
        book(rooms["special"], bob, at(13, "14:00"), at(13, "16:00"))


def test_it_tells_an_attendee_taken_off_a_booking(
    frozen_now: dt.datetime, rooms: dict[str, Room], alice: User, bob: User, charlie: User
) -> None:
    bob.email, charlie.email = "bob@example.jp", "charlie@example.jp"
    User.objects.filter(pk=bob.pk).update(email=bob.email)
    User.objects.filter(pk=charlie.pk).update(email=charlie.email)
    booking = book(rooms["r301"], alice, at(12, "10:00"), at(12, "11:00"), attendees=[bob, charlie])
    check_change_booking(booking, acting_user=alice, attendees=[charlie])
    assert list(booking.attendees.values_list("username", flat=True)) == ["charlie"]
    # Bob hears of it live and by mail, with a CANCEL for his calendar.
    assert UserEvent.objects.filter(user=bob, payload__op="changed").exists()
    withdrawn = [m for m in OutboundMail.objects.all() if m.to == ["bob@example.jp"]]
    assert len(withdrawn) == 1
    assert "METHOD:CANCEL" in withdrawn[0].attachments[0]["content"]


def test_it_books_until_midnight_in_a_room_open_until_24_00(
    frozen_now: dt.datetime, rooms: dict[str, Room], alice: User
) -> None:
    room = rooms["r301"]
    room.closes_at = dt.time(23, 59)  # what the CSV import makes of 「24:00」
    room.save(update_fields=["closes_at"])
    booking = book(room, alice, at(12, "22:00"), at(13, "00:00"))
    assert booking.status == Booking.Status.CONFIRMED
