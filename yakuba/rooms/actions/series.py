"""Recurring bookings (定期予約): create a series, extend it as the advance-booking horizon
moves, change or cancel one occurrence, this and the following ones, or all.

A series' occurrences are ordinary ``Booking`` rows (``series``, ``occurrence_date``),
made up to the horizon (``ROOMS_MAX_ADVANCE_DAYS`` from today) and then daily by the
worker (``series_tasks``).  The rule is in ``yakuba.rooms.recurrence``.

Locking: like every booking action, each write here first locks the rows of the rooms
involved (``lock_rooms``), then the series row (``select_for_update``), then reads and
writes, all in one transaction; so creating, changing and extending a series is
all-or-nothing, never interleaves with another booking of the room, and two workers
extending one series at once make its occurrences once (the second finds
``generated_through`` already moved).

One series action writes one audit entry, sends one event to its people, refreshes the
floor boards once per room and queues one e-mail, whatever the number of occurrences.

What the UI calls: ``check_create_series``; for one occurrence ``booking.check_change_booking``
(it detaches the occurrence) and ``do_cancel_occurrence``; for this-and-following or all
``check_change_series`` and ``do_cancel_series``; ``series_holidays`` to flag 祝日.
Permission is the caller's: ``access.access_booking_for_change`` on one of the series'
bookings (its organiser, booker or a facility manager).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any, NamedTuple, TypeVar

from django.conf import settings
from django.db import transaction
from django.db.models import F

from yakuba.audit.models import AuditAction
from yakuba.audit.record import Actor, record
from yakuba.directory.models import User
from yakuba.lib import clock
from yakuba.mail.outbox import queue_mail
from yakuba.realtime.send import send_event_on_commit
from yakuba.rooms import events, notifications
from yakuba.rooms.actions.booking import (
    ActingUser,
    BookingConflict,
    BookingRefused,
    BookingRequest,
    Conflict,
    block_of,
    check_booking_rules,
    do_cancel_booking,
    lock_rooms,
    place_booking,
    release_due_at,
    user_of,
    with_booking_retries,
)
from yakuba.rooms.holidays import holidays_between
from yakuba.rooms.models import Booking, BookingSeries, Room
from yakuba.rooms.recurrence import (
    MONTHLY_BY_DATE,
    MONTHLY_BY_WEEKDAY,
    Rule,
    RuleError,
    date_labels,
    describe,
    next_date,
    occurrences,
    rule_of,
)

T = TypeVar("T")
K = TypeVar("K")
SCOPES = ("all", "following")
ONE_DAY = dt.timedelta(days=1)
# Dates listed in one e-mail; the rest are counted.
MAIL_DATES = 12


class SeriesResult(NamedTuple):
    series: BookingSeries
    bookings: list[Booking]
    skipped: list[dt.date]


def horizon() -> dt.date:
    """The last date that may be booked today."""
    return clock.today() + dt.timedelta(days=settings.ROOMS_MAX_ADVANCE_DAYS)


def span_of(day: dt.date, start: dt.time, end: dt.time) -> tuple[dt.datetime, dt.datetime]:
    """An occurrence's time: the series' wall-clock times on ``day`` in Tokyo."""
    return (
        dt.datetime.combine(day, start, tzinfo=clock.TOKYO),
        dt.datetime.combine(day, end, tzinfo=clock.TOKYO),
    )


def series_holidays(series: BookingSeries) -> dict[dt.date, str]:
    """祝日・休庁日 on which the series has a live occurrence (one query each way), for the
    UI to flag: 「7/21（月）は海の日です」."""
    dates = sorted(
        d
        for d in Booking.objects.filter(series=series, status__in=Booking.LIVE).values_list(
            "occurrence_date", flat=True
        )
        if d is not None
    )
    if not dates:
        return {}
    return {d: n for d, n in holidays_between(dates[0], dates[-1]).items() if d in set(dates)}


# --- creating ---------------------------------------------------------------------------------


def check_create_series(
    room: Room,
    *,
    organiser: User,
    title: str,
    frequency: str,
    first_date: dt.date,
    start_time: dt.time,
    end_time: dt.time,
    interval: int = 1,
    weekdays: Sequence[int] = (),
    until_date: dt.date | None = None,
    count: int | None = None,
    excluded_dates: Iterable[dt.date] = (),
    attendees: Sequence[User] = (),
    is_private: bool = False,
    note: str = "",
    wants_web_meeting: bool = False,
    skip_conflicts: bool = False,
    acting_user: User,
) -> SeriesResult:
    """Create a series and its occurrences up to the horizon, all in one transaction
    under the room's lock.  A date already taken refuses the whole series with a
    ``BookingConflict`` naming every taken time, unless ``skip_conflicts``: then those
    dates become exceptions (除外日) and are returned in ``skipped``.  Each occurrence
    must meet the booking rules (hours, advance period; ``BookingRefused``).  The caller
    has checked ``may_book`` (``access_room_for_booking``).

    ``weekdays``: ISO weekdays for ``weekly``; ``[day]`` (-1: 末日) for ``monthly_date``;
    ``[ISO weekday, n]`` (n 1–5, -1: 最終) for ``monthly_weekday``; see ``recurrence``."""
    if not title.strip():
        raise BookingRefused("件名を入力してください。", "Enter a title.")
    if until_date is not None and count is not None:
        raise BookingRefused(
            "終了日と回数はどちらか一方だけを指定してください。",
            "Give either an end date or a number of times, not both.",
        )
    _check_times(start_time, end_time)
    rule = _rule(
        frequency=frequency,
        first_date=first_date,
        interval=interval,
        weekdays=tuple(weekdays),
        until_date=until_date,
        count=count,
        excluded_dates=frozenset(excluded_dates),
    )
    if first_date < clock.today():
        raise BookingRefused("開始日は今日以降にしてください。", "Start today or later.")
    through = horizon()
    days = occurrences(rule, through)
    if not days:
        raise BookingRefused(
            f"この条件では予約できる日がありません（予約できるのは{through:%Y-%m-%d}までです）。",
            f"No date of this rule can be booked (bookings go up to {through}).",
        )
    spans = {day: span_of(day, start_time, end_time) for day in days}
    for start, end in spans.values():
        check_booking_rules(room, start, end)

    def attempt() -> SeriesResult:
        with transaction.atomic():
            lock_rooms([room.pk])
            conflicts = _conflicts(room, spans)
            if conflicts and not skip_conflicts:
                raise BookingConflict(_flatten(conflicts))
            placed = [day for day in days if day not in conflicts]
            if not placed:
                raise BookingConflict(_flatten(conflicts))
            skipped = sorted(conflicts)
            series = BookingSeries.objects.create(
                room=room,
                organiser=organiser,
                booked_by=user_of(acting_user, organiser),
                title=title.strip()[:200],
                is_private=is_private,
                frequency=rule.frequency,
                interval=rule.interval,
                weekdays=list(rule.weekdays),
                first_date=first_date,
                until_date=until_date,
                count=count,
                start_time=start_time,
                end_time=end_time,
                excluded_dates=_iso(rule.excluded_dates | set(skipped)),
                generated_through=through,
                created_at=clock.now(),
            )
            bookings = [
                place_booking(
                    BookingRequest(
                        room=room,
                        starts_at=spans[day][0],
                        ends_at=spans[day][1],
                        title=series.title,
                        organiser=organiser,
                        attendees=attendees,
                        is_private=is_private,
                        note=note,
                        wants_web_meeting=wants_web_meeting,
                        series_id=series.pk,
                        occurrence_date=day,
                    ),
                    booked_by=series.booked_by,
                )
                for day in placed
            ]
            holidays = _holidays(placed)
            record(
                AuditAction.SERIES_CREATED,
                actor=acting_user,
                target=series,
                details=_details(
                    series, dates=placed, skipped=skipped, holidays=holidays, first=bookings[0]
                ),
            )
            _notify(series, "series_created", bookings, rooms=[room])
            _mail(
                series,
                "定期予約を登録しました。"
                if not room.requires_approval
                else "定期予約を受け付けました。施設管理者の承認をお待ちください。",
                bookings,
                dates=placed,
                skipped=skipped,
                holidays=holidays,
            )
            return SeriesResult(series, bookings, skipped)

    first_start, first_end = spans[days[0]]
    return with_booking_retries(room, first_start, first_end, attempt)


# --- extending ----------------------------------------------------------------------------------


def extend_series(series: BookingSeries) -> SeriesResult:
    """Make the occurrences between the series' ``generated_through`` and today's horizon.
    A date taken in the meantime, or one the rules now refuse (the room out of service),
    is skipped and recorded as an exception; the organiser gets one e-mail naming the
    skipped dates.  Locks the room, then the series row: run twice at once, the second
    run finds the work done and makes nothing."""
    now = clock.now()

    def attempt() -> SeriesResult:
        with transaction.atomic():
            lock_rooms([series.room_id])
            current = _locked(series)
            if current.room_id != series.room_id:
                lock_rooms([current.room_id])
            through = horizon()
            done = current.generated_through or current.first_date - ONE_DAY
            if current.status != BookingSeries.Status.ACTIVE or done >= through:
                return SeriesResult(current, [], [])
            days = occurrences(rule_of(current), through, since=max(done + ONE_DAY, clock.today()))
            room = current.room
            spans = {day: span_of(day, current.start_time, current.end_time) for day in days}
            refused = {
                day for day, (start, end) in spans.items() if _refused(room, start, end, now)
            }
            conflicts = _conflicts(room, {d: s for d, s in spans.items() if d not in refused})
            skipped = sorted(refused | set(conflicts))
            template = _template(current)
            attendees = list(template.attendees.all()) if template is not None else []
            bookings = [
                place_booking(
                    BookingRequest(
                        room=room,
                        starts_at=spans[day][0],
                        ends_at=spans[day][1],
                        title=current.title,
                        organiser=current.organiser,
                        attendees=attendees,
                        is_private=current.is_private,
                        note=template.note if template is not None else "",
                        wants_web_meeting=template.wants_web_meeting if template else False,
                        series_id=current.pk,
                        occurrence_date=day,
                    ),
                    booked_by=current.booked_by,
                )
                for day in days
                if day not in skipped
            ]
            current.generated_through = through
            current.excluded_dates = _iso(_excluded(current) | set(skipped))
            current.save(update_fields=["generated_through", "excluded_dates"])
            if bookings or skipped:
                record(
                    AuditAction.SERIES_CHANGED,
                    actor=Actor.system("定期予約の自動延長"),
                    target=current,
                    details={
                        "op": "extended",
                        "extended_through": through.isoformat(),
                        "dates": _iso(d for d in days if d not in skipped),
                        "skipped": _iso(skipped),
                    },
                )
                _notify(current, "series_changed", bookings, rooms=[room])
            if skipped:
                _mail(
                    current,
                    "定期予約の次の日は、他の予約と重なるか利用できないため予約しませんでした。"
                    "必要なら別の会議室か時間で予約してください。",
                    bookings,
                    dates=skipped,
                )
            return SeriesResult(current, bookings, skipped)

    return _retrying(series.room, attempt)


def _refused(room: Room, start: dt.datetime, end: dt.datetime, now: dt.datetime) -> bool:
    try:
        check_booking_rules(room, start, end, now=now)
    except BookingRefused:
        return True
    return False


# --- one occurrence -------------------------------------------------------------------------------


def do_cancel_occurrence(booking: Booking, *, acting_user: ActingUser, reason: str = "") -> bool:
    """Cancel one occurrence (``do_cancel_booking``) and make its date an exception of
    the series, so that nothing makes it again.  False when it was no longer live.  (To
    change one occurrence, call ``booking.check_change_booking``: it detaches it.)"""
    with transaction.atomic():
        cancelled = do_cancel_booking(booking, acting_user=acting_user, reason=reason)
        if cancelled and booking.series_id is not None and booking.occurrence_date is not None:
            series = BookingSeries.objects.select_for_update().get(pk=booking.series_id)
            series.excluded_dates = _iso(_excluded(series) | {booking.occurrence_date})
            series.save(update_fields=["excluded_dates"])
    return cancelled


# --- changing -------------------------------------------------------------------------------------


def check_change_series(
    series: BookingSeries,
    *,
    scope: str = "all",
    from_date: dt.date | None = None,
    acting_user: User,
    title: str | None = None,
    start_time: dt.time | None = None,
    end_time: dt.time | None = None,
    room: Room | None = None,
    attendees: Sequence[User] | None = None,
    is_private: bool | None = None,
    note: str | None = None,
) -> SeriesResult:
    """Change the future live occurrences of a series that were not changed on their own
    (detached ones keep their changes).

    ``scope="all"``: every such occurrence, and the series itself.  ``"following"``: the
    series is split at ``from_date``; the old one ends the day before, a new series (same
    rule, the new values) starts at the rule's first date on or after ``from_date`` and
    takes over the occurrences from then on (each keeps its id and calendar UID).

    The occurrences are moved under the lock of both rooms, all or nothing: a taken time
    refuses the change with a ``BookingConflict`` naming every taken time.  Returns the
    series that now holds the changed occurrences."""
    if scope not in SCOPES:
        raise BookingRefused("変更の範囲が正しくありません。", "Unknown scope.")
    if scope == "following" and from_date is None:
        raise BookingRefused("どの日以降を変更するか指定してください。", "Give a from date.")
    if title is not None and not title.strip():
        raise BookingRefused("件名を入力してください。", "Enter a title.")
    new_room = room or series.room
    new_start, new_end = start_time or series.start_time, end_time or series.end_time
    _check_times(new_start, new_end)
    now = clock.now()

    def attempt() -> SeriesResult:
        with transaction.atomic():
            lock_rooms([series.room_id, new_room.pk])
            current = _locked(series)
            if current.status == BookingSeries.Status.CANCELLED:
                raise BookingRefused(
                    "この定期予約は取り消されています。", "This series was cancelled."
                )
            if current.room_id != series.room_id:
                # Moved by someone else since it was read: the rooms locked above (and
                # the room this change keeps) may be the wrong ones.
                raise BookingRefused(
                    "この定期予約は他の人が変更しました。画面を更新してからやり直してください。",
                    "Someone else changed this series. Reload the page and try again.",
                )
            old_room = current.room
            target, split_from = current, None
            if scope == "following" and from_date is not None:
                target, split_from = _split(current, from_date), current
            template = _template(target)
            people = set(template.attendees.values_list("pk", flat=True)) if template else set()
            targets = list(
                Booking.objects.select_related("room")
                .filter(series=target, status__in=Booking.LIVE, detached=False, starts_at__gt=now)
                .order_by("starts_at")
            )
            spans = {
                b.pk: span_of(
                    b.occurrence_date or clock.local(b.starts_at).date(), new_start, new_end
                )
                for b in targets
            }
            for start, end in spans.values():
                check_booking_rules(new_room, start, end, now=now)
            conflicts = _conflicts(new_room, spans, exclude=[b.pk for b in targets])
            if conflicts:
                raise BookingConflict(_flatten(conflicts))
            fields = _changed_fields(target, new_room, new_start, new_end, title, is_private)
            for booking in targets:
                _move(booking, new_room, spans[booking.pk], title, is_private, note)
                if attendees is not None:
                    booking.attendees.set(
                        sorted({u.pk for u in attendees} - {booking.organiser_id})
                    )
            target.room, target.start_time, target.end_time = new_room, new_start, new_end
            if title is not None:
                target.title = title.strip()[:200]
            if is_private is not None:
                target.is_private = is_private
            target.save(update_fields=["room", "start_time", "end_time", "title", "is_private"])
            if note is not None:
                fields.append("note")
            if attendees is not None:
                fields.append("attendees")
                people |= {u.pk for u in attendees}
            record(
                AuditAction.SERIES_CHANGED,
                actor=acting_user,
                target=target,
                details={
                    "op": "changed",
                    "scope": scope,
                    "from_date": from_date.isoformat() if from_date else None,
                    "split_from": split_from.pk if split_from else None,
                    "fields": fields,
                    "room": new_room.code,
                    "start_time": f"{new_start:%H:%M}",
                    "end_time": f"{new_end:%H:%M}",
                    "dates": _iso(b.occurrence_date for b in targets if b.occurrence_date),
                },
            )
            _notify(target, "series_changed", targets, rooms=[old_room, new_room], extra=people)
            if targets:
                _mail(
                    target,
                    "定期予約が変更されました。",
                    targets,
                    dates=[b.occurrence_date for b in targets if b.occurrence_date],
                )
            return SeriesResult(target, targets, [])

    return _retrying(new_room, attempt)


def _split(current: BookingSeries, from_date: dt.date) -> BookingSeries:
    """End ``current`` before ``from_date`` and make the series that continues it; the
    occurrences from ``from_date`` on move to the new series.  Returns ``current`` itself
    when ``from_date`` is on or before its first date (nothing to keep)."""
    rule = rule_of(current)
    whole = replace(rule, excluded_dates=frozenset())
    # The new series starts on a date the rule gives, so that "every 2nd week" or "every
    # 3rd month" keeps its rhythm (both count from the first date).
    first = next_date(whole, from_date)
    if first is None:
        raise BookingRefused(
            "指定した日以降にこの定期予約の予定はありません。",
            "The series has no date on or after that day.",
        )
    if first <= current.first_date:
        return current
    before = len(occurrences(whole, first - ONE_DAY))
    new = BookingSeries.objects.create(
        room=current.room,
        organiser=current.organiser,
        booked_by=current.booked_by,
        title=current.title,
        is_private=current.is_private,
        frequency=current.frequency,
        interval=current.interval,
        weekdays=list(rule.weekdays),
        first_date=first,
        until_date=current.until_date,
        count=current.count - before if current.count is not None else None,
        start_time=current.start_time,
        end_time=current.end_time,
        excluded_dates=_iso(d for d in rule.excluded_dates if d >= first),
        generated_through=current.generated_through,
        created_at=clock.now(),
    )
    current.until_date, current.count = first - ONE_DAY, None
    current.excluded_dates = _iso(d for d in rule.excluded_dates if d < first)
    current.save(update_fields=["until_date", "count", "excluded_dates"])
    Booking.objects.filter(series=current, occurrence_date__gte=first).update(series=new)
    return new


def _move(
    booking: Booking,
    room: Room,
    span: tuple[dt.datetime, dt.datetime],
    title: str | None,
    is_private: bool | None,
    note: str | None,
) -> None:
    """Re-place one occurrence (the rooms are locked and the time checked free), with the
    approval rule of ``check_change_booking``."""
    start, end = span
    if room.pk != booking.room_id or start != booking.starts_at or end != booking.ends_at:
        if room.requires_approval and (
            room.pk != booking.room_id or booking.status == Booking.Status.PENDING
        ):
            booking.status = Booking.Status.PENDING
        elif not room.requires_approval:
            booking.status = Booking.Status.CONFIRMED
        booking.room, booking.starts_at, booking.ends_at = room, start, end
        booking.block_start, booking.block_end = block_of(room, start, end)
        booking.release_due_at = release_due_at(room, start, end, booking.created_at)
    if title is not None:
        booking.title = title.strip()[:200]
    if is_private is not None:
        booking.is_private = is_private
    if note is not None:
        booking.note = note
    booking.ical_sequence += 1
    booking.save(
        update_fields=[
            "room",
            "starts_at",
            "ends_at",
            "block_start",
            "block_end",
            "release_due_at",
            "status",
            "title",
            "is_private",
            "note",
            "ical_sequence",
        ]
    )


def _changed_fields(
    series: BookingSeries,
    room: Room,
    start: dt.time,
    end: dt.time,
    title: str | None,
    is_private: bool | None,
) -> list[str]:
    fields = []
    if room.pk != series.room_id:
        fields.append("room")
    if (start, end) != (series.start_time, series.end_time):
        fields.append("time")
    if title is not None and title.strip()[:200] != series.title:
        fields.append("title")
    if is_private is not None and is_private != series.is_private:
        fields.append("is_private")
    return fields


# --- cancelling -----------------------------------------------------------------------------------


def do_cancel_series(
    series: BookingSeries,
    *,
    scope: str = "all",
    from_date: dt.date | None = None,
    acting_user: ActingUser,
    reason: str = "",
) -> list[Booking]:
    """Cancel the future live occurrences of a series (all, or those from ``from_date``
    on; changed ones too).  Past and running occurrences stay as history.  ``"all"``
    marks the series cancelled; ``"following"`` ends it the day before ``from_date``.
    Returns the cancelled occurrences.  The conditional UPDATE decides against a racing
    cancel or release, so each occurrence is cancelled once."""
    if scope not in SCOPES:
        raise BookingRefused("取消の範囲が正しくありません。", "Unknown scope.")
    if scope == "following" and from_date is None:
        raise BookingRefused("どの日以降を取り消すか指定してください。", "Give a from date.")
    now = clock.now()
    # Retried on PostgreSQL: this takes the series row and then its bookings, while a
    # release takes a booking and then its series (a deadlock one of the two must retry).
    return _retrying(
        series.room,
        lambda: _cancel_series(series, scope, from_date, acting_user, reason, now),
    )


def cancel_series_after_no_shows(series: BookingSeries, *, count: int) -> list[Booking]:
    """Cancel the rest of a series whose bookings went unused ``count`` times in a row
    (called inside the release's transaction, by the system)."""
    reason = f"{count}回続けて使われなかったため（自動解放）"
    cancelled = _cancel_series(
        series, "all", None, Actor.system("会議室の自動解放"), reason, clock.now()
    )
    notifications.series_cancelled(series, limit=count)
    return cancelled


def _cancel_series(
    series: BookingSeries,
    scope: str,
    from_date: dt.date | None,
    acting_user: ActingUser,
    reason: str,
    now: dt.datetime,
) -> list[Booking]:
    with transaction.atomic():
        current = _locked(series)
        live = Booking.objects.filter(series=current, status__in=Booking.LIVE, starts_at__gt=now)
        if scope == "following" and from_date is not None:
            live = live.filter(occurrence_date__gte=from_date)
        ids = list(live.values_list("pk", flat=True))
        Booking.objects.filter(pk__in=ids, status__in=Booking.LIVE).update(
            status=Booking.Status.CANCELLED,
            cancelled_at=now,
            ical_sequence=F("ical_sequence") + 1,
        )
        cancelled = list(
            Booking.objects.select_related("room").filter(pk__in=ids).order_by("starts_at")
        )
        template = _template(current)
        people = set(template.attendees.values_list("pk", flat=True)) if template else set()
        if scope == "all" or (from_date is not None and from_date <= current.first_date):
            current.status = BookingSeries.Status.CANCELLED
        elif from_date is not None:
            current.until_date = from_date - ONE_DAY
            if current.count is not None:
                whole = replace(rule_of(current), excluded_dates=frozenset())
                current.count = len(occurrences(whole, current.until_date))
        current.save(update_fields=["status", "until_date", "count"])
        dates = [b.occurrence_date for b in cancelled if b.occurrence_date]
        record(
            AuditAction.SERIES_CANCELLED,
            actor=acting_user,
            target=current,
            details={
                "scope": scope,
                "from_date": from_date.isoformat() if from_date else None,
                "dates": _iso(dates),
                "reason": reason[:300],
            },
        )
        rooms = {b.room_id: b.room for b in cancelled} or {current.room_id: current.room}
        _notify(current, "series_cancelled", cancelled, rooms=rooms.values(), extra=people)
        if cancelled:
            extra = (f"理由: {reason}",) if reason else ()
            _mail(current, "定期予約が取り消されました。", cancelled, dates=dates, extra=extra)
    return cancelled


# --- helpers --------------------------------------------------------------------------------------


def _rule(**fields: Any) -> Rule:
    """The rule with its monthly position written out, so that a later split (whose first
    date differs) keeps it."""
    try:
        rule = Rule(**fields)
    except RuleError as exc:
        raise BookingRefused(exc.message, exc.message_en) from exc
    if rule.frequency == MONTHLY_BY_DATE:
        return replace(rule, weekdays=(rule.month_day,))
    if rule.frequency == MONTHLY_BY_WEEKDAY:
        return replace(rule, weekdays=rule.month_weekday)
    return replace(rule, weekdays=tuple(sorted(set(rule.weekdays))))


def _check_times(start: dt.time, end: dt.time) -> None:
    if end <= start:
        raise BookingRefused(
            "終了時刻は開始時刻より後にしてください。", "The end must be after the start."
        )


def _locked(series: BookingSeries) -> BookingSeries:
    return (
        BookingSeries.objects.select_for_update()
        .select_related("room__floor", "organiser", "booked_by")
        .get(pk=series.pk)
    )


def _retrying(room: Room, attempt: Callable[[], T]) -> T:
    now = clock.now()
    return with_booking_retries(room, now, now + dt.timedelta(minutes=1), attempt)


def _conflicts(
    room: Room,
    spans: Mapping[K, tuple[dt.datetime, dt.datetime]],
    *,
    exclude: Iterable[int] = (),
) -> dict[K, list[Conflict]]:
    """The taken times of each span in ``room`` (one query for all of them)."""
    if not spans:
        return {}
    blocks = {key: block_of(room, start, end) for key, (start, end) in spans.items()}
    low, high = min(b[0] for b in blocks.values()), max(b[1] for b in blocks.values())
    rows = list(
        Booking.objects.filter(
            room=room, status__in=Booking.LIVE, block_start__lt=high, block_end__gt=low
        )
        .exclude(pk__in=list(exclude))
        .order_by("starts_at")
        .values_list("starts_at", "ends_at", "block_start", "block_end")
    )
    found: dict[K, list[Conflict]] = {}
    for key, (start, end) in blocks.items():
        hits = [Conflict(s, e) for s, e, bs, be in rows if bs < end and be > start]
        if hits:
            found[key] = hits
    return found


def _flatten(conflicts: Mapping[Any, list[Conflict]]) -> list[Conflict]:
    return sorted({c for hits in conflicts.values() for c in hits}, key=lambda c: c.starts_at)


def _template(series: BookingSeries) -> Booking | None:
    """The occurrence whose people and note new occurrences copy (the series row has
    neither): the latest one not changed on its own."""
    return (
        Booking.objects.filter(series=series, detached=False).order_by("-occurrence_date").first()
    )


def _excluded(series: BookingSeries) -> set[dt.date]:
    return {dt.date.fromisoformat(d) for d in series.excluded_dates or ()}


def _iso(dates: Iterable[dt.date]) -> list[str]:
    return sorted({d.isoformat() for d in dates})


def _holidays(days: Sequence[dt.date]) -> dict[dt.date, str]:
    if not days:
        return {}
    return {d: n for d, n in holidays_between(min(days), max(days)).items() if d in set(days)}


def _details(
    series: BookingSeries,
    *,
    dates: Sequence[dt.date],
    skipped: Sequence[dt.date],
    holidays: Mapping[dt.date, str],
    first: Booking,
) -> dict[str, Any]:
    return {
        "room": series.room.code,
        "rule": describe(rule_of(series)),
        "start_time": f"{series.start_time:%H:%M}",
        "end_time": f"{series.end_time:%H:%M}",
        "status": first.status,
        "organiser_id": series.organiser_id,
        "dates": _iso(dates),
        "skipped": _iso(skipped),
        "holidays": _iso(holidays),
    }


def _notify(
    series: BookingSeries,
    op: str,
    bookings: Sequence[Booking],
    *,
    rooms: Iterable[Room],
    extra: Iterable[int] = (),
) -> None:
    """One event to the series' people and one floor-board refresh per room: an event per
    occurrence would flood every stream with dozens of identical refreshes."""
    people = {series.organiser_id, series.booked_by_id, *extra}
    for booking in bookings[:1]:
        people.update(booking.attendees.values_list("pk", flat=True))
    send_event_on_commit(
        {"type": "rooms", "op": op, "series_id": series.pk, "room_id": series.room_id}, people
    )
    for room in {room.pk: room for room in rooms}.values():
        events.notify_occupancy_changed(room)


def _mail(
    series: BookingSeries,
    headline: str,
    bookings: Sequence[Booking],
    *,
    dates: Sequence[dt.date],
    skipped: Sequence[dt.date] = (),
    holidays: Mapping[dt.date, str] | None = None,
    extra: Sequence[str] = (),
) -> None:
    """One e-mail for a whole series action, to the organiser and the attendees."""
    people = [series.organiser]
    if bookings:
        people += list(bookings[0].attendees.all())
    room = series.room
    lines = [
        headline,
        "",
        f"件名: {series.title}",
        f"会議室: {room.floor} {room.name}",
        f"繰り返し: {describe(rule_of(series))} {series.start_time:%H:%M}〜{series.end_time:%H:%M}",
        f"主催者: {series.organiser.display_name}",
        f"対象日: {_dates_text(dates)}",
    ]
    if skipped:
        lines.append(f"他の予約と重なるため予約しなかった日: {_dates_text(skipped)}")
    if holidays:
        names = "、".join(f"{d.month}/{d.day} {name}" for d, name in sorted(holidays.items()))
        lines.append(f"祝日・休庁日にあたる日: {names}")
    lines += [*extra, ""]
    if bookings:
        lines += [f"{settings.SITE_URL}/rooms/bookings/{bookings[0].pk}/", ""]
    lines.append("-- 役場 Yakuba 会議室予約")
    queue_mail(
        to=[person.email for person in people if person.email],
        subject=f"【定期予約】{series.title}",
        body="\n".join(lines),
    )


def _dates_text(dates: Sequence[dt.date]) -> str:
    ordered = sorted(dates)
    more = f" ほか{len(ordered) - MAIL_DATES}日" if len(ordered) > MAIL_DATES else ""
    return date_labels(ordered[:MAIL_DATES]) + more
