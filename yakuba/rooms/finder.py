"""Read-side queries of the booking pages: the room finder (free rooms for a time, a size
and equipment) and "find a time" (free slots for a set of attendees, and a room).

Both answer "would placing this booking conflict?" with the same rule as
``actions.booking`` (``block_of`` and ``find_conflicts``): a candidate holds its time plus
its room's buffer, and conflicts with any live booking whose block overlaps that.  They
read in a few queries for the whole span instead of one per room or per slot, so the
overlap test is repeated here in Python; the action still decides under its lock, and a
room the finder showed as free may be gone by the time someone books it.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from django.db.models import Q, QuerySet

from yakuba.directory.models import User
from yakuba.lib import clock
from yakuba.rooms import access
from yakuba.rooms.actions.booking import BookingRefused, block_of, check_booking_rules
from yakuba.rooms.models import EQUIPMENT_FIELDS, Booking, Room

# "Find a time" looks at slots starting every STEP and answers at most LIMIT of them.
STEP = dt.timedelta(minutes=15)
LIMIT = 10
# The longest range of days "find a time" searches (keeps the loop and the page small).
MAX_DAYS = 31
# Hours used when "find a time" is asked without a room: the default room hours.
DEFAULT_OPENS = dt.time(8, 30)
DEFAULT_CLOSES = dt.time(20, 0)


Span = tuple[dt.datetime, dt.datetime]


def _overlaps(start: dt.datetime, end: dt.datetime, spans: Iterable[Span]) -> bool:
    return any(other_start < end and other_end > start for other_start, other_end in spans)


def bookable_rooms(user: User, rooms: QuerySet[Room]) -> list[Room]:
    """The rooms of ``rooms`` that ``user`` may book (``access.bookable_rooms``)."""
    return list(access.bookable_rooms(user, rooms))


def _room_blocks(
    room_ids: Sequence[int], start: dt.datetime, end: dt.datetime
) -> dict[int, list[Span]]:
    """The blocks of live bookings of ``room_ids`` that touch ``[start, end)``."""
    blocks: dict[int, list[Span]] = defaultdict(list)
    rows = Booking.objects.filter(
        room_id__in=list(room_ids),
        status__in=Booking.LIVE,
        block_start__lt=end,
        block_end__gt=start,
    ).values_list("room_id", "block_start", "block_end")
    for room_id, block_start, block_end in rows:
        blocks[room_id].append((block_start, block_end))
    return blocks


def free_rooms(
    user: User | None,
    *,
    starts_at: dt.datetime,
    ends_at: dt.datetime,
    people: int = 1,
    equipment: Sequence[str] = (),
    accessible: bool = False,
    building: str = "",
) -> list[Room]:
    """Rooms ``user`` may book (``access.bookable_rooms``) that are big enough,
    equipped, in ``building`` (a code) when given, where a booking of
    ``[starts_at, ends_at)`` keeps the room's rules (``check_booking_rules``: in service,
    not past, within the advance period and the room's hours) and is free with its
    buffer; smallest first.  ``user`` None offers every room (a bot or device, which books
    for a staff member whose rights are checked when it books).  A fixed number of
    queries whatever the number of rooms (the user's rights, the rooms, the bookings)."""
    unknown = set(equipment) - set(EQUIPMENT_FIELDS)
    if unknown:
        raise ValueError(f"unknown equipment: {sorted(unknown)}")
    rooms = (
        Room.objects.filter(is_active=True, out_of_service=False, capacity__gte=max(people, 1))
        .filter(**dict.fromkeys(equipment, True))
        .select_related("floor__building")
        .order_by("capacity", "floor__building__sort_order", "floor__level", "code")
    )
    if accessible:
        rooms = rooms.filter(wheelchair_accessible=True)
    if building:
        rooms = rooms.filter(floor__building__code=building)
    if user is not None:
        rooms = access.bookable_rooms(user, rooms)
    candidates = [room for room in rooms if _keeps_rules(room, starts_at, ends_at)]
    if not candidates:
        return []
    longest_buffer = dt.timedelta(minutes=max(room.buffer_minutes for room in candidates))
    blocks = _room_blocks([room.pk for room in candidates], starts_at, ends_at + longest_buffer)
    return [
        room
        for room in candidates
        if not _overlaps(*block_of(room, starts_at, ends_at), blocks.get(room.pk, ()))
    ]


def _keeps_rules(room: Room, starts_at: dt.datetime, ends_at: dt.datetime) -> bool:
    try:
        check_booking_rules(room, starts_at, ends_at)
    except BookingRefused:
        return False
    return True


@dataclass(frozen=True)
class Slot:
    starts_at: dt.datetime
    ends_at: dt.datetime


def _busy_spans(user_ids: Sequence[int], start: dt.datetime, end: dt.datetime) -> list[Span]:
    """The times of live bookings in ``[start, end)`` that any of ``user_ids`` organises
    or attends (their own time, not the room's buffer: the people are free again)."""
    if not user_ids:
        return []
    rows = (
        Booking.objects.filter(status__in=Booking.LIVE, starts_at__lt=end, ends_at__gt=start)
        .filter(Q(organiser_id__in=user_ids) | Q(attendees__in=user_ids))
        .values_list("starts_at", "ends_at")
        .distinct()
    )
    return list(rows)


def find_times(
    *,
    attendees: Sequence[User],
    first_day: dt.date,
    last_day: dt.date,
    duration: dt.timedelta,
    room: Room | None = None,
    limit: int = LIMIT,
) -> list[Slot]:
    """The first ``limit`` slots of ``duration``, starting on the quarter hour from the
    room's opening (or 08:30 without a room) and not before now, between ``first_day``
    and ``last_day`` (Tokyo), in which no attendee organises or attends a live booking
    and, with a room, the room (its buffer included) is free.  Two queries.  The caller
    checks that ``room`` may be booked."""
    if duration <= dt.timedelta(0):
        raise ValueError("duration must be positive")
    last_day = min(last_day, first_day + dt.timedelta(days=MAX_DAYS - 1))
    opens = room.opens_at if room is not None else DEFAULT_OPENS
    closes = room.closes_at if room is not None else DEFAULT_CLOSES
    range_start = dt.datetime.combine(first_day, dt.time(0), tzinfo=clock.TOKYO)
    range_end = dt.datetime.combine(last_day + dt.timedelta(days=1), dt.time(0), tzinfo=clock.TOKYO)
    busy = _busy_spans(sorted({user.pk for user in attendees}), range_start, range_end)
    held: list[Span] = []
    if room is not None:
        buffer = dt.timedelta(minutes=room.buffer_minutes)
        held = _room_blocks([room.pk], range_start, range_end + buffer).get(room.pk, [])
    now = clock.now()
    slots: list[Slot] = []
    day = first_day
    while day <= last_day and len(slots) < limit:
        start = dt.datetime.combine(day, opens, tzinfo=clock.TOKYO)
        day_end = dt.datetime.combine(day, closes, tzinfo=clock.TOKYO)
        while start + duration <= day_end and len(slots) < limit:
            end = start + duration
            if (
                start >= now
                and not _overlaps(start, end, busy)
                and not (room is not None and _overlaps(*block_of(room, start, end), held))
            ):
                slots.append(Slot(start, end))
            start += STEP
        day += dt.timedelta(days=1)
    return slots


# --- the signed-in person's bookings ---------------------------------------------------------


def my_upcoming_bookings(user: User, *, limit: int = 50) -> list[Booking]:
    """Bookings not yet over that ``user`` organises, booked for someone, or attends,
    soonest first (cancelled ones left out; released and rejected ones shown, so that
    people learn what happened).  One query."""
    mine = Booking.objects.filter(
        Q(organiser=user)
        | Q(booked_by=user)
        | Q(pk__in=Booking.attendees.through.objects.filter(user_id=user.pk).values("booking_id"))
    )
    return list(
        mine.filter(ends_at__gt=clock.now())
        .exclude(status=Booking.Status.CANCELLED)
        .select_related("room__floor__building", "organiser")
        .order_by("starts_at", "pk")[:limit]
    )


def pending_bookings(*, limit: int = 200) -> list[Booking]:
    """Holds awaiting a facility manager's decision, soonest first (ones already over
    are left out: nothing to decide any more).  One query.  The caller checks
    ``access_facility_management``."""
    return list(
        Booking.objects.filter(status=Booking.Status.PENDING, ends_at__gt=clock.now())
        .select_related("room__floor__building", "organiser", "booked_by")
        .order_by("starts_at", "pk")[:limit]
    )


def count_pending() -> int:
    return Booking.objects.filter(status=Booking.Status.PENDING, ends_at__gt=clock.now()).count()
