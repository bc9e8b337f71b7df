"""The room finder and "find a time": what counts as free, buffers included."""

from __future__ import annotations

import datetime as dt
from typing import Any

from yakuba.directory.models import Department, User
from yakuba.rooms.finder import find_times, free_rooms
from yakuba.rooms.models import Room

from .conftest import at, book, restrict_to


def names(rooms: list[Room]) -> list[str]:
    return [room.name for room in rooms]


def test_it_lists_free_rooms_smallest_first(
    frozen_now: dt.datetime, rooms: dict[str, Room], alice: User
) -> None:
    found = free_rooms(alice, starts_at=at(12, "10:00"), ends_at=at(12, "11:00"))

    assert names(found) == ["会議室301", "会議室302", "特別会議室"]


def test_it_excludes_booked_out_of_service_too_small_and_unequipped_rooms(
    frozen_now: dt.datetime, rooms: dict[str, Room], alice: User, bob: User
) -> None:
    book(rooms["r301"], bob, at(12, "10:30"), at(12, "11:30"))
    rooms["special"].out_of_service = True
    rooms["special"].save(update_fields=["out_of_service"])
    span: dict[str, Any] = {"starts_at": at(12, "10:00"), "ends_at": at(12, "11:00")}

    assert names(free_rooms(alice, **span)) == ["会議室302"]
    assert names(free_rooms(alice, **span, people=21)) == []
    assert names(free_rooms(alice, **span, equipment=["has_display"])) == []
    assert names(
        free_rooms(
            alice, starts_at=at(12, "13:00"), ends_at=at(12, "14:00"), equipment=["has_display"]
        )
    ) == ["会議室301"]
    assert names(free_rooms(alice, **span, equipment=["has_projector", "has_web_meeting_kit"])) == [
        "会議室302"
    ]
    assert names(free_rooms(alice, **span, equipment=["has_whiteboard"])) == []


def test_it_keeps_cancelled_and_pending_apart(
    frozen_now: dt.datetime, rooms: dict[str, Room], alice: User, bob: User
) -> None:
    from yakuba.rooms.actions.booking import do_cancel_booking

    cancelled = book(rooms["r301"], bob, at(12, "10:00"), at(12, "11:00"))
    do_cancel_booking(cancelled, acting_user=bob)
    book(rooms["special"], bob, at(12, "10:00"), at(12, "11:00"))  # a pending hold

    found = free_rooms(alice, starts_at=at(12, "10:00"), ends_at=at(12, "11:00"))

    assert names(found) == ["会議室301", "会議室302"]


def test_it_respects_the_buffer_on_both_sides(
    frozen_now: dt.datetime, rooms: dict[str, Room], alice: User, bob: User
) -> None:
    # 会議室302 keeps 10 minutes free after each booking.
    book(rooms["r302"], bob, at(12, "10:00"), at(12, "11:00"))
    book(rooms["r302"], bob, at(12, "13:00"), at(12, "14:00"))

    def r302_free(start: str, end: str) -> bool:
        found = free_rooms(alice, starts_at=at(12, start), ends_at=at(12, end), people=10)
        return "会議室302" in names(found)

    assert not r302_free("11:05", "12:00")  # inside the buffer after 11:00
    assert r302_free("11:10", "12:00")
    assert not r302_free("12:00", "12:55")  # its own buffer would run into 13:00
    assert r302_free("11:10", "12:50")


def test_it_leaves_out_rooms_outside_their_hours_and_inaccessible_ones(
    frozen_now: dt.datetime, rooms: dict[str, Room], alice: User
) -> None:
    rooms["r302"].wheelchair_accessible = True
    rooms["r302"].save(update_fields=["wheelchair_accessible"])

    late = free_rooms(alice, starts_at=at(12, "19:30"), ends_at=at(12, "20:30"))
    accessible = free_rooms(
        alice, starts_at=at(12, "10:00"), ends_at=at(12, "11:00"), accessible=True
    )

    assert names(late) == []
    assert names(accessible) == ["会議室302"]


def test_it_shows_a_department_only_room_only_to_that_department(
    frozen_now: dt.datetime,
    rooms: dict[str, Room],
    ward: dict[str, Department],
    alice: User,
    charlie: User,
    dave: User,
) -> None:
    room = rooms["r301"]
    restrict_to(room, ward["somu_bu"])
    span: dict[str, Any] = {"starts_at": at(12, "10:00"), "ends_at": at(12, "11:00")}

    assert "会議室301" in names(free_rooms(alice, **span))
    assert "会議室301" not in names(free_rooms(charlie, **span))
    assert "会議室301" in names(free_rooms(dave, **span))  # facility managers book any room


def test_find_a_time_skips_the_attendees_busy_times(
    frozen_now: dt.datetime, rooms: dict[str, Room], alice: User, bob: User, charlie: User
) -> None:
    # Bob organises 10:00–11:00 in one room, Charlie attends 11:30–12:00 in another:
    # from 09:00 (now) the free hours for both start at 09:00, then at 12:00 and every
    # quarter hour after.
    book(rooms["r302"], bob, at(11, "10:00"), at(11, "11:00"))
    book(rooms["special"], alice, at(11, "11:30"), at(11, "12:00"), attendees=[charlie])

    slots = find_times(
        attendees=[bob, charlie],
        first_day=dt.date(2025, 6, 11),
        last_day=dt.date(2025, 6, 11),
        duration=dt.timedelta(hours=1),
    )

    assert [slot.starts_at for slot in slots] == [
        at(11, "09:00"),
        *(at(11, "12:00") + dt.timedelta(minutes=15 * step) for step in range(9)),
    ]
    # Alice is free all morning: her only booking (as organiser) is at 11:30.
    alone = find_times(
        attendees=[alice],
        first_day=dt.date(2025, 6, 11),
        last_day=dt.date(2025, 6, 11),
        duration=dt.timedelta(hours=2),
        limit=20,
    )
    assert [slot.starts_at for slot in alone][:2] == [at(11, "09:00"), at(11, "09:15")]
    assert at(11, "10:00") not in [slot.starts_at for slot in alone]


def test_find_a_time_checks_the_room_and_its_buffer(
    frozen_now: dt.datetime, rooms: dict[str, Room], alice: User, bob: User
) -> None:
    # Held until 10:10; a slot at 08:30 would hold until 09:10 and so clash as well.
    book(rooms["r302"], bob, at(12, "09:00"), at(12, "10:00"))

    slots = find_times(
        attendees=[alice],
        room=rooms["r302"],
        first_day=dt.date(2025, 6, 12),
        last_day=dt.date(2025, 6, 13),
        duration=dt.timedelta(minutes=30),
        limit=3,
    )

    assert [slot.starts_at for slot in slots] == [at(12, "10:15"), at(12, "10:30"), at(12, "10:45")]
    assert slots[0].ends_at == at(12, "10:45")


def test_find_a_time_moves_to_the_next_day_and_keeps_to_the_rooms_hours(
    frozen_now: dt.datetime, rooms: dict[str, Room], alice: User
) -> None:
    rooms["r301"].closes_at = dt.time(17, 0)
    rooms["r301"].save(update_fields=["closes_at"])
    book(rooms["r301"], alice, at(11, "09:15"), at(11, "17:00"))

    slots = find_times(
        attendees=[alice],
        room=rooms["r301"],
        first_day=dt.date(2025, 6, 11),
        last_day=dt.date(2025, 6, 12),
        duration=dt.timedelta(hours=8, minutes=30),
    )

    assert [slot.starts_at for slot in slots] == [at(12, "08:30")]
