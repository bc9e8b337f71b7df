"""Every write of the rooms app.  ``check_*`` validates and then calls ``do_*``;
``do_*`` trusts its caller.  Each action writes its audit entry in its transaction and
sends events after commit.

Locking (the heart of "never a double booking"): every action that places or moves a
booking first locks the rows of the rooms involved (``lock_rooms``, ascending id), then
reads the room's live bookings, then writes.  On PostgreSQL that serialises the bookings
of one room while other rooms book in parallel, and the exclusion constraint of migration
0002 is the backstop; a serialisation failure or deadlock is retried
(``with_booking_retries``).  On SQLite every transaction is BEGIN IMMEDIATE and so holds
the database's one write lock from its first statement.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from django.conf import settings
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import F

from yakuba.audit.models import AuditAction
from yakuba.audit.record import Actor, record
from yakuba.directory.models import User
from yakuba.lib import clock
from yakuba.rooms import events, notifications
from yakuba.rooms.models import Booking, Room

log = logging.getLogger(__name__)
T = TypeVar("T")
ActingUser = User | Actor

# Attempts of one booking transaction before a lost race is reported as a conflict.
MAX_ATTEMPTS = 5


class BookingError(Exception):
    """A booking request that cannot be met.  ``message`` is Japanese and says what to
    do; ``message_en`` is its English; ``code`` is stable for the API."""

    code = "invalid"

    def __init__(self, message: str, message_en: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.message_en = message_en
        self.details = details


class BookingRefused(BookingError):
    """Outside the rules: hours, advance period, permission, a room out of service."""

    code = "refused"


@dataclass(frozen=True)
class Conflict:
    """A time the room is already held.  Never carries a title: the other booking may
    be private, and its existence is all the requester may learn."""

    starts_at: dt.datetime
    ends_at: dt.datetime

    def label(self) -> str:
        start, end = clock.local(self.starts_at), clock.local(self.ends_at)
        return f"{start:%Y-%m-%d %H:%M}〜{end:%H:%M}"


class BookingConflict(BookingError):
    code = "conflict"

    def __init__(self, conflicts: Sequence[Conflict]) -> None:
        times = "、".join(c.label() for c in conflicts[:5])
        more = f" ほか{len(conflicts) - 5}件" if len(conflicts) > 5 else ""
        super().__init__(
            f"この時間帯は既に予約されています（{times}{more}）。別の時間か会議室を選んでください。",
            f"The room is already booked at {times}{more}. Choose another time or room.",
            conflicts=[
                {"starts_at": c.starts_at.isoformat(), "ends_at": c.ends_at.isoformat()}
                for c in conflicts
            ],
        )
        self.conflicts = list(conflicts)


@dataclass
class BookingRequest:
    """What a person asks for.  Times are aware datetimes."""

    room: Room
    starts_at: dt.datetime
    ends_at: dt.datetime
    title: str
    organiser: User
    attendees: Sequence[User] = ()
    is_private: bool = False
    note: str = ""
    wants_web_meeting: bool = False
    # Filled for the occurrences of a series.
    series_id: int | None = None
    occurrence_date: dt.date | None = None
    extra: dict[str, Any] = field(default_factory=dict)


# --- locking and retries ----------------------------------------------------------------


def lock_rooms(room_ids: Iterable[int]) -> None:
    """Lock the given rooms' rows until the transaction ends (ascending id, so two
    bookings never deadlock on each other).  On SQLite the transaction already holds the
    write lock.  Must run inside ``transaction.atomic()``."""
    if connection.vendor == "sqlite":
        return
    ids = sorted(set(room_ids))
    list(Room.objects.select_for_update().filter(pk__in=ids).order_by("pk").values_list("pk"))


def _is_retryable(exc: BaseException) -> bool:
    import psycopg.errors as pg

    cause = exc.__cause__
    return isinstance(cause, pg.SerializationFailure | pg.DeadlockDetected | pg.LockNotAvailable)


def _is_exclusion_violation(exc: BaseException) -> bool:
    if connection.vendor != "postgresql":
        return False
    import psycopg.errors as pg

    return isinstance(exc.__cause__, pg.ExclusionViolation)


def with_booking_retries(
    room: Room, starts_at: dt.datetime, ends_at: dt.datetime, attempt: Callable[[], T]
) -> T:
    """Run ``attempt`` (which opens its own transaction) until it commits.  A serialisation
    failure or deadlock is retried with a short backoff; the exclusion constraint firing
    (a racer that slipped past the check) becomes a ``BookingConflict`` naming what now
    holds the time."""
    for number in range(1, MAX_ATTEMPTS + 1):
        try:
            return attempt()
        except IntegrityError as exc:
            if _is_exclusion_violation(exc):
                raise BookingConflict(
                    find_conflicts(room, *block_of(room, starts_at, ends_at))
                    or [Conflict(starts_at, ends_at)]
                ) from exc
            raise
        except DatabaseError as exc:
            if connection.vendor == "postgresql" and _is_retryable(exc) and number < MAX_ATTEMPTS:
                time.sleep(0.01 * 2**number)
                continue
            raise
    raise AssertionError("unreachable")


# --- rules -------------------------------------------------------------------------------


def block_of(
    room: Room, starts_at: dt.datetime, ends_at: dt.datetime
) -> tuple[dt.datetime, dt.datetime]:
    """The span a booking holds: its time plus the room's buffer after it."""
    return starts_at, ends_at + dt.timedelta(minutes=room.buffer_minutes)


def find_conflicts(
    room: Room, block_start: dt.datetime, block_end: dt.datetime, *, exclude: Iterable[int] = ()
) -> list[Conflict]:
    """Live bookings whose blocks overlap ``[block_start, block_end)``."""
    rows = (
        Booking.objects.filter(
            room=room, status__in=Booking.LIVE, block_start__lt=block_end, block_end__gt=block_start
        )
        .exclude(pk__in=list(exclude))
        .order_by("starts_at")
        .values_list("starts_at", "ends_at")
    )
    return [Conflict(start, end) for start, end in rows]


def release_due_at(
    room: Room, starts_at: dt.datetime, ends_at: dt.datetime, booked_at: dt.datetime
) -> dt.datetime | None:
    """When a booking nobody checks in to is released, or None when it never is: the
    room opted out, the booking is longer than ``ROOMS_RELEASE_MAX_HOURS``, or it was made
    less than ``ROOMS_RELEASE_MIN_LEAD_MINUTES`` before its start (people booking on the
    spot are on their way)."""
    if not room.auto_release:
        return None
    if ends_at - starts_at > dt.timedelta(hours=settings.ROOMS_RELEASE_MAX_HOURS):
        return None
    if starts_at - booked_at < dt.timedelta(minutes=settings.ROOMS_RELEASE_MIN_LEAD_MINUTES):
        return None
    return starts_at + dt.timedelta(minutes=settings.ROOMS_RELEASE_GRACE_MINUTES)


def check_booking_rules(
    room: Room, starts_at: dt.datetime, ends_at: dt.datetime, *, now: dt.datetime | None = None
) -> None:
    """Raise ``BookingRefused`` unless the time is a bookable span of ``room``: in the
    future (or running now), within the room's hours on one day, within the advance
    period, and the room in service."""
    now = now or clock.now()
    if starts_at.tzinfo is None or ends_at.tzinfo is None:
        raise ValueError("booking times must be timezone-aware")
    if ends_at <= starts_at:
        raise BookingRefused(
            "終了時刻は開始時刻より後にしてください。", "The end must be after the start."
        )
    if ends_at <= now:
        raise BookingRefused("過去の時間は予約できません。", "A past time cannot be booked.")
    if not room.is_active or room.out_of_service:
        raise BookingRefused("この会議室は現在利用停止中です。", "This room is out of service.")
    horizon = clock.local(now).date() + dt.timedelta(days=settings.ROOMS_MAX_ADVANCE_DAYS)
    start_local, end_local = clock.local(starts_at), clock.local(ends_at)
    if start_local.date() > horizon:
        raise BookingRefused(
            f"予約できるのは{settings.ROOMS_MAX_ADVANCE_DAYS}日先（{horizon:%Y-%m-%d}）までです。",
            f"Bookings can be made up to {settings.ROOMS_MAX_ADVANCE_DAYS} days ahead ({horizon}).",
        )
    same_day = end_local.date() == start_local.date() or (
        end_local.date() == start_local.date() + dt.timedelta(days=1)
        and end_local.time() == dt.time(0)
    )
    end_time = dt.time.max if end_local.time() == dt.time(0) else end_local.time()
    # A room open "until 24:00" is stored as 23:59 (a TimeField has no 24:00).
    closes = dt.time.max if room.closes_at >= dt.time(23, 59) else room.closes_at
    if not same_day or start_local.time() < room.opens_at or end_time > closes:
        raise BookingRefused(
            f"この会議室の利用時間は{room.opens_at:%H:%M}〜{room.closes_at:%H:%M}です。",
            f"This room can be booked from {room.opens_at:%H:%M} to {room.closes_at:%H:%M}.",
        )


# --- creating -------------------------------------------------------------------------


def check_create_booking(request: BookingRequest, *, acting_user: User) -> Booking:
    """Validate ``request`` and place it.  The caller has checked ``may_book`` (through
    ``access_room_for_booking``).  Raises ``BookingRefused`` or ``BookingConflict``."""
    if not request.title.strip():
        raise BookingRefused("件名を入力してください。", "Enter a title.")
    check_booking_rules(request.room, request.starts_at, request.ends_at)
    return do_create_booking(request, acting_user=acting_user)


def do_create_booking(request: BookingRequest, *, acting_user: ActingUser) -> Booking:
    """Place one booking: lock the room, refuse on a conflict, insert, audit.  Pending
    (a hold) when the room requires approval, confirmed otherwise."""
    room = request.room

    def attempt() -> Booking:
        with transaction.atomic():
            lock_rooms([room.pk])
            booking = place_booking(request, booked_by=user_of(acting_user, request.organiser))
            record(
                AuditAction.BOOKING_CREATED,
                actor=acting_user,
                target=booking,
                details=booking_details(booking),
            )
            attendees = [u for u in request.attendees if u.pk != request.organiser.pk]
            events.notify_booking_changed(
                booking, "created", attendee_ids=[u.pk for u in attendees]
            )
            notifications.booking_created(booking, attendees)
            return booking

    return with_booking_retries(room, request.starts_at, request.ends_at, attempt)


def place_booking(request: BookingRequest, *, booked_by: User) -> Booking:
    """Insert one booking after checking for conflicts.  The room must be locked
    (``lock_rooms``) by the caller's transaction.  Writes no audit entry: the caller's
    action does (one per booking, or one per series)."""
    room = request.room
    block_start, block_end = block_of(room, request.starts_at, request.ends_at)
    conflicts = find_conflicts(room, block_start, block_end)
    if conflicts:
        raise BookingConflict(conflicts)
    now = clock.now()
    booking = Booking.objects.create(
        room=room,
        series_id=request.series_id,
        occurrence_date=request.occurrence_date,
        organiser=request.organiser,
        booked_by=booked_by,
        title=request.title.strip()[:200],
        is_private=request.is_private,
        note=request.note,
        starts_at=request.starts_at,
        ends_at=request.ends_at,
        block_start=block_start,
        block_end=block_end,
        status=Booking.Status.PENDING if room.requires_approval else Booking.Status.CONFIRMED,
        wants_web_meeting=request.wants_web_meeting,
        release_due_at=release_due_at(room, request.starts_at, request.ends_at, now),
        created_at=now,
    )
    attendees = {user.pk for user in request.attendees} - {request.organiser.pk}
    if attendees:
        booking.attendees.add(*sorted(attendees))
    return booking


def booking_details(booking: Booking, **extra: Any) -> dict[str, Any]:
    """The audit details of a booking: room, times, status, people (ids)."""
    return {
        "room": booking.room.code,
        "starts_at": booking.starts_at.isoformat(),
        "ends_at": booking.ends_at.isoformat(),
        "status": booking.status,
        "organiser_id": booking.organiser_id,
        **extra,
    }


def user_of(acting_user: ActingUser, fallback: User) -> User:
    """The acting person, or ``fallback`` when the system acts."""
    return acting_user if isinstance(acting_user, User) else fallback


# --- changing and cancelling ---------------------------------------------------------------


def check_change_booking(
    booking: Booking,
    *,
    acting_user: User,
    room: Room | None = None,
    starts_at: dt.datetime | None = None,
    ends_at: dt.datetime | None = None,
    title: str | None = None,
    is_private: bool | None = None,
    note: str | None = None,
    attendees: Sequence[User] | None = None,
) -> Booking:
    """Change a live booking (time, room, title, people).  A new room or time is checked
    like a new booking; an occurrence of a series changed this way is detached from it.
    A change of room or time of a booking in an approval room goes back to pending."""
    if not booking.is_live:
        raise BookingRefused(
            "取消済みまたは解放済みの予約は変更できません。",
            "A cancelled or released booking cannot be changed.",
        )
    new_room = room or booking.room
    new_start, new_end = starts_at or booking.starts_at, ends_at or booking.ends_at
    moved = (
        new_room.pk != booking.room_id
        or new_start != booking.starts_at
        or new_end != booking.ends_at
    )
    if moved:
        check_booking_rules(new_room, new_start, new_end)
    if title is not None and not title.strip():
        raise BookingRefused("件名を入力してください。", "Enter a title.")

    def attempt() -> Booking:
        with transaction.atomic():
            lock_rooms([booking.room_id, new_room.pk])
            current = Booking.objects.select_related("room").get(pk=booking.pk)
            if not current.is_live:
                raise BookingRefused(
                    "この予約は既に取り消されています。", "This booking was already cancelled."
                )
            changed: dict[str, Any] = {}
            if moved:
                block_start, block_end = block_of(new_room, new_start, new_end)
                conflicts = find_conflicts(new_room, block_start, block_end, exclude=[current.pk])
                if conflicts:
                    raise BookingConflict(conflicts)
                changed = {
                    "from": {
                        "room": current.room.code,
                        "starts_at": current.starts_at.isoformat(),
                        "ends_at": current.ends_at.isoformat(),
                    }
                }
                old_room = current.room
                current.room, current.starts_at, current.ends_at = new_room, new_start, new_end
                current.block_start, current.block_end = block_start, block_end
                # A booking moved to start in five minutes counts as booked on the spot.
                current.release_due_at = release_due_at(new_room, new_start, new_end, clock.now())
                if new_room.requires_approval and (
                    old_room.pk != new_room.pk or current.status == Booking.Status.PENDING
                ):
                    current.status = Booking.Status.PENDING
                elif not new_room.requires_approval:
                    current.status = Booking.Status.CONFIRMED
                if current.series_id is not None:
                    current.detached = True
                if old_room.pk != new_room.pk:
                    events.notify_occupancy_changed(old_room)
            if title is not None and current.title != title.strip()[:200]:
                current.title = title.strip()[:200]
                changed.setdefault("fields", []).append("title")
            if is_private is not None and current.is_private != is_private:
                current.is_private = is_private
                changed.setdefault("fields", []).append("is_private")
            if note is not None and current.note != note:
                current.note = note
                changed.setdefault("fields", []).append("note")
            current.ical_sequence += 1
            current.save(
                update_fields=[
                    "room",
                    "starts_at",
                    "ends_at",
                    "block_start",
                    "block_end",
                    "release_due_at",
                    "status",
                    "detached",
                    "title",
                    "is_private",
                    "note",
                    "ical_sequence",
                ]
            )
            removed: list[User] = []
            if attendees is not None:
                wanted = {u.pk for u in attendees} - {current.organiser_id}
                removed = [u for u in current.attendees.all() if u.pk not in wanted]
                current.attendees.set(sorted(wanted))
                changed.setdefault("fields", []).append("attendees")
            record(
                AuditAction.BOOKING_CHANGED,
                actor=acting_user,
                target=current,
                details=booking_details(current, **changed),
            )
            # People taken off the booking are told too, and their calendars get a CANCEL.
            events.notify_booking_changed(
                current, "changed", extra_user_ids=tuple(u.pk for u in removed)
            )
            notifications.booking_changed(current)
            if removed:
                notifications.attendees_removed(current, removed)
            return current

    return with_booking_retries(new_room, new_start, new_end, attempt)


def do_cancel_booking(booking: Booking, *, acting_user: ActingUser, reason: str = "") -> bool:
    """Cancel a live booking; False when it was no longer live (a race with the release
    or another cancel: the conditional UPDATE decides, once)."""
    with transaction.atomic():
        now = clock.now()
        updated = Booking.objects.filter(pk=booking.pk, status__in=Booking.LIVE).update(
            status=Booking.Status.CANCELLED,
            cancelled_at=now,
            ical_sequence=F("ical_sequence") + 1,
        )
        if not updated:
            return False
        booking.refresh_from_db()
        record(
            AuditAction.BOOKING_CANCELLED,
            actor=acting_user,
            target=booking,
            details=booking_details(booking, reason=reason[:300]),
        )
        events.notify_booking_changed(booking, "cancelled")
        notifications.booking_cancelled(booking, reason=reason)
    return True


def do_decide_booking(
    booking: Booking, *, approve: bool, acting_user: User, note: str = ""
) -> bool:
    """A facility manager approves (pending → confirmed) or rejects a held booking."""
    with transaction.atomic():
        status = Booking.Status.CONFIRMED if approve else Booking.Status.REJECTED
        changes: dict[str, Any] = {
            "status": status,
            "decided_by": acting_user,
            "decision_note": note[:300],
        }
        if approve:
            # Approved late, the booking counts as made now: an approval given after the
            # release deadline must not be released at the worker's next run.
            changes["release_due_at"] = release_due_at(
                booking.room, booking.starts_at, booking.ends_at, clock.now()
            )
        updated = Booking.objects.filter(pk=booking.pk, status=Booking.Status.PENDING).update(
            **changes
        )
        if not updated:
            return False
        booking.refresh_from_db()
        action = AuditAction.BOOKING_APPROVED if approve else AuditAction.BOOKING_REJECTED
        record(
            action,
            actor=acting_user,
            target=booking,
            details=booking_details(booking, note=note[:300]),
        )
        events.notify_booking_changed(booking, "approved" if approve else "rejected")
        notifications.booking_decided(booking)
    return True
