"""Live occupancy (利用状況) of rooms, for the floor board and the door panel.

Anyone on staff may watch a floor board, so nothing here carries more than a public
booking's title: it is the public view of ``access.shows_details`` (a private booking
shows as 「予約あり」).  ``room_states`` reads the
bookings of all the listed rooms for the rest of the day in one query.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from django.utils.translation import gettext as _

from yakuba.lib import clock
from yakuba.rooms.access import shows_details
from yakuba.rooms.models import Booking, Floor, Room

FREE = "free"
BOOKED = "booked"
IN_USE = "in_use"
RELEASED = "released"
OUT_OF_SERVICE = "out_of_service"


def state_label(state: str) -> str:
    """The text shown with the state's colour (colour is never the only signal)."""
    return {
        FREE: _("空き"),
        BOOKED: _("予約あり（チェックイン待ち）"),
        IN_USE: _("使用中"),
        RELEASED: _("解放済み（空き）"),
        OUT_OF_SERVICE: _("利用停止中"),
    }[state]


@dataclass(frozen=True)
class Slot:
    """A booking as the board shows it: its time, and its title only when public."""

    booking_id: int
    title: str
    starts_at: dt.datetime
    ends_at: dt.datetime
    checked_in: bool


@dataclass(frozen=True)
class RoomState:
    room: Room
    state: str
    current: Slot | None
    next: Slot | None
    # Minutes until the room is free (back-to-back bookings count as one), when held now.
    minutes_until_free: int | None

    @property
    def label(self) -> str:
        return state_label(self.state)

    @property
    def is_free(self) -> bool:
        return self.state in (FREE, RELEASED)


def _slot(booking: Booking) -> Slot:
    return Slot(
        booking_id=booking.pk,
        title=booking.title if shows_details(None, booking) else _("予約あり"),
        starts_at=booking.starts_at,
        ends_at=booking.ends_at,
        checked_in=booking.checked_in_at is not None,
    )


def _day_end(at: dt.datetime) -> dt.datetime:
    local_day = clock.local(at).date() + dt.timedelta(days=1)
    return dt.datetime.combine(local_day, dt.time(0), tzinfo=clock.TOKYO)


def room_states(rooms: Sequence[Room], at: dt.datetime | None = None) -> list[RoomState]:
    """The state of each room at ``at`` (now), in the order given.  One query for the
    bookings (live and released) of every room from ``at`` to the end of the local day."""
    at = at or clock.now()
    by_room: dict[int, list[Booking]] = defaultdict(list)
    rows = Booking.objects.filter(
        room_id__in=[room.pk for room in rooms],
        status__in=(*Booking.LIVE, Booking.Status.RELEASED),
        starts_at__lt=_day_end(at),
        ends_at__gt=at,
    ).order_by("starts_at", "pk")
    for booking in rows:
        by_room[booking.room_id].append(booking)
    return [_state_of(room, by_room.get(room.pk, []), at) for room in rooms]


def _state_of(room: Room, bookings: list[Booking], at: dt.datetime) -> RoomState:
    live = [b for b in bookings if b.is_live]
    current = next((b for b in live if b.starts_at <= at < b.ends_at), None)
    upcoming = next((b for b in live if b.starts_at > at), None)
    minutes: int | None = None
    if current is not None:
        free_at = current.ends_at
        for booking in live:  # back-to-back bookings keep the room held
            if booking.starts_at > at and booking.starts_at <= free_at:
                free_at = max(free_at, booking.ends_at)
        minutes = max(0, math.ceil((free_at - at).total_seconds() / 60))
    if not room.is_active or room.out_of_service:
        state = OUT_OF_SERVICE
    elif current is not None:
        state = IN_USE if current.checked_in_at is not None else BOOKED
    elif any(
        b.status == Booking.Status.RELEASED and b.starts_at <= at < b.ends_at for b in bookings
    ):
        state = RELEASED
    else:
        state = FREE
    return RoomState(
        room=room,
        state=state,
        current=_slot(current) if current is not None else None,
        next=_slot(upcoming) if upcoming is not None else None,
        minutes_until_free=minutes,
    )


def floors() -> list[Floor]:
    """Every floor with its building, in the board's order."""
    return list(Floor.objects.select_related("building"))


def floor_rooms(floor_id: int) -> tuple[Floor, list[Room]] | None:
    """A floor and its active rooms, or None for an unknown floor."""
    floor = Floor.objects.select_related("building").filter(pk=floor_id).first()
    if floor is None:
        return None
    return floor, list(Room.objects.filter(floor=floor, is_active=True).order_by("code"))
