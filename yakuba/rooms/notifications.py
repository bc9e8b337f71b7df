"""E-mail to the people of a booking (through the outbox, so never inside the request's
time), with an .ics attached so that a desktop calendar can hold the booking, and a chat
message in the organiser's お知らせ for what they must act on (a decision, a release, a
series about to be cancelled).  Called inside the action's transaction."""

from __future__ import annotations

from collections.abc import Sequence

from django.conf import settings

from yakuba.chat.notices import notify_person
from yakuba.directory.models import User
from yakuba.lib import clock
from yakuba.lib.wareki import wareki
from yakuba.mail.outbox import Attachment, queue_mail
from yakuba.rooms import ical
from yakuba.rooms.models import Booking, BookingSeries


def _when(booking: Booking) -> str:
    start, end = clock.local(booking.starts_at), clock.local(booking.ends_at)
    return f"{wareki(start, weekday=True)} {start:%H:%M}〜{end:%H:%M}"


def _people_addresses(booking: Booking, attendees: Sequence[User] | None = None) -> list[str]:
    people = [booking.organiser, *(booking.attendees.all() if attendees is None else attendees)]
    return [person.email for person in people if person.email]


def _body(booking: Booking, headline: str, *extra: str) -> str:
    lines = [
        headline,
        "",
        f"件名: {booking.title}",
        f"会議室: {booking.room.floor} {booking.room.name}",
        f"日時: {_when(booking)}",
        f"主催者: {booking.organiser.display_name}",
        *extra,
        "",
        f"{settings.SITE_URL}/rooms/bookings/{booking.pk}/",
        "",
        "-- 役場 Yakuba 会議室予約",
    ]
    return "\n".join(lines)


def _chat(booking: Booking, headline: str) -> None:
    """The organiser's chat notice: the headline, what and when, and the link."""
    notify_person(
        booking.organiser,
        f"{headline}\n{booking.title}（{booking.room.name}、{_when(booking)}）\n"
        f"{settings.SITE_URL}/rooms/bookings/{booking.pk}/",
        label="会議室予約",
    )


def _ics(booking: Booking, method: str) -> list[Attachment]:
    return [
        Attachment(
            "booking.ics",
            f"text/calendar; method={method}; charset=utf-8",
            ical.booking_attachment_text(booking, method=method),
        )
    ]


def booking_created(booking: Booking, attendees: Sequence[User] | None = None) -> None:
    headline = (
        "会議室の予約を受け付けました。施設管理者の承認をお待ちください。"
        if booking.status == Booking.Status.PENDING
        else "会議室を予約しました。"
    )
    queue_mail(
        to=_people_addresses(booking, attendees),
        subject=f"【会議室予約】{booking.title}",
        body=_body(booking, headline),
        attachments=_ics(booking, "REQUEST"),
    )


def booking_changed(booking: Booking) -> None:
    queue_mail(
        to=_people_addresses(booking),
        subject=f"【会議室予約の変更】{booking.title}",
        body=_body(booking, "会議室の予約が変更されました。"),
        attachments=_ics(booking, "REQUEST"),
    )


def booking_cancelled(booking: Booking, *, reason: str = "") -> None:
    extra = (f"理由: {reason}",) if reason else ()
    queue_mail(
        to=_people_addresses(booking),
        subject=f"【会議室予約の取消】{booking.title}",
        body=_body(booking, "会議室の予約が取り消されました。", *extra),
        attachments=_ics(booking, "CANCEL"),
    )


def attendees_removed(booking: Booking, removed: Sequence[User]) -> None:
    """People taken off a booking: their invitation is withdrawn (METHOD:CANCEL)."""
    queue_mail(
        to=[person.email for person in removed if person.email],
        subject=f"【会議室予約】出席者から外れました: {booking.title}",
        body=_body(booking, "この会議の出席者から外れました。予定表から削除されます。"),
        attachments=_ics(booking, "CANCEL"),
    )


def booking_decided(booking: Booking) -> None:
    approved = booking.status == Booking.Status.CONFIRMED
    headline = (
        "会議室の予約が承認されました。" if approved else "会議室の予約は承認されませんでした。"
    )
    extra = (f"理由: {booking.decision_note}",) if booking.decision_note else ()
    queue_mail(
        to=[booking.organiser.email],
        subject=f"【会議室予約の{'承認' if approved else '却下'}】{booking.title}",
        body=_body(booking, headline, *extra),
        attachments=_ics(booking, "REQUEST" if approved else "CANCEL"),
    )
    _chat(booking, headline)


def booking_released(booking: Booking) -> None:
    minutes = settings.ROOMS_RELEASE_GRACE_MINUTES
    headline = (
        f"開始から{minutes}分たってもチェックインがなかったため、予約を解放しました。"
        "会議室を使う場合は、空いていれば改めて予約してください。"
    )
    queue_mail(
        to=[booking.organiser.email],
        subject=f"【会議室の自動解放】{booking.title}",
        body=_body(booking, headline),
        attachments=_ics(booking, "CANCEL"),
    )
    _chat(booking, headline)


def series_warning(booking: Booking, *, no_shows: int, limit: int) -> None:
    headline = (
        f"この定期予約は{no_shows}回続けて使われませんでした。"
        f"あと1回使われないと（{limit}回連続）、定期予約全体が取り消されます。"
    )
    queue_mail(
        to=[booking.organiser.email],
        subject=f"【定期予約の未使用】{booking.title}",
        body=_body(booking, headline),
    )
    _chat(booking, headline)


def series_cancelled(series: BookingSeries, *, limit: int) -> None:
    """Chat only: the e-mail of a cancelled series (with its dates) is written by the
    series action itself."""
    notify_person(
        series.organiser,
        f"{limit}回続けて使われなかったため、この定期予約を取り消しました。\n"
        f"{series.title}（{series.room.name}）",
        label="会議室予約",
    )
