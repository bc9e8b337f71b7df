"""The meeting pages: my meetings (with where each one's minutes stand), registering a
meeting (from scratch or from a room booking), changing and deleting one, and the
overview that leads to its recordings, transcript and minutes.  Views parse
(``minutes.forms``), fetch through ``minutes.access``, call one action and redirect; a
meeting that cannot be saved re-renders the form with what was typed and the Japanese
message (400)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Page, Paginator
from django.db.models import Exists, OuterRef, Prefetch, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, URLPattern, path, reverse
from django.utils.translation import get_language
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods

from yakuba.audit.record import record_denial
from yakuba.directory.models import User
from yakuba.lib import clock
from yakuba.minutes import events
from yakuba.minutes.access import (
    access_meeting,
    access_meeting_for_edit,
    access_minutes_feature,
    is_auditor,
    is_staff_member,
    may_approve_minutes,
    may_edit_meeting,
    readable_meetings,
)
from yakuba.minutes.actions.meetings import (
    MeetingError,
    do_change_meeting,
    do_create_meeting,
    do_delete_meeting,
    initial_from_booking,
    may_delete_meeting,
)
from yakuba.minutes.forms import MeetingForm, people_text
from yakuba.minutes.models import Meeting, Minutes, Recording, Segment, TranscriptionJob
from yakuba.rooms.access import access_booking
from yakuba.rooms.models import Booking

PER_PAGE = 20


def _person(request: HttpRequest) -> User:
    """The signed-in staff member or guest (403, audited, for anyone else)."""
    access_minutes_feature(request.user)
    assert isinstance(request.user, User)
    return request.user


def _staff(request: HttpRequest) -> User:
    """Only staff register meetings: a guest reads the meetings they attended."""
    user = _person(request)
    if not is_staff_member(user):
        record_denial(actor=user, what="minutes.create")
        raise PermissionDenied("会議を登録できるのは職員だけです。")
    return user


def _url(name: str, *args: Any) -> str:
    """The address of a page another part of the minutes app provides, or "" while it
    does not exist (the link is then left out)."""
    try:
        return reverse(name, args=args)
    except NoReverseMatch:
        return ""


def _error_text(exc: MeetingError) -> str:
    language = get_language() or "ja"
    return exc.message if language.startswith("ja") else exc.english


# --- my meetings -------------------------------------------------------------------------


def _with_status(meetings: QuerySet[Meeting]) -> QuerySet[Meeting]:
    """What ``status_of`` reads, for a whole page in four queries."""
    return (
        meetings.select_related("organiser", "minutes")
        .annotate(
            has_recordings=Exists(Recording.objects.filter(meeting=OuterRef("pk"))),
            has_transcript=Exists(Segment.objects.filter(meeting=OuterRef("pk"), recognised=True)),
        )
        .prefetch_related(
            Prefetch(
                "jobs",
                queryset=TranscriptionJob.objects.filter(status__in=TranscriptionJob.ACTIVE),
                to_attr="active_jobs",
            )
        )
    )


def status_of(meeting: Meeting) -> tuple[str, str]:
    """(label, key) of where the meeting's record stands: 録音なし → 録音あり → 文字起こし中
    n% → 文字起こし済 → 議事録 作成中 → 確認依頼 → 承認済.  A running transcription shows
    before a draft, since the draft is about to change under it."""
    minutes: Minutes | None = getattr(meeting, "minutes", None)
    if minutes is not None and minutes.status == Minutes.Status.APPROVED:
        return _("承認済"), "approved"
    if minutes is not None and minutes.status == Minutes.Status.REVIEW:
        return _("確認依頼"), "review"
    jobs: list[TranscriptionJob] = getattr(meeting, "active_jobs", [])
    if jobs:
        return _("文字起こし中 %(percent)d%%") % {"percent": jobs[0].percent}, "transcribing"
    if minutes is not None:
        return _("議事録 作成中"), "draft"
    if getattr(meeting, "has_transcript", False):
        return _("文字起こし済"), "transcribed"
    if getattr(meeting, "has_recordings", False):
        return _("録音あり"), "recorded"
    return _("録音なし"), "empty"


def _role(user: User, meeting: Meeting, attended: set[int]) -> str:
    if meeting.organiser_id == user.pk:
        return _("主催")
    if meeting.pk in attended:
        return _("出席")
    if meeting.created_by_id == user.pk:
        return _("登録")
    return _("閲覧")


@login_required
@require_GET
def home(request: HttpRequest) -> HttpResponse:
    user = _person(request)
    meetings = _with_status(readable_meetings(user))
    page: Page[Meeting] = Paginator(meetings, PER_PAGE).get_page(request.GET.get("page"))
    attended = set(
        Meeting.attendees.through.objects.filter(
            user=user, meeting_id__in=[m.pk for m in page.object_list]
        ).values_list("meeting_id", flat=True)
    )
    rows = [
        {"meeting": meeting, "status": status_of(meeting), "role": _role(user, meeting, attended)}
        for meeting in page.object_list
    ]
    return render(
        request,
        "minutes/meetings/home.html",
        {
            "active_nav": "minutes",
            "page": page,
            "rows": rows,
            "may_create": is_staff_member(user),
            "is_auditor": is_auditor(user),
            "search_url": _url("minutes:search"),
            "dictionary_url": _url("minutes:dictionary") if is_staff_member(user) else "",
            "today": clock.today(),
        },
    )


# --- the overview ------------------------------------------------------------------------


@login_required
@require_GET
def meeting_detail(request: HttpRequest, meeting_id: int) -> HttpResponse:
    user = _person(request)
    meeting = access_meeting(user, meeting_id)
    annotated = _with_status(Meeting.objects.filter(pk=meeting.pk)).first()
    status = status_of(annotated) if annotated is not None else ("", "")
    return render(
        request,
        "minutes/meetings/detail.html",
        {
            "active_nav": "minutes",
            "meeting": meeting,
            "status": status,
            "attendees": list(meeting.attendees.order_by("display_name", "pk")),
            "absentees": list(meeting.absentees.order_by("display_name", "pk")),
            "other_attendees": [
                line.strip() for line in meeting.other_attendees.splitlines() if line.strip()
            ],
            "may_edit": may_edit_meeting(user, meeting),
            "may_delete": may_delete_meeting(user, meeting),
            "may_approve": may_approve_minutes(user, meeting),
            # The progress bar of a running transcription follows the meeting's topic.
            "realtime_topics": events.meeting_topic(meeting.pk),
            "transcript_url": _url("minutes:transcript", meeting.pk),
            "document_url": _url("minutes:document", meeting.pk),
        },
    )


# --- registering and changing ------------------------------------------------------------


def _render_form(
    request: HttpRequest,
    form: MeetingForm,
    *,
    status: int = 200,
    meeting: Meeting | None = None,
    booking: Booking | None = None,
) -> HttpResponse:
    if meeting is not None:
        action = reverse("minutes:edit_meeting", args=[meeting.pk])
    elif booking is not None:
        action = reverse("minutes:from_booking", args=[booking.pk])
    else:
        action = reverse("minutes:create")
    earlier: list[Meeting] = []
    if booking is not None:
        assert isinstance(request.user, User)
        earlier = list(readable_meetings(request.user).filter(booking=booking))
    return render(
        request,
        "minutes/meetings/form.html",
        {
            "active_nav": "minutes",
            "form": form,
            "meeting": meeting,
            "booking": booking,
            "earlier": earlier,
            "action": action,
        },
        status=status,
    )


def _refuse(
    request: HttpRequest,
    form: MeetingForm,
    exc: MeetingError,
    *,
    meeting: Meeting | None = None,
    booking: Booking | None = None,
) -> HttpResponse:
    field = exc.field if exc.field in form.fields else None
    form.add_error(field, _error_text(exc))
    return _render_form(request, form, status=400, meeting=meeting, booking=booking)


def _create(request: HttpRequest, user: User, booking: Booking | None) -> HttpResponse:
    form = MeetingForm(request.POST, viewer=user)
    if not form.is_valid():
        return _render_form(request, form, status=400, booking=booking)
    data = form.cleaned_data
    starts_at, ends_at = form.span()
    try:
        meeting = do_create_meeting(
            user=user,
            title=data["title"],
            starts_at=starts_at,
            ends_at=ends_at,
            place=data["place"],
            attendees=data["attendees_users"],
            absentees=data["absentees_users"],
            other_attendees=data["other_attendees"],
            agenda=data["agenda"],
            organiser=data["organiser_user"],
            booking=booking,
        )
    except MeetingError as exc:
        return _refuse(request, form, exc, booking=booking)
    messages.success(request, _("会議「%(title)s」を登録しました。") % {"title": meeting.title})
    return redirect("minutes:meeting", meeting_id=meeting.pk)


def _initial_times(starts_at: dt.datetime, ends_at: dt.datetime) -> dict[str, Any]:
    start, end = clock.local(starts_at), clock.local(ends_at)
    return {"date": start.date(), "start": start.time(), "end": end.time()}


@login_required
@require_http_methods(["GET", "POST"])
def create(request: HttpRequest) -> HttpResponse:
    user = _staff(request)
    if request.method == "POST":
        return _create(request, user, None)
    return _render_form(
        request,
        MeetingForm(viewer=user, initial={"date": clock.today(), "attendees": user.username}),
    )


@login_required
@require_http_methods(["GET", "POST"])
def from_booking(request: HttpRequest, booking_id: int) -> HttpResponse:
    user = _staff(request)
    booking = access_booking(user, booking_id)
    if request.method == "POST":
        return _create(request, user, booking)
    start = initial_from_booking(booking)
    organiser: User = start["organiser"]
    initial = {
        "title": start["title"],
        "place": start["place"],
        "attendees": people_text(start["attendees"]),
        "organiser": "" if organiser.pk == user.pk else organiser.username,
        **_initial_times(start["starts_at"], start["ends_at"]),
    }
    return _render_form(request, MeetingForm(viewer=user, initial=initial), booking=booking)


@login_required
@require_http_methods(["GET", "POST"])
def edit_meeting(request: HttpRequest, meeting_id: int) -> HttpResponse:
    user = _person(request)
    meeting = access_meeting_for_edit(user, meeting_id)
    if request.method != "POST":
        initial = {
            "title": meeting.title,
            "place": meeting.place,
            "attendees": people_text(meeting.attendees.order_by("pk")),
            "absentees": people_text(meeting.absentees.order_by("pk")),
            "other_attendees": meeting.other_attendees,
            "agenda": meeting.agenda,
            **_initial_times(meeting.starts_at, meeting.ends_at),
        }
        form = MeetingForm(viewer=user, editing=True, initial=initial)
        return _render_form(request, form, meeting=meeting)
    form = MeetingForm(request.POST, viewer=user, editing=True)
    if not form.is_valid():
        return _render_form(request, form, status=400, meeting=meeting)
    data = form.cleaned_data
    starts_at, ends_at = form.span()
    try:
        changed = do_change_meeting(
            meeting,
            user=user,
            title=data["title"],
            starts_at=starts_at,
            ends_at=ends_at,
            place=data["place"],
            attendees=data["attendees_users"],
            absentees=data["absentees_users"],
            other_attendees=data["other_attendees"],
            agenda=data["agenda"],
        )
    except MeetingError as exc:
        return _refuse(request, form, exc, meeting=meeting)
    if changed:
        messages.success(request, _("会議の内容を変更しました。"))
    else:
        messages.info(request, _("変更はありませんでした。"))
    return redirect("minutes:meeting", meeting_id=meeting.pk)


# --- deleting ----------------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def delete_meeting(request: HttpRequest, meeting_id: int) -> HttpResponse:
    """GET asks for confirmation; POST deletes."""
    user = _person(request)
    meeting = access_meeting(user, meeting_id)
    if not may_delete_meeting(user, meeting):
        record_denial(actor=user, what="minutes.delete", target=meeting)
        raise PermissionDenied(
            "会議を削除できるのは主催者だけで、承認済の議事録がある会議は削除できません。"
        )
    error = ""
    if request.method == "POST":
        try:
            do_delete_meeting(meeting, user=user)
        except MeetingError as exc:
            error = _error_text(exc)
        else:
            messages.success(
                request, _("会議「%(title)s」を削除しました。") % {"title": meeting.title}
            )
            return redirect("minutes:home")
    return render(
        request,
        "minutes/meetings/delete.html",
        {
            "active_nav": "minutes",
            "meeting": meeting,
            "error": error,
            "recording_count": meeting.recordings.count(),
        },
        status=409 if error else 200,
    )


urlpatterns: list[URLPattern] = [
    path("", home, name="home"),
    path("new/", create, name="create"),
    path("<int:meeting_id>/", meeting_detail, name="meeting"),
    path("<int:meeting_id>/edit/", edit_meeting, name="edit_meeting"),
    path("<int:meeting_id>/delete/", delete_meeting, name="delete_meeting"),
    path("booking/<int:booking_id>/", from_booking, name="from_booking"),
]
