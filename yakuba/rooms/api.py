"""The rooms JSON API under ``/api/rooms/``: rooms, free rooms, bookings.

Callers: staff by browser session (CSRF on writes) or a bearer token that carries the
``rooms`` scope (bots and devices: a booking kiosk, a scheduler, the benchmark).  A token
without that scope is refused here with 403 whatever its other scopes.  A bot or device
sees the rooms and the public bookings, and books only on behalf of a staff member named
as ``organiser``: the room's rules (所属-only rooms) are checked for that person.

Errors come in the one format of ``yakuba.lib.api_errors``; a conflict (409, ``conflict``)
and a refusal (400, ``refused``) add ``error.details`` from the booking action (for a
conflict: ``details.conflicts``, the times only, never a title).

The POST of a booking is the hot path of the benchmark: it reads the room, the organiser
and the attendees in one query each and leaves the rest to ``check_create_booking``.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence

from django.core.exceptions import PermissionDenied
from django.db.models import Prefetch, QuerySet
from django.http import HttpRequest, HttpResponse, JsonResponse
from ninja import Field, Query, Router, Schema, Status
from ninja.errors import AuthenticationError
from ninja.security import HttpBearer

from yakuba.audit.record import record_denial
from yakuba.directory.models import User
from yakuba.directory.tokens import authenticate_token
from yakuba.lib import clock
from yakuba.lib.api_auth import SessionAuth, caller
from yakuba.lib.api_errors import ApiError, error_body
from yakuba.lib.api_pagination import MAX_LIMIT, paginate
from yakuba.rooms import access, finder
from yakuba.rooms.actions.booking import (
    BookingError,
    BookingRequest,
    check_change_booking,
    check_create_booking,
    do_decide_booking,
)
from yakuba.rooms.actions.door import do_check_in
from yakuba.rooms.actions.series import do_cancel_occurrence
from yakuba.rooms.models import EQUIPMENT_FIELDS, Booking, Room

# The token scope that opens this API to bots and devices.
ROOMS_SCOPE = "rooms"
# Shown instead of the title of a private booking to those who may not see it.
HIDDEN_TITLE = "予約あり"
# API names of the equipment, as Room field names.
EQUIPMENT = {name.removeprefix("has_"): name for name in EQUIPMENT_FIELDS}
MACHINE_KINDS = access.MACHINE_KINDS
# The years a date-time parameter may name (see ``_when``).
MIN_YEAR, MAX_YEAR = 2000, 2999
# Control characters refused in free text (tab, line feed and carriage return are fine).
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class RoomsTokenAuth(HttpBearer):
    """``Authorization: Bearer …`` with the ``rooms`` scope (whatever the method)."""

    def authenticate(self, request: HttpRequest, token: str) -> User:
        found = authenticate_token(token)
        if found is None:
            raise AuthenticationError()
        user, api_token = found
        if ROOMS_SCOPE not in api_token.scopes:
            record_denial(actor=user, what="rooms.api_token_scope")
            raise ApiError(
                "forbidden",
                message="このAPIトークンには会議室（rooms）の権限がありません。"
                "管理者に rooms スコープのトークンを発行してもらってください。",
                message_en="This API token lacks the rooms scope; ask for a token with it.",
            )
        setattr(request, "_rooms_token", True)  # noqa: B010 (not an attribute mypy knows)
        return user


router = Router(tags=["rooms"], auth=[RoomsTokenAuth(), SessionAuth()])


# --- Schemas ------------------------------------------------------------------------


class RoomOut(Schema):
    id: int
    code: str
    name: str
    building: str
    building_code: str
    floor: str
    floor_id: int
    capacity: int
    equipment: list[str]
    wheelchair_accessible: bool
    accessibility_note: str
    requires_approval: bool
    open_to_all: bool
    out_of_service: bool
    opens_at: str
    closes_at: str
    buffer_minutes: int


class RoomPage(Schema):
    items: list[RoomOut]
    next_cursor: str | None


class RoomQuery(Schema):
    building: str | None = None
    floor: int | None = None
    capacity: int | None = Field(None, ge=1)
    equipment: str = Field("", description="display,projector,web_meeting_kit,whiteboard")
    wheelchair: bool | None = None
    cursor: str | None = None
    limit: int = Field(100, ge=1, description=f"最大 {MAX_LIMIT} 件")


class FreeQuery(Schema):
    start: str = Field(..., description="ISO 8601 with offset, e.g. 2025-06-12T10:00:00+09:00")
    end: str
    capacity: int | None = Field(None, ge=1)
    equipment: str = ""
    building: str | None = None


class BookingOut(Schema):
    id: int
    room_id: int
    room_code: str
    room_name: str
    starts_at: dt.datetime
    ends_at: dt.datetime
    status: str
    title: str
    hidden: bool
    is_private: bool
    organiser: str | None
    attendees: list[str]
    note: str
    wants_web_meeting: bool
    meeting_url: str
    checked_in_at: dt.datetime | None
    release_due_at: dt.datetime | None
    series_id: int | None


class BookingPage(Schema):
    items: list[BookingOut]
    next_cursor: str | None


class BookingQuery(Schema):
    room: int | None = None
    from_: str | None = Field(None, alias="from")
    to: str | None = None
    status: str = Field("", description="pending,confirmed,… (default: the live ones)")
    cursor: str | None = None
    limit: int = Field(50, ge=1, description=f"最大 {MAX_LIMIT} 件")


class BookingIn(Schema):
    room_id: int
    starts_at: str = Field(..., description="ISO 8601 with offset")
    ends_at: str
    title: str = Field(..., max_length=200)
    organiser: str | None = Field(None, description="username: book for someone else")
    attendees: list[str] = []
    is_private: bool = False
    note: str = Field("", max_length=2000)
    wants_web_meeting: bool = False


class BookingPatch(Schema):
    room_id: int | None = None
    starts_at: str | None = None
    ends_at: str | None = None
    title: str | None = Field(None, max_length=200)
    attendees: list[str] | None = None
    is_private: bool | None = None
    note: str | None = Field(None, max_length=2000)


class CancelIn(Schema):
    reason: str = Field("", max_length=300)


class DecideIn(Schema):
    approve: bool
    note: str = Field("", max_length=300)


# --- Rooms ---------------------------------------------------------------------------


@router.get("/", response=RoomPage, summary="会議室の一覧")
def list_rooms(request: HttpRequest, params: Query[RoomQuery]) -> RoomPage:
    """Active rooms in code order, filtered by building code, floor id, minimum
    ``capacity``, ``equipment`` (comma-separated, all required) and ``wheelchair``."""
    _reader(request)
    rows = _room_rows(params.building, params.capacity, params.equipment)
    if params.floor is not None:
        rows = rows.filter(floor_id=params.floor)
    if params.wheelchair is not None:
        rows = rows.filter(wheelchair_accessible=params.wheelchair)
    page = paginate(rows, ordering=["code"], cursor=params.cursor, limit=params.limit)
    return RoomPage(items=[_room_out(room) for room in page.items], next_cursor=page.next_cursor)


@router.get("/free", response=list[RoomOut], summary="空いている会議室")
def free_rooms(request: HttpRequest, params: Query[FreeQuery]) -> list[RoomOut]:
    """Rooms the caller may book where a booking ``[start, end)`` would be placed now
    (``finder.free_rooms``, as on the finder page): in service, within the room's hours
    and the advance period, and no live booking's block (its time plus its room's
    buffer) overlapping this one's block; in the room list's order.  A bot or device is
    offered every room (it books for a staff member, whose rights are checked then)."""
    user = _reader(request)
    starts_at, ends_at = _when(params.start, "start"), _when(params.end, "end")
    if ends_at <= starts_at:
        raise _bad_field("end", "終了は開始より後の日時を指定してください。")
    equipment = _equipment(params.equipment)
    free = finder.free_rooms(
        None if user.kind in MACHINE_KINDS else user,
        starts_at=starts_at,
        ends_at=ends_at,
        people=params.capacity or 1,
        equipment=equipment,
        building=_text(params.building, "building") if params.building else "",
    )
    free.sort(key=lambda room: (room.floor.building.sort_order, room.floor.level, room.code))
    return [_room_out(room) for room in free]


# --- Bookings --------------------------------------------------------------------------


@router.get("/bookings/", response=BookingPage, summary="予約の一覧")
def list_bookings(request: HttpRequest, params: Query[BookingQuery]) -> BookingPage:
    """Bookings in start order (cursor-paginated), of one ``room`` and overlapping
    ``[from, to)`` when given.  A private booking that the caller is not part of shows
    the title 「予約あり」 and no people."""
    user = _reader(request)
    rows = Booking.objects.select_related("room", "organiser").prefetch_related(
        Prefetch("attendees", queryset=User.objects.only("pk", "username"))
    )
    statuses = [s.strip() for s in params.status.split(",") if s.strip()]
    unknown = sorted(set(statuses) - set(Booking.Status.values))
    if unknown:
        raise _bad_field("status", f"指定できない状態です: {', '.join(unknown)}")
    rows = rows.filter(status__in=statuses or list(Booking.LIVE))
    if params.room is not None:
        rows = rows.filter(room_id=params.room)
    if params.from_:
        rows = rows.filter(ends_at__gt=_when(params.from_, "from"))
    if params.to:
        rows = rows.filter(starts_at__lt=_when(params.to, "to"))
    page = paginate(rows, ordering=["starts_at"], cursor=params.cursor, limit=params.limit)
    manager = access.is_facility_manager(user)
    return BookingPage(
        items=[_booking_out(b, _shows(user, b, manager)) for b in page.items],
        next_cursor=page.next_cursor,
    )


@router.get("/bookings/{booking_id}", response=BookingOut, summary="予約の詳細")
def get_booking(request: HttpRequest, booking_id: int) -> BookingOut:
    user = _reader(request)
    booking = _readable_booking(user, booking_id)
    return _booking_out(booking, True)


@router.post(
    "/bookings/",
    response={201: BookingOut},
    summary="会議室を予約する",
    openapi_extra={
        "responses": {409: {"description": "conflict"}, 400: {"description": "refused"}}
    },
)
def create_booking(request: HttpRequest, payload: BookingIn) -> Status[BookingOut] | HttpResponse:
    """Book ``room_id`` over ``[starts_at, ends_at)`` (ISO 8601 with an offset; a time
    without one is refused, since it could mean UTC or Tokyo).  409 ``conflict`` names
    the times already held; 400 ``refused`` for the room's rules; 403 for a room open
    to other 所属 only."""
    user = caller(request)
    starts_at, ends_at = _when(payload.starts_at, "starts_at"), _when(payload.ends_at, "ends_at")
    organiser = _organiser(request, user, payload.organiser)
    room = _room_for_booking(user, organiser, payload.room_id)
    attendees = _users(payload.attendees, "attendees")
    booking_request = BookingRequest(
        room=room,
        starts_at=starts_at,
        ends_at=ends_at,
        title=_text(payload.title, "title"),
        organiser=organiser,
        attendees=attendees,
        is_private=payload.is_private,
        note=_text(payload.note, "note"),
        wants_web_meeting=payload.wants_web_meeting,
    )
    try:
        booking = check_create_booking(booking_request, acting_user=user)
    except BookingError as exc:
        return _booking_error(exc)
    booking.organiser = organiser
    return Status(201, _booking_out(booking, True, attendees=[u.username for u in attendees]))


@router.patch("/bookings/{booking_id}", response=BookingOut, summary="予約を変更する")
def change_booking(
    request: HttpRequest, booking_id: int, payload: BookingPatch
) -> BookingOut | HttpResponse:
    """Change the time, room, title, privacy, note or attendees of a live booking (its
    organiser, whoever booked it, facility managers).  Checked like a new booking."""
    user = caller(request)
    booking = access.access_booking_for_change(user, booking_id)
    room = None
    if payload.room_id is not None and payload.room_id != booking.room_id:
        room = _room_for_booking(user, booking.organiser, payload.room_id)
    try:
        changed = check_change_booking(
            booking,
            acting_user=user,
            room=room,
            starts_at=_when(payload.starts_at, "starts_at") if payload.starts_at else None,
            ends_at=_when(payload.ends_at, "ends_at") if payload.ends_at else None,
            title=_text(payload.title, "title") if payload.title is not None else None,
            is_private=payload.is_private,
            note=_text(payload.note, "note") if payload.note is not None else None,
            attendees=_users(payload.attendees, "attendees")
            if payload.attendees is not None
            else None,
        )
    except BookingError as exc:
        return _booking_error(exc)
    return _booking_out(_reload(changed.pk), True)


@router.post("/bookings/{booking_id}/cancel", response=BookingOut, summary="予約を取り消す")
def cancel_booking(
    request: HttpRequest, booking_id: int, payload: CancelIn | None = None
) -> BookingOut | HttpResponse:
    user = caller(request)
    booking = access.access_booking_for_change(user, booking_id)
    reason = _text(payload.reason, "reason") if payload is not None else ""
    # An occurrence of a series also becomes an exception date of it, as on the page.
    if not do_cancel_occurrence(booking, acting_user=user, reason=reason):
        return _refused(
            "この予約は既に取り消されたか、解放されています。",
            "This booking was already cancelled or released.",
        )
    return _booking_out(_reload(booking.pk), True)


@router.post("/bookings/{booking_id}/check-in", response=BookingOut, summary="チェックイン")
def check_in(request: HttpRequest, booking_id: int) -> BookingOut | HttpResponse:
    """Mark the booking as in use (its people and facility managers), from check-in's
    opening until its end.  Checking in twice is harmless."""
    user = caller(request)
    booking = access.access_booking_for_check_in(user, booking_id)
    try:
        do_check_in(booking, acting_user=user, method=Booking.CheckInMethod.WEB)
    except BookingError as exc:
        return _booking_error(exc)
    return _booking_out(_reload(booking.pk), True)


@router.post("/bookings/{booking_id}/decide", response=BookingOut, summary="予約の承認・却下")
def decide_booking(
    request: HttpRequest, booking_id: int, payload: DecideIn
) -> BookingOut | HttpResponse:
    """Approve or reject a pending booking of an approval room (facility managers)."""
    user = caller(request)
    access.access_facility_management(user, "rooms.booking_decide")
    booking = access.access_booking(user, booking_id)
    note = _text(payload.note, "note")
    if not do_decide_booking(booking, approve=payload.approve, acting_user=user, note=note):
        return _refused(
            "この予約は承認待ちではありません。", "This booking is not waiting for approval."
        )
    return _booking_out(_reload(booking.pk), True)


# --- Helpers ---------------------------------------------------------------------------


def _is_machine(request: HttpRequest, user: User) -> bool:
    """A bot or device calling with a ``rooms`` token."""
    return bool(getattr(request, "_rooms_token", False)) and user.kind in MACHINE_KINDS


def _reader(request: HttpRequest) -> User:
    """The caller, if it may see rooms: staff, or a bot/device with the rooms scope."""
    user = caller(request)
    if not _is_machine(request, user):
        access.access_rooms(user)
    return user


def _room_rows(building: str | None, capacity: int | None, equipment: str) -> QuerySet[Room]:
    rows = Room.objects.filter(is_active=True).select_related("floor__building")
    if building:
        rows = rows.filter(floor__building__code=_text(building, "building"))
    if capacity is not None:
        rows = rows.filter(capacity__gte=capacity)
    return rows.filter(**dict.fromkeys(_equipment(equipment), True))


def _equipment(equipment: str) -> list[str]:
    """Room field names of the comma-separated API equipment names (400 for unknown)."""
    wanted = [name.strip() for name in equipment.split(",") if name.strip()]
    unknown = [name for name in wanted if name not in EQUIPMENT]
    if unknown:
        known = ", ".join(EQUIPMENT)
        raise _bad_field("equipment", f"不明な設備です: {', '.join(unknown)}（{known}）")
    return [EQUIPMENT[name] for name in wanted]


def _room_out(room: Room) -> RoomOut:
    return RoomOut(
        id=room.pk,
        code=room.code,
        name=room.name,
        building=room.floor.building.name,
        building_code=room.floor.building.code,
        floor=room.floor.name,
        floor_id=room.floor_id,
        capacity=room.capacity,
        equipment=[api for api, name in EQUIPMENT.items() if getattr(room, name)],
        wheelchair_accessible=room.wheelchair_accessible,
        accessibility_note=room.accessibility_note,
        requires_approval=room.requires_approval,
        open_to_all=room.open_to_all,
        out_of_service=room.out_of_service,
        opens_at=f"{room.opens_at:%H:%M}",
        closes_at=f"{room.closes_at:%H:%M}",
        buffer_minutes=room.buffer_minutes,
    )


def _shows(user: User, booking: Booking, manager: bool) -> bool:
    """``access.shows_details`` on a booking whose attendees are prefetched (no query)."""
    attendee_ids = {person.pk for person in booking.attendees.all()}
    return access.shows_details(user, booking, attendee_ids=attendee_ids, manager=manager)


def _booking_out(
    booking: Booking, visible: bool, *, attendees: Sequence[str] | None = None
) -> BookingOut:
    if attendees is None:
        attendees = [person.username for person in booking.attendees.all()] if visible else []
    attendees = sorted(attendees)
    return BookingOut(
        id=booking.pk,
        room_id=booking.room_id,
        room_code=booking.room.code,
        room_name=booking.room.name,
        starts_at=clock.local(booking.starts_at),
        ends_at=clock.local(booking.ends_at),
        status=booking.status,
        title=booking.title if visible else HIDDEN_TITLE,
        hidden=not visible,
        is_private=booking.is_private,
        organiser=booking.organiser.username if visible else None,
        attendees=list(attendees) if visible else [],
        note=booking.note if visible else "",
        wants_web_meeting=booking.wants_web_meeting,
        meeting_url=booking.meeting_url if visible else "",
        checked_in_at=clock.local(booking.checked_in_at) if booking.checked_in_at else None,
        release_due_at=clock.local(booking.release_due_at) if booking.release_due_at else None,
        series_id=booking.series_id,
    )


def _reload(booking_id: int) -> Booking:
    return (
        Booking.objects.select_related("room", "organiser")
        .prefetch_related("attendees")
        .get(pk=booking_id)  # custom-check: allow views-thin  (just written by an action)
    )


def _readable_booking(user: User, booking_id: int) -> Booking:
    """``access_booking``, plus the public bookings for a machine caller (which is no
    participant of anything it did not book)."""
    if user.kind in MACHINE_KINDS:
        found = (
            Booking.objects.select_related("room", "organiser")
            .prefetch_related("attendees")
            .filter(pk=booking_id)
            .first()
        )
        if found is not None and access.shows_details(user, found):
            return found
        raise ApiError("not_found", message="予約が見つかりません。", message_en="No such booking.")
    booking = access.access_booking(user, booking_id)
    return _reload(booking.pk)


def _organiser(request: HttpRequest, user: User, username: str | None) -> User:
    """Who the booking is for: the caller, or the staff member named (a machine caller
    must name one)."""
    if not username or username == user.username:
        if _is_machine(request, user):
            raise _bad_field(
                "organiser", "ボット・端末からの予約では主催者（organiser）が必須です。"
            )
        return user
    found = User.objects.filter(
        username=_text(username, "organiser"), is_active=True, kind=User.Kind.STAFF
    ).first()
    if found is None:
        raise _bad_field("organiser", f"職員 {username} は見つかりません。")
    return found


def _room_for_booking(user: User, organiser: User, room_id: int) -> Room:
    """The room, if the caller may book it for ``organiser``: staff callers by their own
    rights (``access_room_for_booking``), machine callers by the organiser's."""
    if user.kind not in MACHINE_KINDS:
        return access.access_room_for_booking(user, room_id)
    room = access.access_room(organiser, room_id)
    if not access.may_book(organiser, room):
        record_denial(actor=user, what="rooms.book", target=room)
        raise PermissionDenied("この会議室は指定された所属の職員だけが予約できます。")
    return room


def _users(usernames: Sequence[str], name: str) -> list[User]:
    """Active staff and guests by username, in one query; every unknown name reported."""
    wanted = list(dict.fromkeys(_text(u, name).strip() for u in usernames if u.strip()))
    if not wanted:
        return []
    found = list(
        User.objects.filter(
            username__in=wanted, is_active=True, kind__in=(User.Kind.STAFF, User.Kind.GUEST)
        )
    )
    missing = sorted(set(wanted) - {u.username for u in found})
    if missing:
        raise _bad_field(name, f"見つからない利用者があります: {', '.join(missing)}")
    return found


def _when(text: str, name: str) -> dt.datetime:
    """An aware datetime from ISO 8601; a time without an offset is refused (400)."""
    try:
        value = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise _bad_field(
            name, "日時の形式が正しくありません（例: 2025-06-12T10:00:00+09:00）。"
        ) from None
    if value.tzinfo is None or value.utcoffset() is None:
        raise _bad_field(
            name,
            "日時にはタイムゾーン（例: +09:00）を付けてください。",
            message_en=f"{name} needs a UTC offset, e.g. 2025-06-12T10:00:00+09:00.",
        )
    # Years near 1 or 9999 overflow when the database driver converts them to UTC (a
    # 500); no booking is ever that far away.
    if not MIN_YEAR <= value.year <= MAX_YEAR:
        raise _bad_field(
            name,
            f"日時は{MIN_YEAR}年から{MAX_YEAR}年までで指定してください。",
            message_en=f"{name} must lie between the years {MIN_YEAR} and {MAX_YEAR}.",
        )
    return value


def _text(value: str, name: str) -> str:
    """Free text without control characters other than line breaks and tabs:
    PostgreSQL refuses a NUL in text outright (a 500), and no title needs the rest."""
    if CONTROL.search(value):
        raise _bad_field(
            name,
            "改行・タブ以外の制御文字は使えません。",
            message_en=f"{name} contains a control character.",
        )
    return value


def _bad_field(name: str, message: str, *, message_en: str | None = None) -> ApiError:
    return ApiError(
        "bad_request",
        status=400,
        message=message,
        message_en=message_en or f"The field {name} is invalid.",
        fields={name: [message]},
    )


def _booking_error(exc: BookingError) -> JsonResponse:
    """409 for a conflict, 400 for anything else the booking rules refuse, with the
    action's ``details`` (a conflict's times) in ``error.details``."""
    status = 409 if exc.code == "conflict" else 400
    body = error_body(exc.code, message=exc.message, message_en=exc.message_en)
    body["error"]["details"] = exc.details
    return JsonResponse(body, status=status, json_dumps_params={"ensure_ascii": False})


def _refused(message: str, message_en: str) -> JsonResponse:
    body = error_body("refused", message=message, message_en=message_en)
    body["error"]["details"] = {}
    return JsonResponse(body, status=400, json_dumps_params={"ensure_ascii": False})
