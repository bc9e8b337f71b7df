"""Meetings: the header of the minutes (会議名, 日時, 場所, 出席者, 欠席者, 議題).

Every write here validates what it is given (a ``MeetingError`` carries the Japanese
message for people and the English for logs) and is audited in its own transaction.
The caller has fetched the meeting through ``minutes.access`` (``access_meeting_for_edit``
for a change); the actions check the rule again so that a CLI or API caller cannot skip it.
"""

from __future__ import annotations

import datetime as dt
import logging
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import transaction

from yakuba.audit.models import AuditAction
from yakuba.audit.record import record
from yakuba.directory.models import StaffProfile, User
from yakuba.minutes.access import is_staff_member, may_edit_meeting
from yakuba.minutes.models import Meeting, Minutes, Recording, TranscriptionJob
from yakuba.rooms.models import Booking

log = logging.getLogger(__name__)

# The header fields ``do_change_meeting`` accepts.
CHANGEABLE = (
    "title",
    "starts_at",
    "ends_at",
    "place",
    "attendees",
    "absentees",
    "other_attendees",
    "agenda",
)
TITLE_MAX = 200
PLACE_MAX = 200


class MeetingError(ValueError):
    """A meeting that cannot be saved as asked.  ``str(exc)`` is the English (logs);
    ``message`` is the Japanese a person reads; ``field`` names the form field at fault
    (None for the whole form)."""

    def __init__(self, message: str, english: str, *, field: str | None = None) -> None:
        super().__init__(english)
        self.message = message
        self.english = english
        self.field = field


# --- validation -----------------------------------------------------------------------


def _clean_header(
    *,
    title: str,
    starts_at: dt.datetime,
    ends_at: dt.datetime,
    place: str,
    attendees: Sequence[User],
    absentees: Sequence[User],
) -> str:
    """Raise ``MeetingError`` unless the header holds together; returns the title stripped."""
    title = title.strip()
    if not title:
        raise MeetingError(
            "会議名を入力してください。", "Enter the meeting's title.", field="title"
        )
    if len(title) > TITLE_MAX:
        raise MeetingError(
            f"会議名は{TITLE_MAX}文字以内にしてください。",
            f"The title must be at most {TITLE_MAX} characters.",
            field="title",
        )
    if len(place) > PLACE_MAX:
        raise MeetingError(
            f"場所は{PLACE_MAX}文字以内にしてください。",
            f"The place must be at most {PLACE_MAX} characters.",
            field="place",
        )
    if starts_at.tzinfo is None or ends_at.tzinfo is None:
        raise ValueError("meeting times must be timezone-aware")
    if ends_at <= starts_at:
        raise MeetingError(
            "終了日時は開始日時より後にしてください。",
            "The end must be after the start.",
            field="end",
        )
    _check_people(attendees, field="attendees", guests=True)
    _check_people(absentees, field="absentees", guests=False)
    both = {user.pk for user in attendees} & {user.pk for user in absentees}
    if both:
        names = "、".join(str(user) for user in attendees if user.pk in both)
        raise MeetingError(
            f"出席者と欠席者の両方に入っている人がいます（{names}）。どちらか一方にしてください。",
            "Someone is listed both as attending and as absent.",
            field="absentees",
        )
    return title


def _check_people(people: Sequence[User], *, field: str, guests: bool) -> None:
    """Attendees are active staff or guests; absentees are active staff."""
    kinds = {User.Kind.STAFF, User.Kind.GUEST} if guests else {User.Kind.STAFF}
    wrong = [user for user in people if not user.is_active or user.kind not in kinds]
    if wrong:
        names = "、".join(str(user) for user in wrong)
        raise MeetingError(
            f"指定できない人が含まれています（{names}）。在職中の職員"
            + ("または招待済みのゲスト" if guests else "")
            + "を指定してください。",
            f"Inactive or unsupported users listed in {field}.",
            field=field,
        )


def _organiser_department(organiser: User) -> Any:
    """The organiser's primary 所属 (``StaffProfile.department``)."""
    profile = StaffProfile.objects.select_related("department").filter(user=organiser).first()
    if not is_staff_member(organiser) or profile is None:
        raise MeetingError(
            "主催者には在職中の職員を指定してください。",
            "The organiser must be an active staff member.",
            field="organiser",
        )
    return profile.department


def _unique(people: Iterable[User]) -> list[User]:
    seen: dict[int, User] = {}
    for user in people:
        seen.setdefault(user.pk, user)
    return list(seen.values())


# --- creating and changing ----------------------------------------------------------------


def do_create_meeting(
    *,
    user: User,
    title: str,
    starts_at: dt.datetime,
    ends_at: dt.datetime,
    place: str = "",
    attendees: Sequence[User] = (),
    absentees: Sequence[User] = (),
    other_attendees: str = "",
    agenda: str = "",
    organiser: User | None = None,
    booking: Booking | None = None,
) -> Meeting:
    """Create a meeting made by ``user`` (a staff member), organised by ``organiser``
    (``user`` when None).  Its 主催所属 is the organiser's primary 所属 at this moment.
    Raises ``MeetingError`` on bad input and ``PermissionDenied`` for anyone but staff."""
    if not is_staff_member(user):
        raise PermissionDenied("会議を登録できるのは職員だけです。")
    organiser = organiser or user
    department = _organiser_department(organiser)
    attendees, absentees = _unique(attendees), _unique(absentees)
    title = _clean_header(
        title=title,
        starts_at=starts_at,
        ends_at=ends_at,
        place=place,
        attendees=attendees,
        absentees=absentees,
    )
    with transaction.atomic():
        meeting = Meeting.objects.create(
            title=title,
            starts_at=starts_at,
            ends_at=ends_at,
            place=place.strip(),
            booking=booking,
            organiser=organiser,
            department=department,
            other_attendees=other_attendees.strip(),
            agenda=agenda.strip(),
            created_by=user,
        )
        meeting.attendees.set(attendees)
        meeting.absentees.set(absentees)
        record(
            AuditAction.MEETING_CREATED,
            actor=user,
            target=meeting,
            details={
                "title": title,
                "starts_at": starts_at.isoformat(),
                "ends_at": ends_at.isoformat(),
                "organiser": organiser.username,
                "department": department.code,
                "attendees": sorted(person.username for person in attendees),
                "absentees": sorted(person.username for person in absentees),
                "booking_id": booking.pk if booking is not None else None,
            },
        )
    return meeting


def do_change_meeting(meeting: Meeting, *, user: User, **fields: Any) -> list[str]:
    """Change the header fields given (any of ``CHANGEABLE``), with the validation of
    ``do_create_meeting``.  Only editors (``may_edit_meeting``) may, and not once the
    minutes are approved.  Returns the names of the fields that changed (none: nothing
    is written or audited)."""
    unknown = set(fields) - set(CHANGEABLE)
    if unknown:
        raise TypeError(f"do_change_meeting() got unknown fields: {sorted(unknown)}")
    if not may_edit_meeting(user, meeting):
        raise PermissionDenied(
            "編集できるのは主催者・作成者・出席者だけで、承認済の議事録は編集できません。"
        )
    attendees = _unique(fields.get("attendees", meeting.attendees.all()))
    absentees = _unique(fields.get("absentees", meeting.absentees.all()))
    title = _clean_header(
        title=fields.get("title", meeting.title),
        starts_at=fields.get("starts_at", meeting.starts_at),
        ends_at=fields.get("ends_at", meeting.ends_at),
        place=fields.get("place", meeting.place),
        attendees=attendees,
        absentees=absentees,
    )
    values: dict[str, Any] = {
        "title": title,
        "starts_at": fields.get("starts_at", meeting.starts_at),
        "ends_at": fields.get("ends_at", meeting.ends_at),
        "place": str(fields.get("place", meeting.place)).strip(),
        "other_attendees": str(fields.get("other_attendees", meeting.other_attendees)).strip(),
        "agenda": str(fields.get("agenda", meeting.agenda)).strip(),
    }
    changed = [name for name, value in values.items() if getattr(meeting, name) != value]
    details: dict[str, Any] = {
        name: _json(values[name]) for name in changed if name not in ("agenda", "other_attendees")
    }
    people_changes = _people_changes(meeting, attendees=attendees, absentees=absentees)
    changed += list(people_changes)
    details.update(people_changes)
    if not changed:
        return []
    with transaction.atomic():
        for name in changed:
            if name in values:
                setattr(meeting, name, values[name])
        scalar = [name for name in changed if name in values]
        if scalar:
            meeting.save(update_fields=scalar)
        if "attendees" in people_changes:
            meeting.attendees.set(attendees)
        if "absentees" in people_changes:
            meeting.absentees.set(absentees)
        record(
            AuditAction.MEETING_CHANGED,
            actor=user,
            target=meeting,
            details={"changed": changed, **details},
        )
    return changed


def _people_changes(
    meeting: Meeting, *, attendees: Sequence[User], absentees: Sequence[User]
) -> dict[str, dict[str, list[str]]]:
    """{"attendees": {"added": [...], "removed": [...]}, …} for the lists that changed."""
    changes: dict[str, dict[str, list[str]]] = {}
    for name, people in (("attendees", attendees), ("absentees", absentees)):
        before = dict(getattr(meeting, name).values_list("pk", "username"))
        after = {user.pk: user.username for user in people}
        added = sorted(after[pk] for pk in after.keys() - before.keys())
        removed = sorted(before[pk] for pk in before.keys() - after.keys())
        if added or removed:
            changes[name] = {"added": added, "removed": removed}
    return changes


def _json(value: Any) -> Any:
    return value.isoformat() if isinstance(value, dt.datetime) else value


# --- deleting ---------------------------------------------------------------------------


def may_delete_meeting(user: User, meeting: Meeting) -> bool:
    """The organiser, while the minutes are not approved."""
    return (
        is_staff_member(user)
        and user.pk == meeting.organiser_id
        and not Minutes.objects.filter(meeting=meeting, status=Minutes.Status.APPROVED).exists()
    )


def do_delete_meeting(meeting: Meeting, *, user: User) -> None:
    """Delete the meeting with its recordings, transcript and minutes.  Only its
    organiser may, while the minutes are not approved (approved minutes are a record
    the ward keeps) and while no transcription runs (the worker would lose its job under
    it).  The recordings' files are removed after the commit: a rollback keeps them."""
    if not may_delete_meeting(user, meeting):
        raise PermissionDenied(
            "会議を削除できるのは主催者だけで、承認済の議事録がある会議は削除できません。"
        )
    if TranscriptionJob.objects.filter(
        meeting=meeting, status__in=TranscriptionJob.ACTIVE
    ).exists():
        raise MeetingError(
            "文字起こしの処理中は削除できません。文字起こしを中止してから削除してください。",
            "A transcription is running: cancel it before deleting the meeting.",
        )
    with transaction.atomic():
        files = [
            path
            for pair in Recording.objects.filter(meeting=meeting).values_list(
                "file_path", "audio_path"
            )
            for path in pair
            if path
        ]
        details = {
            "title": meeting.title,
            "starts_at": meeting.starts_at.isoformat(),
            "recordings": Recording.objects.filter(meeting=meeting).count(),
        }
        record(AuditAction.MEETING_DELETED, actor=user, target=meeting, details=details)
        folder = meeting_folder(meeting)
        meeting.delete()
        transaction.on_commit(lambda: remove_media_files(files, folder=folder))


def meeting_folder(meeting: Meeting) -> str:
    """The folder under ``MINUTES_MEDIA_DIR`` where the meeting's uploads live
    (``actions.recordings``: ``meeting-<id>/``), with what an interrupted upload or
    decoding may have left there."""
    return f"meeting-{meeting.pk}"


def remove_media_files(paths: Iterable[str], *, folder: str = "") -> None:
    """Remove files under ``MINUTES_MEDIA_DIR`` (paths relative to it, or absolute inside
    it), then the folders they leave empty, and ``folder`` (relative) with whatever else
    it holds.  A path that points outside is ignored: it is no file of ours."""
    root = Path(settings.MINUTES_MEDIA_DIR).resolve()
    if folder:
        whole = (root / folder).resolve()
        if whole.is_relative_to(root) and whole != root and whole.is_dir():
            shutil.rmtree(whole, ignore_errors=True)
    folders: set[Path] = set()
    for name in paths:
        path = (root / name).resolve()
        if not path.is_relative_to(root) or path == root:
            log.warning("not removing %s: outside MINUTES_MEDIA_DIR", name)
            continue
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:  # a file we cannot remove must not fail the request
            log.warning("could not remove %s: %s", path, exc)
            continue
        folders.add(path.parent)
    for emptied in sorted(folders, key=lambda p: len(p.parts), reverse=True):
        while emptied != root and emptied.is_relative_to(root):
            try:
                emptied.rmdir()  # only when empty
            except OSError:
                break
            emptied = emptied.parent


# --- from a room booking ----------------------------------------------------------------


def initial_from_booking(booking: Booking) -> dict[str, Any]:
    """The header a meeting held in ``booking`` starts with: its title, time, place
    (room and floor) and people (the organiser first, then the attendees).  The caller
    has fetched the booking through ``rooms.access.access_booking``."""
    room = booking.room
    people = [booking.organiser, *booking.attendees.filter(is_active=True).order_by("pk")]
    return {
        "title": booking.title,
        "starts_at": booking.starts_at,
        "ends_at": booking.ends_at,
        "place": f"{room.name}（{room.floor}）",
        "attendees": _unique(person for person in people if person.is_active),
        "organiser": booking.organiser,
    }
