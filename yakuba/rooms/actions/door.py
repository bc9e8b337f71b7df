"""At the door: check-in (panel, QR, web), start now, extend, end early, and the
automatic release of no-shows.  See ``booking`` for the locking rules."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db import transaction

from yakuba.audit.models import AuditAction
from yakuba.audit.record import Actor, record
from yakuba.directory.models import User
from yakuba.lib import clock
from yakuba.rooms import events, notifications
from yakuba.rooms.actions.booking import ActingUser, BookingRefused, booking_details
from yakuba.rooms.models import Booking, Room

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
            from yakuba.rooms.models import BookingSeries

            BookingSeries.objects.filter(pk=booking.series_id).update(consecutive_no_shows=0)
        events.notify_booking_changed(booking, "checked_in")
    return True


def current_booking(room: Room, at: dt.datetime | None = None) -> Booking | None:
    """The live booking of ``room`` whose time covers ``at`` (now), if any."""
    at = at or clock.now()
    return (
        Booking.objects.filter(
            room=room, status__in=Booking.LIVE, starts_at__lte=at, ends_at__gt=at
        )
        .select_related("organiser")
        .first()
    )


def do_release_no_show(booking_id: int) -> bool:
    """Release a confirmed booking nobody checked in to once its ``release_due_at`` has
    passed: the room is free at once, the organiser is told by real-time event and
    e-mail, and it is audited as the system's act.  Idempotent: the conditional UPDATE
    lets exactly one worker release it, and a check-in that won the race keeps it."""
    now = clock.now()
    with transaction.atomic():
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
    return True
