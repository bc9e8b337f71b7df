"""Calendars: the iCalendar feeds (a room's, a person's), the feeds page, a booking's
.ics download and the import of an .ics file.

The two feed URLs need no sign-in (calendar programs cannot sign in): the secret in the
URL is the credential, so a wrong one is a 404 and a reset (``feed_reset``) makes the old
URL stop working.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import URLPattern, path, reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from yakuba.directory.models import User
from yakuba.rooms import ical
from yakuba.rooms.access import (
    access_booking,
    access_room_for_booking,
    access_rooms,
    bookable_rooms,
    is_staff_member,
)
from yakuba.rooms.actions.calendar import (
    IcsNotCalendar,
    check_import_ics,
    do_create_feed,
    do_reset_feed,
)
from yakuba.rooms.models import CalendarFeed, Room

CALENDAR_TYPE = "text/calendar; charset=utf-8"
MAX_IMPORT_BYTES = 1024 * 1024


def _calendar_response(content: bytes, filename: str, *, inline: bool = True) -> HttpResponse:
    response = HttpResponse(content, content_type=CALENDAR_TYPE)
    disposition = "inline" if inline else "attachment"
    response["Content-Disposition"] = f'{disposition}; filename="{filename}"'
    response["Cache-Control"] = "private, max-age=300"
    response["X-Robots-Tag"] = "noindex"
    return response


@require_GET
def feed_room(request: HttpRequest, feed_secret: str) -> HttpResponse:
    room = ical.room_for_feed(feed_secret)
    return _calendar_response(ical.room_feed_bytes(room), f"room-{room.code}.ics")


@require_GET
def feed_person(request: HttpRequest, secret: str) -> HttpResponse:
    feed = ical.feed_for_secret(secret)
    return _calendar_response(ical.person_feed_bytes(feed.user), "my-bookings.ics")


def _user(request: HttpRequest) -> User:
    assert isinstance(request.user, User)  # login_required
    return request.user


@login_required
@require_GET
def my_feed(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    # Read only: the secret URL is issued by a POST (a prefetch or link preview of this
    # page must not create one).
    feed = CalendarFeed.objects.filter(user=user).first()
    rooms: list[dict[str, Any]] = []
    if is_staff_member(user):
        rooms = [
            {
                "room": room,
                "url": request.build_absolute_uri(
                    reverse("rooms:feed_room", args=[room.feed_secret])
                ),
            }
            for room in Room.objects.filter(is_active=True).select_related("floor__building")
        ]
    return render(
        request,
        "rooms/feeds/my_feed.html",
        {
            "active_nav": "rooms",
            "feed_url": request.build_absolute_uri(reverse("rooms:feed_person", args=[feed.secret]))
            if feed is not None
            else "",
            "rooms": rooms,
            "reset": request.GET.get("reset") == "1",
        },
    )


@login_required
@require_POST
def feed_reset(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    if not CalendarFeed.objects.filter(user=user).exists():
        do_create_feed(user)
        return HttpResponseRedirect(reverse("rooms:my_feed"))
    do_reset_feed(user, acting_user=user)
    return HttpResponseRedirect(reverse("rooms:my_feed") + "?reset=1")


@login_required
@require_GET
def booking_ics(request: HttpRequest, booking_id: int) -> HttpResponse:
    booking = access_booking(request.user, booking_id)
    content = ical.calendar_bytes(booking.title, [booking], method="PUBLISH")
    return _calendar_response(content, f"booking-{booking.pk}.ics", inline=False)


@login_required
@require_http_methods(["GET", "POST"])
def import_ics(request: HttpRequest) -> HttpResponse:
    access_rooms(request.user)
    user = _user(request)
    bookable = list(
        bookable_rooms(user, Room.objects.filter(is_active=True).select_related("floor__building"))
    )
    context: dict[str, Any] = {
        "active_nav": "rooms",
        "rooms": bookable,
        "room_id": None,
        "errors": [],
        "imported": [],
    }
    if request.method == "GET":
        return render(request, "rooms/feeds/import.html", context)
    try:
        room_id = int(request.POST.get("room", ""))
    except ValueError:
        context["errors"] = ["会議室を選んでください。"]
        return render(request, "rooms/feeds/import.html", context, status=400)
    room = access_room_for_booking(user, room_id)
    context["room_id"] = room.pk
    upload = request.FILES.get("file")
    if upload is None:
        context["errors"] = ["取り込む .ics ファイルを選んでください。"]
        return render(request, "rooms/feeds/import.html", context, status=400)
    if upload.size is not None and upload.size > MAX_IMPORT_BYTES:
        context["errors"] = ["ファイルが大きすぎます（1MBまで）。期間を分けて書き出してください。"]
        return render(request, "rooms/feeds/import.html", context, status=400)
    data = upload.read(MAX_IMPORT_BYTES + 1)
    if len(data) > MAX_IMPORT_BYTES:
        context["errors"] = ["ファイルが大きすぎます（1MBまで）。期間を分けて書き出してください。"]
        return render(request, "rooms/feeds/import.html", context, status=400)
    try:
        result = check_import_ics(data, room=room, organiser=user, acting_user=user)
    except IcsNotCalendar:
        context["errors"] = [IcsNotCalendar.message]
        return render(request, "rooms/feeds/import.html", context, status=400)
    if not result.ok:
        context["errors"] = [str(problem) for problem in result.problems]
        context["rejected"] = True
        return render(request, "rooms/feeds/import.html", context, status=400)
    context["imported"] = result.bookings
    context["room"] = room
    return render(request, "rooms/feeds/import.html", context)


urlpatterns: list[URLPattern] = [
    path("feeds/", my_feed, name="my_feed"),
    path("feeds/reset/", feed_reset, name="feed_reset"),
    path("feeds/room/<str:feed_secret>.ics", feed_room, name="feed_room"),
    path("feeds/person/<str:secret>.ics", feed_person, name="feed_person"),
    path("bookings/<int:booking_id>/booking.ics", booking_ics, name="booking_ics"),
    path("import-ics/", import_ics, name="import_ics"),
]
