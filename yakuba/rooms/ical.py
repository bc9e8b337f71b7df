"""iCalendar (RFC 5545) for bookings: one event per booking, with the Asia/Tokyo
VTIMEZONE, for e-mail attachments and the feeds (``feeds``)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import icalendar
from django.conf import settings

from yakuba.lib import clock
from yakuba.rooms.models import Booking

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
    name: str, bookings: Iterable[Booking], *, method: str | None = None, show_details: bool = True
) -> bytes:
    """A VCALENDAR holding ``bookings`` and the VTIMEZONE their times use."""
    calendar = new_calendar(name, method=method)
    for booking in bookings:
        calendar.add_component(booking_event(booking, show_details=show_details))
    calendar.add_missing_timezones()
    return bytes(calendar.to_ical())


def booking_attachment_text(booking: Booking, *, method: str) -> str:
    """The .ics text attached to a booking's e-mail (``method`` REQUEST or CANCEL)."""
    return calendar_bytes(booking.title, [booking], method=method).decode("utf-8")


def local_day_bounds(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    start = dt.datetime.combine(day, dt.time(0), tzinfo=clock.TOKYO)
    return start, start + dt.timedelta(days=1)
