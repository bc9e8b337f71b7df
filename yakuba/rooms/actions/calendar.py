"""Calendars: personal feed URLs and the import of bookings from an .ics file.

Import is all-or-nothing: every event of the file is checked (parse, the room's hours,
the advance period, conflicts with the room's bookings and with the file's own events)
and, unless every one passes, nothing is booked and every problem is reported with the
event's SUMMARY and DTSTART.  Recurring events (RRULE/RDATE) are refused, one message
per event: expanding them into single bookings would lose the series (changing "all"
later), so the person books them as a recurring booking (定期予約) instead.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any

import icalendar
from django.db import transaction

from yakuba.audit.models import AuditAction
from yakuba.audit.record import record
from yakuba.directory.models import User
from yakuba.lib import clock
from yakuba.rooms import events
from yakuba.rooms.actions.booking import (
    BookingError,
    BookingRequest,
    check_booking_rules,
    lock_rooms,
    place_booking,
    with_booking_retries,
)
from yakuba.rooms.models import Booking, CalendarFeed, Room, new_secret

MAX_EVENTS = 500


@dataclass(frozen=True)
class ImportProblem:
    summary: str
    starts: str  # DTSTART as written in Tokyo time, or "" when unreadable
    reason: str

    def __str__(self) -> str:
        where = f"「{self.summary or '（件名なし）'}」"
        if self.starts:
            where += f" {self.starts}"
        return f"{where}: {self.reason}"


@dataclass
class ImportResult:
    bookings: list[Booking] = field(default_factory=list)
    problems: list[ImportProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


class IcsNotCalendar(ValueError):
    """The file is not iCalendar at all."""

    message = (
        "iCalendar（.ics）ファイルとして読めませんでした。"
        "カレンダーソフトから書き出した .ics ファイルを選んでください。"
    )


# --- feeds ------------------------------------------------------------------------------


def do_create_feed(user: User) -> CalendarFeed:
    """The person's feed, made on first use.  Its creation is audited: the URL lets
    anyone holding it read the person's bookings."""
    with transaction.atomic():
        feed, created = CalendarFeed.objects.get_or_create(user=user)
        if created:
            record(AuditAction.CALENDAR_FEED_CREATED, actor=user, target=feed)
    return feed


def do_reset_feed(user: User, *, acting_user: User) -> CalendarFeed:
    """Issue a new secret: the old URL stops working at once."""
    with transaction.atomic():
        feed, created = CalendarFeed.objects.select_for_update().get_or_create(user=user)
        if not created:
            feed.secret = new_secret()
            feed.save(update_fields=["secret"])
        record(
            AuditAction.CALENDAR_FEED_RESET,
            actor=acting_user,
            target=user,
            details={"created": created},
        )
    return feed


# --- import ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Event:
    summary: str
    starts_at: dt.datetime
    ends_at: dt.datetime
    description: str
    label: str


# Control characters other than tab and line breaks: PostgreSQL refuses a NUL in text
# (a 500 on import), and the rest only garble a title.
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _text(component: Any, name: str) -> str:
    value = component.get(name)
    return CONTROL.sub("", str(value)).strip() if value is not None else ""


def _as_aware(value: Any) -> dt.datetime | None:
    """A DTSTART/DTEND value as an aware datetime; floating times are Tokyo's.  All-day
    dates give None."""
    if isinstance(value, dt.datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=clock.TOKYO)
    return None


def parse_ics(data: bytes) -> tuple[list[_Event], list[ImportProblem]]:
    """The file's VEVENTs as bookable spans, and the events that cannot be."""
    # Count before parsing: icalendar takes about 2 s for 10,000 events, all of them
    # to be refused anyway.
    if data.upper().count(b"BEGIN:VEVENT") > MAX_EVENTS:
        return [], [ImportProblem("", "", f"一度に取り込めるのは{MAX_EVENTS}件までです。")]
    try:
        calendars = icalendar.Calendar.from_ical(data, multiple=True)
    except (ValueError, IndexError, KeyError, TypeError, OverflowError) as exc:
        raise IcsNotCalendar(str(exc)) from exc
    if not calendars:
        raise IcsNotCalendar("no VCALENDAR")
    found: list[_Event] = []
    problems: list[ImportProblem] = []
    vevents = [c for calendar in calendars for c in calendar.walk("VEVENT")]
    if len(vevents) > MAX_EVENTS:
        problems.append(ImportProblem("", "", f"一度に取り込めるのは{MAX_EVENTS}件までです。"))
        return [], problems
    for component in vevents:
        summary = _text(component, "SUMMARY")[:200]
        try:
            start_prop = component.get("DTSTART")
            start = _as_aware(start_prop.dt) if start_prop is not None else None
            label = (
                f"{clock.local(start):%Y-%m-%d %H:%M}"
                if start
                else (str(start_prop.dt) if start_prop is not None else "")
            )
            if start_prop is None:
                problems.append(ImportProblem(summary, "", "開始日時（DTSTART）がありません。"))
                continue
            if start is None:
                problems.append(
                    ImportProblem(
                        summary, label, "終日の予定は取り込めません。時刻を指定してください。"
                    )
                )
                continue
            if component.get("RRULE") is not None or component.get("RDATE") is not None:
                problems.append(
                    ImportProblem(
                        summary,
                        label,
                        "繰り返しの予定は取り込めません。定期予約として登録してください。",
                    )
                )
                continue
            end_prop = component.get("DTEND")
            if end_prop is not None:
                end = _as_aware(end_prop.dt)
            elif component.get("DURATION") is not None:
                end = start + component.get("DURATION").dt
            else:
                end = None
            if end is None:
                problems.append(
                    ImportProblem(summary, label, "終了日時（DTEND）がないか、時刻がありません。")
                )
                continue
        except (ValueError, TypeError, AttributeError, OverflowError) as exc:
            problems.append(ImportProblem(summary, "", f"日時を読み取れません（{exc}）。"))
            continue
        if not summary:
            problems.append(ImportProblem(summary, label, "件名（SUMMARY）がありません。"))
            continue
        found.append(_Event(summary, start, end, _text(component, "DESCRIPTION"), label))
    if not vevents:
        problems.append(ImportProblem("", "", "予定（VEVENT）が1件もありません。"))
    return found, problems


class _Rollback(Exception):
    pass


def check_import_ics(
    data: bytes, *, room: Room, organiser: User, acting_user: User
) -> ImportResult:
    """Book every event of ``data`` in ``room`` for ``organiser``, or none of them.
    The caller has checked that ``acting_user`` may book the room.  Locks the room
    (``lock_rooms``) for the one transaction that places all the bookings.  Raises
    ``IcsNotCalendar`` for a file that is not iCalendar."""
    parsed, problems = parse_ics(data)
    for event in parsed:
        try:
            check_booking_rules(room, event.starts_at, event.ends_at)
        except BookingError as exc:
            problems.append(ImportProblem(event.summary, event.label, exc.message))
    if problems:
        return ImportResult(problems=problems)
    if not parsed:
        return ImportResult()

    def attempt() -> ImportResult:
        result = ImportResult()
        try:
            with transaction.atomic():
                lock_rooms([room.pk])
                for event in parsed:
                    request = BookingRequest(
                        room=room,
                        starts_at=event.starts_at,
                        ends_at=event.ends_at,
                        title=event.summary,
                        organiser=organiser,
                        note=event.description,
                    )
                    try:
                        result.bookings.append(place_booking(request, booked_by=acting_user))
                    except BookingError as exc:
                        result.problems.append(
                            ImportProblem(event.summary, event.label, exc.message)
                        )
                if result.problems:
                    raise _Rollback
                record(
                    AuditAction.BOOKINGS_IMPORTED,
                    actor=acting_user,
                    target=room,
                    details={
                        "room": room.code,
                        "organiser_id": organiser.pk,
                        "count": len(result.bookings),
                        "booking_ids": [b.pk for b in result.bookings],
                    },
                )
                for booking in result.bookings:
                    events.notify_booking_changed(booking, "created")
        except _Rollback:
            result.bookings = []
        return result

    first = min(parsed, key=lambda e: e.starts_at)
    try:
        return with_booking_retries(room, first.starts_at, first.ends_at, attempt)
    except BookingError as exc:  # the exclusion constraint caught a racer
        return ImportResult(problems=[ImportProblem("", "", exc.message)])
