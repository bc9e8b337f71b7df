"""At the door: check-in (panel, QR, web), start now, extend, end early, and the
automatic release of no-shows.  See ``booking`` for the locking rules."""

from __future__ import annotations

import datetime as dt
import logging

from django.conf import settings
from django.db import transaction
from django.db.models import F, Max

from yakuba.audit.models import AuditAction
from yakuba.audit.record import Actor, record
from yakuba.directory.models import User
from yakuba.lib import clock
from yakuba.realtime.send import send_event_on_commit
from yakuba.rooms import events, notifications
from yakuba.rooms.actions.booking import (
    ActingUser,
    BookingConflict,
    BookingRefused,
    BookingRequest,
    block_of,
    booking_details,
    check_booking_rules,
    find_conflicts,
    lock_rooms,
    place_booking,
    with_booking_retries,
)
from yakuba.rooms.actions.series import cancel_series_after_no_shows
from yakuba.rooms.models import Booking, BookingSeries, Room

log = logging.getLogger(__name__)

# --- at the door -------------------------------------------------------------------------


def checkin_window(booking: Booking) -> tuple[dt.datetime, dt.datetime]:
    """Check-in opens ``ROOMS_CHECKIN_OPENS_MINUTES`` before the start and stays open
    until the booking ends (a late check-in before the release still counts)."""
    opens = booking.starts_at - dt.timedelta(minutes=settings.ROOMS_CHECKIN_OPENS_MINUTES)
    return opens, booking.ends_at


def do_check_in(booking: Booking, *, acting_user: ActingUser, method: str) -> bool:
    """Mark a confirmed booking as in use.  Refused before check-in opens; False when it
    was already checked in.  The conditional UPDATE races safely with the release: a
    booking is either checked in or released, never both."""
    now = clock.now()
    opens, closes = checkin_window(booking)
    if now < opens:
        raise BookingRefused(
            f"チェックインは開始{settings.ROOMS_CHECKIN_OPENS_MINUTES}分前からできます。",
            f"Check-in opens {settings.ROOMS_CHECKIN_OPENS_MINUTES} minutes before the start.",
        )
    if now >= closes:
        raise BookingRefused("この予約の時間は終わっています。", "This booking has ended.")
    with transaction.atomic():
        updated = Booking.objects.filter(
            pk=booking.pk, status=Booking.Status.CONFIRMED, checked_in_at__isnull=True
        ).update(
            checked_in_at=now,
            checked_in_by=acting_user if isinstance(acting_user, User) else None,
            check_in_method=method,
        )
        if not updated:
            current = Booking.objects.filter(pk=booking.pk).values_list("status", flat=True).first()
            if current == Booking.Status.RELEASED:
                raise BookingRefused(
                    "この予約は未使用のため自動解放されました。空いていれば新たに予約してください。",
                    "This booking was released as a no-show. Book the room again if it is free.",
                )
            return False
        booking.refresh_from_db()
        record(
            AuditAction.BOOKING_CHECKED_IN,
            actor=acting_user,
            target=booking,
            details=booking_details(booking, method=method),
        )
        if booking.series_id is not None:
            # A series that is used again starts its count (and its one warning) afresh.
            BookingSeries.objects.filter(pk=booking.series_id).update(
                consecutive_no_shows=0, no_show_warned_at=None
            )
        events.notify_booking_changed(booking, "checked_in")
    return True


def _in_use(booking: Booking, now: dt.datetime) -> bool:
    return (
        booking.status == Booking.Status.CONFIRMED
        and booking.checked_in_at is not None
        and booking.ended_early_at is None
        and booking.starts_at <= now < booking.ends_at
    )


def _not_in_use() -> BookingRefused:
    return BookingRefused(
        "この予約は現在使用中ではありません。画面を更新してください。",
        "This booking is not in use now. Reload the page.",
    )


def checkin_candidates(room: Room, at: dt.datetime | None = None) -> list[Booking]:
    """The confirmed bookings of ``room`` that may be checked in to at ``at`` (now): not
    yet checked in and inside their check-in window, the earliest first (at most two: a
    running no-show and the next booking, whose window has opened)."""
    at = at or clock.now()
    opens_before = dt.timedelta(minutes=settings.ROOMS_CHECKIN_OPENS_MINUTES)
    return list(
        Booking.objects.filter(
            room=room,
            status=Booking.Status.CONFIRMED,
            checked_in_at__isnull=True,
            starts_at__lte=at + opens_before,
            ends_at__gt=at,
        )
        .select_related("room", "organiser")
        .order_by("starts_at", "pk")[:5]
    )


def checkin_candidate(room: Room, at: dt.datetime | None = None) -> Booking | None:
    """The earliest of ``checkin_candidates``, or None."""
    found = checkin_candidates(room, at)
    return found[0] if found else None


def in_use_booking(room: Room, at: dt.datetime | None = None) -> Booking | None:
    """The checked-in booking of ``room`` running at ``at`` (now), if any."""
    at = at or clock.now()
    return (
        Booking.objects.filter(
            room=room,
            status=Booking.Status.CONFIRMED,
            checked_in_at__isnull=False,
            ended_early_at__isnull=True,
            starts_at__lte=at,
            ends_at__gt=at,
        )
        .select_related("room", "organiser")
        .first()
    )


def do_start_now(
    room: Room, *, minutes: int, acting_user: User, title: str = "今すぐ利用"
) -> Booking:
    """Book ``room`` from now (rounded down to the minute) for ``minutes``, already
    checked in (method ``start_now``): for the person at the door of a free room.  Locks
    the room (``lock_rooms``) and retries like every booking; raises ``BookingConflict``
    naming the next booking's time when the span would run into it, ``BookingRefused``
    outside the room's hours, for a room out of service or one needing approval."""
    if not 1 <= minutes <= 240:
        raise BookingRefused("利用時間は1〜240分で指定してください。", "Choose 1 to 240 minutes.")
    if room.requires_approval:
        raise BookingRefused(
            "この会議室は施設管理者の承認が必要なため、今すぐ開始はできません。",
            "This room needs approval, so it cannot be started on the spot.",
        )
    now = clock.now()
    starts_at = now.replace(second=0, microsecond=0)
    # A booking ended early in this same minute holds the room until that moment.
    held_until = Booking.objects.filter(
        room=room, status__in=Booking.LIVE, block_end__gt=starts_at, block_end__lte=now
    ).aggregate(end=Max("block_end"))["end"]
    if held_until is not None:
        starts_at = held_until
    ends_at = starts_at.replace(second=0, microsecond=0) + dt.timedelta(minutes=minutes)
    check_booking_rules(room, starts_at, ends_at, now=now)
    request = BookingRequest(
        room=room, starts_at=starts_at, ends_at=ends_at, title=title, organiser=acting_user
    )

    def attempt() -> Booking:
        with transaction.atomic():
            lock_rooms([room.pk])
            booking = place_booking(request, booked_by=acting_user)
            booking.checked_in_at = now
            booking.checked_in_by = acting_user
            booking.check_in_method = Booking.CheckInMethod.START_NOW
            booking.release_due_at = None
            booking.save(
                update_fields=[
                    "checked_in_at",
                    "checked_in_by",
                    "check_in_method",
                    "release_due_at",
                ]
            )
            details = booking_details(booking, method=Booking.CheckInMethod.START_NOW)
            record(AuditAction.BOOKING_CREATED, actor=acting_user, target=booking, details=details)
            record(
                AuditAction.BOOKING_CHECKED_IN, actor=acting_user, target=booking, details=details
            )
            events.notify_booking_changed(booking, "checked_in")
            return booking

    return with_booking_retries(room, starts_at, ends_at, attempt)


def do_extend_booking(booking: Booking, *, minutes: int, acting_user: ActingUser) -> Booking:
    """Lengthen the booking in use now by ``minutes``.  Locks the room; raises
    ``BookingConflict`` naming the next booking's time (never its title) when the longer
    span would overlap it, ``BookingRefused`` when the booking is not in use or the new end
    is past the room's hours."""
    if not 1 <= minutes <= 120:
        raise BookingRefused("延長は1〜120分で指定してください。", "Extend by 1 to 120 minutes.")
    room = booking.room
    now = clock.now()
    if not _in_use(booking, now):
        raise _not_in_use()
    new_end = booking.ends_at + dt.timedelta(minutes=minutes)
    check_booking_rules(room, booking.starts_at, new_end, now=now)

    def attempt() -> Booking:
        with transaction.atomic():
            lock_rooms([room.pk])
            current = Booking.objects.select_related("room").get(pk=booking.pk)
            if not _in_use(current, clock.now()):
                raise _not_in_use()
            block_start, block_end = block_of(room, current.starts_at, new_end)
            conflicts = find_conflicts(room, block_start, block_end, exclude=[current.pk])
            if conflicts:
                raise BookingConflict(conflicts)
            previous_end = current.ends_at
            current.ends_at, current.block_end = new_end, block_end
            current.ical_sequence += 1
            current.save(update_fields=["ends_at", "block_end", "ical_sequence"])
            record(
                AuditAction.BOOKING_EXTENDED,
                actor=acting_user,
                target=current,
                details=booking_details(
                    current, minutes=minutes, from_ends_at=previous_end.isoformat()
                ),
            )
            events.notify_booking_changed(current, "extended")
            return current

    return with_booking_retries(room, booking.starts_at, new_end, attempt)


def do_end_early(booking: Booking, *, acting_user: ActingUser) -> Booking:
    """End the booking in use now: it ends (and stops holding the room, buffer
    included) at once, so the room shows free and can be booked from this minute.
    Locks the room like every action that moves a booking (a shorter booking cannot
    conflict, but it must not interleave with a racing extend or start-now), and retries
    on PostgreSQL like them."""

    def attempt() -> Booking:
        with transaction.atomic():
            lock_rooms([booking.room_id])
            current = Booking.objects.select_related("room").get(pk=booking.pk)
            now = clock.now()
            if not _in_use(current, now):
                raise _not_in_use()
            # Rounded down to the minute, so that "start now" (which starts on the minute)
            # can follow at once; never at or before the start (the check constraint).
            end = now.replace(second=0, microsecond=0)
            if end <= current.starts_at:
                end = now
            previous_end = current.ends_at
            current.ends_at = current.block_end = end
            current.ended_early_at = now
            current.ical_sequence += 1
            current.save(update_fields=["ends_at", "block_end", "ended_early_at", "ical_sequence"])
            record(
                AuditAction.BOOKING_ENDED_EARLY,
                actor=acting_user,
                target=current,
                details=booking_details(current, from_ends_at=previous_end.isoformat()),
            )
            events.notify_booking_changed(current, "ended")
            return current

    return with_booking_retries(booking.room, booking.starts_at, booking.ends_at, attempt)


# --- the automatic release of no-shows -------------------------------------------------------


def due_for_release(now: dt.datetime) -> list[int]:
    """Ids of the confirmed bookings nobody checked in to whose release is due at ``now``,
    oldest deadline first.  Uses the partial index ``booking_release_due``.  A deadline
    that passed while no worker ran is as due as one that passed a second ago."""
    return list(
        Booking.objects.filter(
            status=Booking.Status.CONFIRMED,
            checked_in_at__isnull=True,
            release_due_at__lte=now,
            room__auto_release=True,
        )
        .order_by("release_due_at", "pk")
        .values_list("pk", flat=True)
    )


def release_due(now: dt.datetime) -> int:
    """Release every booking due at ``now``, each in its own transaction (one row that
    fails is logged and skipped, the rest go on).  Returns how many were released.  Safe to
    run in several workers at once: ``do_release_no_show`` releases each booking once."""
    released = 0
    for booking_id in due_for_release(now):
        try:
            if do_release_no_show(booking_id):
                released += 1
        except Exception:
            log.exception("release of booking %s failed", booking_id)
    return released


def do_release_no_show(booking_id: int) -> bool:
    """Release a confirmed booking nobody checked in to once its ``release_due_at`` has
    passed: the room is free at once, the organiser is told by real-time event and
    e-mail, and it is audited as the system's act.  Idempotent: the conditional UPDATE
    lets exactly one worker release it, and a check-in that won the race keeps it.  A
    room that opted out of the release after the booking was made keeps its bookings
    (``release_due_at`` was set when it was booked; the room's setting now decides).

    For an occurrence of a series the series' count of no-shows in a row goes up; at
    ``ROOMS_SERIES_NO_SHOW_LIMIT - 1`` the organiser is warned (once), at the limit the
    rest of the series is cancelled."""
    now = clock.now()
    opted_in = (
        Booking.objects.filter(pk=booking_id).values_list("room__auto_release", flat=True).first()
    )
    if not opted_in:
        return False
    with transaction.atomic():
        # No join in this UPDATE: Django would turn one into ``pk IN (subquery)``, which
        # PostgreSQL does not re-check against a check-in committed meanwhile.
        updated = Booking.objects.filter(
            pk=booking_id,
            status=Booking.Status.CONFIRMED,
            checked_in_at__isnull=True,
            release_due_at__lte=now,
        ).update(status=Booking.Status.RELEASED, released_at=now)
        if not updated:
            return False
        booking = Booking.objects.select_related("room", "organiser").get(pk=booking_id)
        assert booking.release_due_at is not None
        record(
            AuditAction.BOOKING_RELEASED,
            actor=Actor.system("会議室の自動解放"),
            target=booking,
            details=booking_details(
                booking, lag_seconds=round((now - booking.release_due_at).total_seconds(), 3)
            ),
        )
        events.notify_booking_changed(booking, "released")
        notifications.booking_released(booking)
        if booking.series_id is not None:
            _count_series_no_show(booking, booking.series_id, now)
    return True


def _count_series_no_show(booking: Booking, series_id: int, now: dt.datetime) -> None:
    """One more no-show in a row for the booking's series (inside the release's
    transaction).  The counter moves with ``F() + 1`` and the warning and the cancellation
    are conditional UPDATEs, so two releases at once still warn once and cancel once."""
    limit = settings.ROOMS_SERIES_NO_SHOW_LIMIT
    if limit <= 0:
        return  # the ward counts no no-shows of series
    series_rows = BookingSeries.objects.filter(pk=series_id)
    series_rows.update(consecutive_no_shows=F("consecutive_no_shows") + 1)
    count = series_rows.values_list("consecutive_no_shows", flat=True).get()
    system = Actor.system("会議室の自動解放")
    if count >= limit:
        # The conditional UPDATE lets one of two releases at once cancel the series; the
        # cancellation itself is the series' own (its attendees are told and get CANCEL).
        if not series_rows.filter(status=BookingSeries.Status.ACTIVE).update(
            status=BookingSeries.Status.CANCELLED
        ):
            return
        cancel_series_after_no_shows(series_rows.select_related("room").get(), count=count)
    elif count == limit - 1:
        if not series_rows.filter(no_show_warned_at__isnull=True).update(no_show_warned_at=now):
            return
        series = series_rows.select_related("room").get()
        record(
            AuditAction.SERIES_NO_SHOW_WARNED,
            actor=system,
            target=series,
            details={
                "room": series.room.code,
                "consecutive_no_shows": count,
                "limit": limit,
                "organiser_id": series.organiser_id,
            },
        )
        send_event_on_commit(
            {"type": "rooms", "op": "series_warned", "series_id": series.pk},
            [series.organiser_id],
        )
        notifications.series_warning(booking, no_shows=count, limit=limit)
