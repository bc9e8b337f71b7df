"""The door panel (ドアパネル), its pairing, and check-in by the QR code on the door.

The tablet by the door signs in with a device token (scope ``rooms.panel``) kept in an
HttpOnly, SameSite=Strict cookie; every request checks it again, so a revoked token (or a
re-paired room) sends the tablet back to the pairing form at its next refresh.  The
panel's actions are the same ``do_*`` as everywhere, with the device user as the actor.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import segno
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import URLPattern, path, reverse
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import get_language, gettext, ngettext
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from yakuba.audit.record import record_denial
from yakuba.directory.models import User
from yakuba.lib import clock
from yakuba.rooms import occupancy
from yakuba.rooms.access import (
    access_facility_management,
    access_room,
    access_room_by_checkin_secret,
    is_participant,
    may_check_in,
    may_see_details,
)
from yakuba.rooms.actions import door
from yakuba.rooms.actions.booking import BookingError
from yakuba.rooms.actions.panel import do_pair_panel, panel_room
from yakuba.rooms.models import Booking, Room

COOKIE = "yakuba_panel"
COOKIE_MAX_AGE = 365 * 24 * 3600
START_CHOICES = (15, 30, 60)
EXTEND_CHOICES = (15, 30)


# --- the tablet ------------------------------------------------------------------------------


def _panel_auth(request: HttpRequest) -> tuple[User, Room] | None:
    return panel_room(request.COOKIES.get(COOKIE, ""))


def _panel_context(room: Room, message: str = "", error: bool = False) -> dict[str, Any]:
    now = clock.now()
    [state] = occupancy.room_states([room], now)
    candidate = door.checkin_candidate(room, now)
    in_use = door.in_use_booking(room, now)
    return {
        "room": room,
        "s": state,
        "now": now,
        "can_check_in": candidate is not None and not room.out_of_service,
        "can_start": state.is_free and not room.requires_approval,
        "in_use": in_use,
        "start_choices": _start_choices(room, state, now),
        "extend_choices": EXTEND_CHOICES,
        "message": message,
        "error": error,
        "qr_svg": _qr_svg(room, scale=4),
    }


def _start_choices(room: Room, state: occupancy.RoomState, now: dt.datetime) -> list[int]:
    """The "start now" lengths that end (with the room's buffer) before the next booking."""
    start = now.replace(second=0, microsecond=0)
    buffer = dt.timedelta(minutes=room.buffer_minutes)
    return [
        minutes
        for minutes in START_CHOICES
        if state.next is None
        or start + dt.timedelta(minutes=minutes) + buffer <= state.next.starts_at
    ]


def _pairing_form(request: HttpRequest, *, message: str = "", status: int = 200) -> HttpResponse:
    response = render(
        request,
        "rooms/panel/pair_form.html",
        {"message": message, "typed": request.POST.get("token", "")[:200]},
        status=status,
    )
    if COOKIE in request.COOKIES:
        response.delete_cookie(COOKIE, samesite="Strict")
    return response


@never_cache
@require_http_methods(["GET", "POST"])
def panel(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        raw = request.POST.get("token", "").strip()[:200]
        if panel_room(raw) is None:
            return _pairing_form(
                request,
                message=gettext(
                    "トークンが正しくないか、無効になっています。施設管理者に確認してください。"
                ),
                status=400,
            )
        response = redirect("rooms:panel")
        response.set_cookie(
            COOKIE,
            raw,
            max_age=COOKIE_MAX_AGE,
            httponly=True,
            samesite="Strict",
            secure=request.is_secure(),
        )
        return response
    found = _panel_auth(request)
    if found is None:
        message = (
            gettext("このパネルの登録は無効になりました。新しいトークンを入力してください。")
            if COOKIE in request.COOKIES
            else ""
        )
        return _pairing_form(request, message=message)
    _device, room = found
    return render(request, "rooms/panel/panel.html", _panel_context(room))


def _back_to_pairing(request: HttpRequest) -> HttpResponse:
    """A fragment request without a valid token: htmx navigates to the pairing form."""
    response = HttpResponse(
        gettext("このパネルの登録は無効です。"),
        status=401,
        content_type="text/plain; charset=utf-8",
    )
    response["HX-Redirect"] = reverse("rooms:panel")
    response.delete_cookie(COOKIE, samesite="Strict")
    return response


@never_cache
@require_GET
def panel_content(request: HttpRequest) -> HttpResponse:
    found = _panel_auth(request)
    if found is None:
        return _back_to_pairing(request)
    return render(request, "rooms/panel/content.html", _panel_context(found[1]))


def _minutes(raw: str, allowed: tuple[int, ...]) -> int | None:
    return int(raw) if raw.isdigit() and int(raw) in allowed else None


@never_cache
@require_POST
def panel_action(request: HttpRequest) -> HttpResponse:
    found = _panel_auth(request)
    if found is None:
        return _back_to_pairing(request)
    device, room = found
    action = request.POST.get("action", "")
    try:
        message = _act(room, device, action, request.POST.get("minutes", ""))
    except BookingError as exc:
        return render(
            request,
            "rooms/panel/content.html",
            _panel_context(room, _error_text(exc), error=True),
            status=409,
        )
    except ValueError as exc:
        return render(
            request,
            "rooms/panel/content.html",
            _panel_context(room, str(exc), error=True),
            status=400,
        )
    if request.headers.get("HX-Request"):
        return render(request, "rooms/panel/content.html", _panel_context(room, message))
    return redirect("rooms:panel")


def _error_text(exc: BookingError) -> str:
    """The refusal in the panel's language (``BookingError`` carries both)."""
    return exc.message if (get_language() or "ja").startswith("ja") else exc.message_en


def _act(room: Room, device: User, action: str, minutes_raw: str) -> str:
    """Run one panel button; returns what to say.  Raises ``BookingError`` or
    ``ValueError`` (bad input) with a Japanese message."""
    if action == "check_in":
        booking = door.checkin_candidate(room)
        if booking is None:
            raise ValueError(gettext("チェックインできる予約はありません。"))
        if not door.do_check_in(booking, acting_user=device, method=Booking.CheckInMethod.PANEL):
            return gettext("この予約は既にチェックイン済みです。")
        return gettext("チェックインしました。")
    if action == "start_now":
        minutes = _minutes(minutes_raw, START_CHOICES)
        if minutes is None:
            raise ValueError(gettext("利用時間を選んでください。"))
        door.do_start_now(room, minutes=minutes, acting_user=device)
        return ngettext(
            "%(minutes)d分間の利用を開始しました。",
            "%(minutes)d分間の利用を開始しました。",
            minutes,
        ) % {"minutes": minutes}
    if action in ("extend", "end"):
        current = door.in_use_booking(room)
        if current is None:
            raise ValueError(gettext("使用中の予約はありません。"))
        if action == "end":
            door.do_end_early(current, acting_user=device)
            return gettext("利用を終了しました。")
        minutes = _minutes(minutes_raw, EXTEND_CHOICES)
        if minutes is None:
            raise ValueError(gettext("延長する時間を選んでください。"))
        door.do_extend_booking(current, minutes=minutes, acting_user=device)
        return ngettext("%(minutes)d分延長しました。", "%(minutes)d分延長しました。", minutes) % {
            "minutes": minutes
        }
    raise ValueError(gettext("操作を選んでください。"))


# --- pairing and the QR code (facility managers) -----------------------------------------------


def _checkin_url(room: Room) -> str:
    return settings.SITE_URL + reverse("rooms:checkin_qr", args=[room.checkin_secret])


def _qr_svg(room: Room, *, scale: int) -> SafeString:
    qr = segno.make(_checkin_url(room), error="m")
    # segno writes the markup itself from the URL's bits: nothing user-typed is in it.
    return mark_safe(qr.svg_inline(scale=scale, title=room.name))  # noqa: S308


def _manager_room(request: HttpRequest, room_id: int, what: str) -> Room:
    room = access_room(request.user, room_id)
    access_facility_management(request.user, what)
    return room


@login_required
@never_cache
@require_http_methods(["GET", "POST"])
def panel_pair(request: HttpRequest, room_id: int) -> HttpResponse:
    room = _manager_room(request, room_id, "rooms.panel_pair")
    token = ""
    if request.method == "POST":
        assert isinstance(request.user, User)
        token = do_pair_panel(room, acting_user=request.user)
        room.refresh_from_db()
    return render(
        request,
        "rooms/panel/pair.html",
        {
            "active_nav": "rooms",
            "room": room,
            "token": token,
            "panel_path": settings.SITE_URL + reverse("rooms:panel"),
        },
    )


@login_required
@require_GET
def room_qr(request: HttpRequest, room_id: int) -> HttpResponse:
    room = _manager_room(request, room_id, "rooms.room_qr")
    return render(
        request,
        "rooms/qr/print.html",
        {
            "room": room,
            "qr_svg": _qr_svg(room, scale=10),
            "checkin_url": _checkin_url(room),
            "grace": settings.ROOMS_RELEASE_GRACE_MINUTES,
        },
    )


# --- check-in with a phone ---------------------------------------------------------------------


def _room_by_secret(request: HttpRequest, secret: str) -> Room:
    return access_room_by_checkin_secret(request.user, secret)


def _phone_candidate(user: Any, room: Room) -> Booking | None:
    """The booking a phone at the door checks in to: the signed-in person's own among
    those open for check-in (a running no-show must not hide the next booking, whose
    window has opened), else the earliest."""
    candidates = door.checkin_candidates(room)
    own = next((b for b in candidates if is_participant(user, b)), None)
    return own or (candidates[0] if candidates else None)


def _checkin_page(
    request: HttpRequest, room: Room, *, message: str = "", error: bool = False, status: int = 200
) -> HttpResponse:
    booking = _phone_candidate(request.user, room)
    [state] = occupancy.room_states([room])
    return render(
        request,
        "rooms/qr/checkin.html",
        {
            "room": room,
            "s": state,
            "booking": booking,
            "show_title": booking is not None and may_see_details(request.user, booking),
            "message": message,
            "error": error,
        },
        status=status,
    )


@login_required
@never_cache
@require_http_methods(["GET", "POST"])
def checkin_qr(request: HttpRequest, secret: str) -> HttpResponse:
    room = _room_by_secret(request, secret)
    if request.method == "GET":
        return _checkin_page(request, room)
    booking = _phone_candidate(request.user, room)
    if booking is None:
        return _checkin_page(
            request,
            room,
            message=gettext("チェックインできる予約はありません。"),
            error=True,
            status=409,
        )
    if not may_check_in(request.user, booking):
        record_denial(
            actor=request.user if isinstance(request.user, User) else None,
            what="rooms.checkin",
            target=booking,
        )
        return _checkin_page(
            request,
            room,
            message=gettext("チェックインできるのは、この予約の主催者・予約者・出席者だけです。"),
            error=True,
            status=403,
        )
    assert isinstance(request.user, User)
    try:
        door.do_check_in(booking, acting_user=request.user, method=Booking.CheckInMethod.QR)
    except BookingError as exc:
        return _checkin_page(request, room, message=_error_text(exc), error=True, status=409)
    return _checkin_page(request, room, message=gettext("チェックインしました。"))


urlpatterns: list[URLPattern] = [
    path("panel/", panel, name="panel"),
    path("panel/content/", panel_content, name="panel_content"),
    path("panel/action/", panel_action, name="panel_action"),
    path("panel/pair/<int:room_id>/", panel_pair, name="panel_pair"),
    path("<int:room_id>/qr/", room_qr, name="room_qr"),
    path("checkin/<str:secret>/", checkin_qr, name="checkin_qr"),
]
