"""Permissioned reads of meetings, transcripts and minutes.  A refusal is audited
(``record_denial``) and answered with 403; a meeting that does not exist is a 404.

Who may do what:
- read a meeting, its recordings, transcript and minutes: its organiser, its attendees
  (staff or guests), the members of the organiser's 所属 (primary or 兼務, and those of
  the sections under it), and auditors (監査);
- edit the transcript, the speakers and the minutes, upload recordings and start a
  transcription: the organiser, the attendees who are staff, and whoever made the
  meeting, while the minutes are not approved;
- approve or return minutes: the organiser, or a 所属長 of the organiser's 所属;
- change the ward dictionary: IT administrators and 所属長; every staff member reads it.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.http import Http404

from yakuba.audit.record import record_denial
from yakuba.directory.access import AnyUser, has_role, is_it_admin
from yakuba.directory.models import Role, RoleGrant, User
from yakuba.minutes.models import Meeting, Minutes
from yakuba.rooms.access import user_department_ids


def _active(user: AnyUser | None) -> User | None:
    if (
        isinstance(user, User)
        and user.is_active
        and user.kind in (User.Kind.STAFF, User.Kind.GUEST)
    ):
        return user
    return None


def is_staff_member(user: AnyUser | None) -> bool:
    return isinstance(user, User) and user.is_active and user.kind == User.Kind.STAFF


def is_auditor(user: AnyUser) -> bool:
    return is_staff_member(user) and has_role(user, Role.AUDITOR)


def readable_meetings(user: AnyUser) -> QuerySet[Meeting]:
    """The meetings ``user`` may read, as one filter (the meeting list, search)."""
    person = _active(user)
    if person is None:
        return Meeting.objects.none()
    if person.kind == User.Kind.STAFF and is_auditor(person):
        return Meeting.objects.all()
    mine = Q(organiser=person) | Q(attendees=person) | Q(created_by=person)
    if person.kind == User.Kind.STAFF:
        mine |= Q(department_id__in=user_department_ids(person))
    return Meeting.objects.filter(pk__in=Meeting.objects.filter(mine).values("pk"))


def may_read_meeting(user: AnyUser, meeting: Meeting) -> bool:
    return readable_meetings(user).filter(pk=meeting.pk).exists()


def may_edit_meeting(user: AnyUser, meeting: Meeting) -> bool:
    """Organiser, maker and staff attendees may edit, until the minutes are approved."""
    if not is_staff_member(user):
        return False
    assert isinstance(user, User)
    if Minutes.objects.filter(meeting=meeting, status=Minutes.Status.APPROVED).exists():
        return False
    return (
        user.pk in (meeting.organiser_id, meeting.created_by_id)
        or meeting.attendees.filter(pk=user.pk).exists()
    )


def may_approve_minutes(user: AnyUser, meeting: Meeting) -> bool:
    if not is_staff_member(user):
        return False
    assert isinstance(user, User)
    return user.pk == meeting.organiser_id or has_role(user, Role.SECTION_HEAD, meeting.department)


def approver_ids(meeting: Meeting) -> set[int]:
    """Who may approve: the organiser and the 所属長 of the organiser's 所属."""
    heads = RoleGrant.objects.filter(
        role=Role.SECTION_HEAD, department=meeting.department, user__is_active=True
    ).values_list("user_id", flat=True)
    return {meeting.organiser_id, *heads}


def may_manage_dictionary(user: AnyUser) -> bool:
    return is_staff_member(user) and (is_it_admin(user) or has_role(user, Role.SECTION_HEAD))


def access_minutes_feature(user: AnyUser) -> None:
    """Refuse (403, audited) anyone who is not an active staff member or guest."""
    if _active(user) is None:
        record_denial(actor=_actor(user), what="minutes.view")
        raise PermissionDenied("議事録は職員と招待されたゲストだけが利用できます。")


def access_meeting(user: AnyUser, meeting_id: int) -> Meeting:
    """A meeting ``user`` may read (404 when there is none, 403 audited otherwise)."""
    access_minutes_feature(user)
    meeting = (
        Meeting.objects.select_related("organiser", "department", "booking")
        .filter(pk=meeting_id)
        .first()
    )
    if meeting is None:
        raise Http404("会議が見つかりません。")
    if not may_read_meeting(user, meeting):
        record_denial(actor=_actor(user), what="minutes.read", target=meeting)
        raise PermissionDenied(
            "この会議の記録を閲覧できるのは出席者、主催所属の職員と監査担当だけです。"
        )
    return meeting


def access_meeting_for_edit(user: AnyUser, meeting_id: int) -> Meeting:
    meeting = access_meeting(user, meeting_id)
    if not may_edit_meeting(user, meeting):
        record_denial(actor=_actor(user), what="minutes.edit", target=meeting)
        raise PermissionDenied(
            "編集できるのは主催者・作成者・出席者だけで、承認済の議事録は編集できません。"
        )
    return meeting


def access_meeting_for_approval(user: AnyUser, meeting_id: int) -> Meeting:
    meeting = access_meeting(user, meeting_id)
    if not may_approve_minutes(user, meeting):
        record_denial(actor=_actor(user), what="minutes.approve", target=meeting)
        raise PermissionDenied("議事録を承認できるのは会議の主催者と主催所属の所属長だけです。")
    return meeting


def access_dictionary(user: AnyUser) -> None:
    """Refuse (403, audited) anyone but active staff: the dictionary names the ward's
    people and places, which guests have no need to read."""
    if not is_staff_member(user):
        record_denial(actor=_actor(user), what="minutes.dictionary_read")
        raise PermissionDenied("辞書は職員だけが閲覧できます。")


def access_dictionary_management(user: AnyUser) -> None:
    if not may_manage_dictionary(user):
        record_denial(actor=_actor(user), what="minutes.dictionary")
        raise PermissionDenied("辞書を変更できるのは情報政策担当と所属長だけです。")


def _actor(user: AnyUser) -> User | None:
    return user if isinstance(user, User) else None
