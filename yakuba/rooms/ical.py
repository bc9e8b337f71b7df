"""iCalendar (RFC 5545) for bookings: one event per booking, with the Asia/Tokyo
VTIMEZONE, for e-mail attachments and the feeds (``views.feeds``).

Feeds are read by calendar programs that cannot sign in: the secret in the URL is the
credential (256 bits, ``models.new_secret``), so a wrong secret is a plain 404 and a
room's feed never shows a private booking's title or people (「予約あり」).  icalendar
writes CRLF line endings and folds lines at 75 octets; the UID (``Booking.ical_uid``) is
stable across changes and SEQUENCE counts them, so a calendar updates its copy.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Callable, Iterable

import icalendar
from django.conf import settings
from django.db.models import Q, QuerySet
from django.http import Http404

from yakuba.directory.models import User
from yakuba.lib import clock
from yakuba.rooms.access import shows_details
from yakuba.rooms.models import Booking, CalendarFeed, Room

# How far back the feeds reach (a calendar keeps what it already has).
FEED_DAYS_BACK = 30

PRODID = "-//Yakuba//Meeting rooms//JA"
STATUS = {
    Booking.Status.PENDING: "TENTATIVE",
    Booking.Status.CONFIRMED: "CONFIRMED",
    Booking.Status.REJECTED: "CANCELLED",
    Booking.Status.CANCELLED: "CANCELLED",
    Booking.Status.RELEASED: "CANCELLED",
}


def new_calendar(name: str, *, method: str | None = None) -> icalendar.Calendar:
    calendar = icalendar.Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("x-wr-calname", name)
    calendar.add("x-wr-timezone", "Asia/Tokyo")
    if method:
        calendar.add("method", method)
    return calendar


def booking_event(booking: Booking, *, show_details: bool = True) -> icalendar.Event:
    """One VEVENT.  ``show_details`` False gives 「予約あり」 instead of the title (a
    private booking in a room's feed)."""
    event = icalendar.Event()
    event.add("uid", f"{booking.ical_uid}@yakuba")
    event.add("sequence", booking.ical_sequence)
    event.add("dtstamp", clock.now())
    event.add("dtstart", clock.local(booking.starts_at))
    event.add("dtend", clock.local(booking.ends_at))
    event.add("summary", booking.title if show_details else "予約あり")
    room = booking.room
    event.add("location", f"{room.floor} {room.name}")
    event.add("status", STATUS[Booking.Status(booking.status)])
    if show_details:
        if booking.note:
            event.add("description", booking.note)
        event.add("url", f"{settings.SITE_URL}/rooms/bookings/{booking.pk}/")
        if booking.organiser.email:
            organiser = icalendar.vCalAddress(f"mailto:{booking.organiser.email}")
            organiser.params["cn"] = icalendar.vText(booking.organiser.display_name)
            event.add("organizer", organiser)
    return event


def calendar_bytes(
    name: str,
    bookings: Iterable[Booking],
    *,
    method: str | None = None,
    show_details: bool | Callable[[Booking], bool] = True,
) -> bytes:
    """A VCALENDAR holding ``bookings`` and the VTIMEZONE their times use (all times
    are Asia/Tokyo, so that is the one VTIMEZONE)."""
    calendar = new_calendar(name, method=method)
    for booking in bookings:
        shown = show_details(booking) if callable(show_details) else show_details
        calendar.add_component(booking_event(booking, show_details=shown))
    if calendar.events:
        calendar.subcomponents.insert(0, tokyo_vtimezone())
    return bytes(calendar.to_ical())


@functools.cache
def tokyo_vtimezone() -> icalendar.Timezone:
    """Asia/Tokyo as a VTIMEZONE, built once per process: icalendar derives it from the
    tz database on every ``add_missing_timezones()``, about 20 ms of CPU, which every
    booking e-mail paid inside the room lock (bench/README.md)."""
    return icalendar.Timezone.from_tzid("Asia/Tokyo")


def booking_attachment_text(booking: Booking, *, method: str) -> str:
    """The .ics text attached to a booking's e-mail (``method`` REQUEST or CANCEL)."""
    return calendar_bytes(booking.title, [booking], method=method).decode("utf-8")


def _feed_window() -> tuple[dt.datetime, dt.datetime]:
    now = clock.now()
    return (
        now - dt.timedelta(days=FEED_DAYS_BACK),
        now + dt.timedelta(days=settings.ROOMS_MAX_ADVANCE_DAYS + 1),
    )


# What ``new_secret`` makes (URL-safe base64).  Anything else is refused before the
# query: a %00 in the URL would reach PostgreSQL as a NUL, which it refuses (a 500).
SECRET = re.compile(r"[A-Za-z0-9_-]{1,64}")


def _well_formed(secret: str) -> bool:
    return SECRET.fullmatch(secret) is not None


def room_for_feed(secret: str) -> Room:
    """The room whose feed URL holds ``secret`` (404 otherwise: the secret is the
    credential, and a wrong one reveals nothing)."""
    room = (
        Room.objects.select_related("floor__building")
        .filter(feed_secret=secret, is_active=True)
        .first()
        if _well_formed(secret)
        else None
    )
    if room is None:
        raise Http404("カレンダーが見つかりません。")
    return room


def feed_for_secret(secret: str) -> CalendarFeed:
    """The person's feed whose URL holds ``secret``; 404 for a wrong one or a person who
    can no longer sign in."""
    feed = (
        CalendarFeed.objects.select_related("user").filter(secret=secret).first()
        if _well_formed(secret)
        else None
    )
    if feed is None or not feed.user.is_active:
        raise Http404("カレンダーが見つかりません。")
    return feed


def room_feed_bookings(room: Room) -> QuerySet[Booking]:
    start, end = _feed_window()
    return (
        Booking.objects.filter(
            room=room, status__in=Booking.LIVE, ends_at__gt=start, starts_at__lt=end
        )
        .select_related("room__floor__building", "organiser")
        .order_by("starts_at")
    )


def person_feed_bookings(user: User) -> QuerySet[Booking]:
    """The live bookings ``user`` organises, booked, or attends."""
    start, end = _feed_window()
    mine = Q(organiser=user) | Q(booked_by=user) | Q(attendees=user)
    ids = (
        Booking.objects.filter(mine, status__in=Booking.LIVE, ends_at__gt=start, starts_at__lt=end)
        .values("pk")
        .distinct()
    )
    return (
        Booking.objects.filter(pk__in=ids)
        .select_related("room__floor__building", "organiser")
        .order_by("starts_at")
    )


def room_feed_bytes(room: Room) -> bytes:
    """A room's calendar: every live booking, in the public view of
    ``access.shows_details`` (the secret URL identifies nobody): private ones as 「予約あり」."""
    return calendar_bytes(
        f"{room.floor} {room.name}",
        room_feed_bookings(room),
        method="PUBLISH",
        show_details=lambda booking: shows_details(None, booking),
    )


def person_feed_bytes(user: User) -> bytes:
    return calendar_bytes(
        f"会議室予約（{user.display_name}）", person_feed_bookings(user), method="PUBLISH"
    )
