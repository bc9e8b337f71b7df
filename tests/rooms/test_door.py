"""At the door: the check-in window, start now, extend, end early."""

from __future__ import annotations

import datetime as dt

import pytest

from yakuba.audit.models import AuditEntry
from yakuba.directory.models import User
from yakuba.lib import clock
from yakuba.realtime.models import UserEvent
from yakuba.rooms.actions.booking import BookingConflict, BookingRefused
from yakuba.rooms.actions.door import (
    do_check_in,
    do_end_early,
    do_extend_booking,
    do_start_now,
)
from yakuba.rooms.models import Booking, Room
from yakuba.rooms.occupancy import BOOKED, FREE, IN_USE, room_states

from .conftest import at, book


def test_it_opens_check_in_fifteen_minutes_before_the_start(
    frozen_now: dt.datetime, rooms: dict[str, Room], alice: User
) -> None:
    booking = book(rooms["r301"], alice, at(11, "10:00"), at(11, "11:00"))
    with clock.frozen_at(at(11, "09:44")), pytest.raises(BookingRefused) as refused:
        do_check_in(booking, acting_user=alice, method=Booking.CheckInMethod.WEB)
    assert "15分前" in refused.value.message
    booking.refresh_from_db()
    assert booking.checked_in_at is None
    with clock.frozen_at(at(11, "09:45")):
        assert do_check_in(booking, acting_user=alice, method=Booking.CheckInMethod.WEB)
        # A second check-in changes nothing.
        assert not do_check_in(booking, acting_user=alice, method=Booking.CheckInMethod.WEB)
    booking.refresh_from_db()
    assert booking.checked_in_at == at(11, "09:45")
    assert booking.checked_in_by == alice
    assert (
        AuditEntry.objects.filter(action="rooms.checked_in", target_id=str(booking.pk)).count() == 1
    )
    assert UserEvent.objects.filter(user=alice, payload__op="checked_in").exists()


def test_it_refuses_check_in_after_the_booking_ended(
    frozen_now: dt.datetime, rooms: dict[str, Room], alice: User
) -> None:
    booking = book(rooms["r301"], alice, at(11, "10:00"), at(11, "11:00"))
    with clock.frozen_at(at(11, "11:00")), pytest.raises(BookingRefused) as refused:
        do_check_in(booking, acting_user=alice, method=Booking.CheckInMethod.WEB)
    assert "終わっています" in refused.value.message


def test_it_starts_a_free_room_now_checked_in(
    frozen_now: dt.datetime, rooms: dict[str, Room], alice: User
) -> None:
    with clock.frozen_at(at(11, "09:07") + dt.timedelta(seconds=42)):
        booking = do_start_now(rooms["r301"], minutes=30, acting_user=alice)
        [state] = room_states([rooms["r301"]])
    assert booking.starts_at == at(11, "09:07")
    assert booking.ends_at == at(11, "09:37")
    assert booking.check_in_method == Booking.CheckInMethod.START_NOW
    assert booking.checked_in_at is not None
    assert booking.release_due_at is None
    assert state.state == IN_USE
    assert state.minutes_until_free == 30
    assert AuditEntry.objects.filter(
        action="rooms.booking_created", target_id=str(booking.pk)
    ).exists()
    assert AuditEntry.objects.filter(action="rooms.checked_in", target_id=str(booking.pk)).exists()


def test_it_refuses_to_start_now_into_the_next_booking(
    frozen_now: dt.datetime, rooms: dict[str, Room], alice: User, bob: User
) -> None:
    book(
        rooms["r301"], bob, at(11, "09:30"), at(11, "10:00"), title="人事の内緒話", is_private=True
    )
    with pytest.raises(BookingConflict) as refused:
        do_start_now(rooms["r301"], minutes=60, acting_user=alice)
    assert "09:30〜10:00" in refused.value.message
    assert "内緒" not in refused.value.message
    assert do_start_now(rooms["r301"], minutes=15, acting_user=alice).ends_at == at(11, "09:15")


def test_it_extends_the_booking_in_use_until_the_next_one(
    frozen_now: dt.datetime, rooms: dict[str, Room], alice: User, bob: User
) -> None:
    booking = book(rooms["r301"], alice, at(11, "10:00"), at(11, "11:00"))
    book(
        rooms["r301"], bob, at(11, "11:30"), at(11, "12:00"), title="人事の内緒話", is_private=True
    )
    with clock.frozen_at(at(11, "10:05")):
        with pytest.raises(BookingRefused):  # not checked in yet: not in use
            do_extend_booking(booking, minutes=15, acting_user=alice)
        do_check_in(booking, acting_user=alice, method=Booking.CheckInMethod.PANEL)
        booking.refresh_from_db()
        extended = do_extend_booking(booking, minutes=30, acting_user=alice)
        assert extended.ends_at == at(11, "11:30")
        with pytest.raises(BookingConflict) as refused:
            do_extend_booking(extended, minutes=15, acting_user=alice)
    assert "11:30〜12:00" in refused.value.message
    assert "内緒" not in refused.value.message
    booking.refresh_from_db()
    assert booking.ends_at == at(11, "11:30")
    assert booking.block_end == at(11, "11:30")
    entry = AuditEntry.objects.get(action="rooms.extended", target_id=str(booking.pk))
    assert entry.details["minutes"] == 30
    assert UserEvent.objects.filter(user=alice, payload__op="extended").exists()


def test_it_ends_early_and_frees_the_room_at_once(
    frozen_now: dt.datetime, rooms: dict[str, Room], alice: User, bob: User
) -> None:
    room = rooms["r302"]  # a 10-minute buffer, which ending early gives up too
    booking = book(room, alice, at(11, "10:00"), at(11, "12:00"))
    with clock.frozen_at(at(11, "10:20") + dt.timedelta(seconds=30)):
        do_check_in(booking, acting_user=alice, method=Booking.CheckInMethod.QR)
        booking.refresh_from_db()
        ended = do_end_early(booking, acting_user=alice)
        [state] = room_states([room])
        assert state.state == FREE
        # Someone else starts the room in the same minute.
        again = do_start_now(room, minutes=30, acting_user=bob)
        with pytest.raises(BookingRefused):
            do_end_early(ended, acting_user=alice)
    assert ended.ends_at == ended.block_end == at(11, "10:20")
    assert ended.ended_early_at is not None
    assert again.starts_at == at(11, "10:20")
    assert AuditEntry.objects.filter(action="rooms.ended_early", target_id=str(booking.pk)).exists()
    assert UserEvent.objects.filter(user=alice, payload__op="ended").exists()


def test_it_shows_a_booking_awaiting_check_in_as_booked(
    frozen_now: dt.datetime, rooms: dict[str, Room], alice: User
) -> None:
    book(rooms["r301"], alice, at(11, "10:00"), at(11, "11:00"))
    with clock.frozen_at(at(11, "10:03")):
        [state, other] = room_states([rooms["r301"], rooms["r302"]])
    assert (state.state, other.state) == (BOOKED, FREE)
    assert state.current is not None
    assert state.current.title == "打合せ"
