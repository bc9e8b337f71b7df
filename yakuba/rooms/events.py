"""What the rooms app sends.  Occupancy goes to the floor's topic (watched by floor
boards; no titles, since anyone on staff may watch); booking changes go to the streams
of the people in the booking."""

from __future__ import annotations

from collections.abc import Iterable

from yakuba.realtime.send import send_event_on_commit
from yakuba.realtime.topics import broadcast_on_commit, register_topic
from yakuba.rooms.models import Booking, Room


def floor_topic(floor_id: int) -> str:
    return f"rooms.floor.{floor_id}"


def notify_occupancy_changed(room: Room) -> None:
    """Floor boards showing ``room`` refetch it after commit."""
    broadcast_on_commit(
        floor_topic(room.floor_id), {"type": "rooms", "op": "occupancy", "room_id": room.pk}
    )


def notify_booking_changed(
    booking: Booking,
    op: str,
    extra_user_ids: tuple[int, ...] = (),
    *,
    attendee_ids: Iterable[int] | None = None,
) -> None:
    """Tell the booking's people (``op``: created, changed, cancelled, approved, rejected,
    checked_in, extended, ended, released) and refresh the floor boards.  A caller that
    has the attendees at hand passes ``attendee_ids`` and saves a query."""
    people = {booking.organiser_id, booking.booked_by_id, *extra_user_ids}
    if attendee_ids is None:
        attendee_ids = booking.attendees.values_list("pk", flat=True)
    people.update(attendee_ids)
    send_event_on_commit(
        {"type": "rooms", "op": op, "booking_id": booking.pk, "room_id": booking.room_id},
        people,
    )
    notify_occupancy_changed(booking.room)


def _may_watch(user_id: int, topic: str) -> bool:
    from yakuba.directory.models import User
    from yakuba.rooms.access import is_staff_member

    return is_staff_member(User.objects.filter(pk=user_id).first())


register_topic("rooms", _may_watch)
