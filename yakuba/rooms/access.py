"""Permissioned reads of rooms and bookings.  A refusal is audited (``record_denial``).

Who may do what:
- see rooms, the floor board and who booked what: active staff (guests see none of it);
- book a room: staff, when the room is open to all or to one of their 所属 (primary or
  兼務, including sub-departments of a listed 所属); facility managers book any room;
- change or cancel a booking: its organiser, whoever booked it, facility managers;
- see a private booking's title and people: those people and facility managers; everyone
  else sees 「予約あり」 and the time only;
- approve bookings, manage rooms, see utilisation: facility managers (施設管理者) and IT
  administrators.
"""

from __future__ import annotations

import re
from collections.abc import Collection

from django.core.exceptions import PermissionDenied
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.http import Http404

from yakuba.audit.record import record_denial
from yakuba.directory.access import AnyUser, has_role, is_it_admin
from yakuba.directory.models import ConcurrentPost, Department, Role, StaffProfile, User
from yakuba.rooms.models import Booking, Room

# Bots and devices: they reach rooms only through the API, with a ``rooms`` token.
MACHINE_KINDS = (User.Kind.BOT, User.Kind.DEVICE)


def is_staff_member(user: AnyUser | None) -> bool:
    return isinstance(user, User) and user.is_active and user.kind == User.Kind.STAFF


def is_facility_manager(user: AnyUser) -> bool:
    return isinstance(user, User) and (has_role(user, Role.FACILITY_MANAGER) or is_it_admin(user))


def user_department_ids(user: User) -> set[int]:
    """The user's 所属 (primary and 兼務) and every department above them.  One query
    whatever the depth: the whole tree as ``(pk, parent_id)`` pairs, each marked when it
    is one of the user's posts; the ancestors are walked in Python."""
    posted = Exists(StaffProfile.objects.filter(user=user, department=OuterRef("pk"))) | Exists(
        ConcurrentPost.objects.filter(staff__user=user, department=OuterRef("pk"))
    )
    parents: dict[int, int | None] = {}
    starts: list[int] = []
    for pk, parent_id, mine in Department.objects.annotate(mine=posted).values_list(
        "pk", "parent_id", "mine"
    ):
        parents[pk] = parent_id
        if mine:
            starts.append(pk)
    ids: set[int] = set()
    for start in starts:
        node: int | None = start
        while node is not None and node not in ids:
            ids.add(node)
            node = parents.get(node)
    return ids


def bookable_rooms(user: AnyUser, rooms: QuerySet[Room]) -> QuerySet[Room]:
    """``rooms`` narrowed to those ``user`` may book (``may_book`` for many rooms, as
    one filter): active rooms, open to all or to one of the user's 所属 or a department
    above them; every active room for facility managers; none for anyone but active
    staff.  Reads the user's 所属 (a few queries) only for a staff member who is no
    facility manager, never once per room."""
    if not is_staff_member(user):
        return rooms.none()
    assert isinstance(user, User)
    rooms = rooms.filter(is_active=True)
    if is_facility_manager(user):
        return rooms
    departments = user_department_ids(user)
    limited_to_mine = Room.allowed_departments.through.objects.filter(
        department_id__in=departments
    ).values("room_id")
    return rooms.filter(Q(open_to_all=True) | Q(pk__in=limited_to_mine))


def may_book(user: AnyUser, room: Room) -> bool:
    """``bookable_rooms`` for one room."""
    if not is_staff_member(user) or not room.is_active:
        return False
    assert isinstance(user, User)
    if room.open_to_all or is_facility_manager(user):
        return True
    allowed = set(room.allowed_departments.values_list("pk", flat=True))
    return bool(allowed & user_department_ids(user))


def may_manage_booking(user: AnyUser, booking: Booking) -> bool:
    if not isinstance(user, User) or not user.is_active:
        return False
    return user.pk in (booking.organiser_id, booking.booked_by_id) or is_facility_manager(user)


def is_participant(user: AnyUser, booking: Booking) -> bool:
    if not isinstance(user, User):
        return False
    if user.pk in (booking.organiser_id, booking.booked_by_id):
        return True
    return booking.attendees.filter(pk=user.pk).exists()


def may_check_in(user: AnyUser, booking: Booking) -> bool:
    """Check-in, on a page, by QR code or through the API: the booking's people, and
    facility managers (at the front desk, for a visitor's meeting)."""
    return is_participant(user, booking) or is_facility_manager(user)


def shows_details(
    user: AnyUser | None,
    booking: Booking,
    *,
    attendee_ids: Collection[int] | None = None,
    manager: bool | None = None,
) -> bool:
    """Whether ``user`` sees a booking's title, note and people (the time is never
    secret); everyone else sees 「予約あり」.  The one visibility rule:

    - ``user`` None is the public view (the floor board, a room's calendar feed):
      public bookings only;
    - a public booking: active staff, its people (organiser, whoever booked it,
      attendees), and active bots and devices (they read bookings only through the
      rooms API with a ``rooms``-scoped token, and book for staff);
    - a private booking: its people and facility managers, nobody else.

    ``attendee_ids`` (the booking's attendees, e.g. from a prefetch) and ``manager``
    (``is_facility_manager(user)``, computed once for a list) spare the queries; when
    left out they are read only if the answer depends on them."""
    if user is None:
        return not booking.is_private
    if not isinstance(user, User):
        return False
    if not booking.is_private and (
        is_staff_member(user) or (user.is_active and user.kind in MACHINE_KINDS)
    ):
        return True
    if user.pk in (booking.organiser_id, booking.booked_by_id):
        return True
    if booking.is_private and (is_facility_manager(user) if manager is None else manager):
        return True
    if attendee_ids is None:
        return booking.attendees.filter(pk=user.pk).exists()
    return user.pk in attendee_ids


def may_see_details(user: AnyUser, booking: Booking) -> bool:
    """``shows_details`` for one booking (reads its attendees when it must), except that
    a bot or device gets only the bookings it booked or attends: this opens
    ``access_booking`` and so change, cancel and check-in, which a machine may do only
    for those (it reads other public bookings through the rooms API's list)."""
    if isinstance(user, User) and user.kind in MACHINE_KINDS:
        return is_participant(user, booking)
    return shows_details(user, booking)


def access_rooms(user: AnyUser) -> None:
    """Refuse (403, audited) anyone but active staff."""
    if not is_staff_member(user):
        record_denial(actor=_actor(user), what="rooms.view")
        raise PermissionDenied("会議室の情報は職員だけが閲覧できます。")


def access_room(user: AnyUser, room_id: int) -> Room:
    access_rooms(user)
    room = Room.objects.select_related("floor__building").filter(pk=room_id).first()
    if room is None:
        raise Http404("会議室が見つかりません。")
    return room


def access_room_for_booking(user: AnyUser, room_id: int) -> Room:
    room = access_room(user, room_id)
    if not may_book(user, room):
        record_denial(actor=_actor(user), what="rooms.book", target=room)
        raise PermissionDenied("この会議室は指定された所属の職員だけが予約できます。")
    return room


# Secrets are URL-safe base64 (``models.new_secret``); anything else is no secret of ours.
SECRET_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")


def access_room_by_checkin_secret(user: AnyUser, secret: str) -> Room:
    """The room whose door QR code holds ``secret`` (staff only, 403 audited; 404 for a
    wrong secret)."""
    access_rooms(user)
    room = (
        Room.objects.select_related("floor__building").filter(checkin_secret=secret).first()
        if SECRET_PATTERN.fullmatch(secret)
        else None
    )
    if room is None:
        raise Http404("会議室が見つかりません。")
    return room


def access_booking(user: AnyUser, booking_id: int) -> Booking:
    """A booking its reader may see in full (participants, staff for a public booking,
    facility managers); others get 404 so that ids reveal nothing."""
    booking = (
        Booking.objects.select_related("room__floor__building", "organiser", "booked_by", "series")
        .filter(pk=booking_id)
        .first()
    )
    if booking is None or not may_see_details(user, booking):
        raise Http404("予約が見つかりません。")
    return booking


def access_booking_for_check_in(user: AnyUser, booking_id: int) -> Booking:
    booking = access_booking(user, booking_id)
    if not may_check_in(user, booking):
        record_denial(actor=_actor(user), what="rooms.check_in", target=booking)
        raise PermissionDenied(
            "チェックインできるのは予約の主催者・予約者・出席者と施設管理者だけです。"
        )
    return booking


def access_booking_for_change(user: AnyUser, booking_id: int) -> Booking:
    booking = access_booking(user, booking_id)
    if not may_manage_booking(user, booking):
        record_denial(actor=_actor(user), what="rooms.booking_change", target=booking)
        raise PermissionDenied("この予約を変更できるのは主催者、予約者と施設管理者だけです。")
    return booking


def access_facility_management(user: AnyUser, what: str) -> None:
    """Refuse (403, audited) anyone but facility managers and IT administrators."""
    if not is_facility_manager(user):
        record_denial(actor=_actor(user), what=what)
        raise PermissionDenied("この操作は施設管理者だけが行えます。")


def _actor(user: AnyUser) -> User | None:
    return user if isinstance(user, User) else None
