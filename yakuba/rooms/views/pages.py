"""The booking pages for staff: my bookings, the room finder, "find a time", booking,
changing and cancelling, check-in from the browser, and the approvals of facility
managers.  Views parse (``rooms.forms``), fetch through ``access_*``, call one action and
redirect with a message; a booking that cannot be made re-renders the form with what was
typed and the action's Japanese message (409 for a conflict, 400 otherwise)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import URLPattern, path, reverse
from django.utils.http import urlencode
from django.utils.translation import get_language
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from yakuba.directory.access import search_staff
from yakuba.directory.models import User
from yakuba.lib import clock
from yakuba.rooms import finder
from yakuba.rooms.access import (
    access_booking,
    access_booking_for_change,
    access_booking_for_check_in,
    access_facility_management,
    access_room_for_booking,
    access_rooms,
    is_facility_manager,
    may_check_in,
    may_manage_booking,
)
from yakuba.rooms.actions.booking import (
    BookingConflict,
    BookingError,
    BookingRequest,
    check_change_booking,
    check_create_booking,
    do_cancel_booking,
    do_decide_booking,
)
from yakuba.rooms.actions.door import checkin_window, do_check_in
from yakuba.rooms.actions.series import (
    check_change_series,
    check_create_series,
    do_cancel_occurrence,
    do_cancel_series,
)
from yakuba.rooms.forms import (
    BookingForm,
    CancelForm,
    DecideForm,
    FinderForm,
    FindTimeForm,
    parse_local,
)
from yakuba.rooms.holidays import holiday_name, holidays_between
from yakuba.rooms.models import Booking, Room

# How far ahead the finder proposes by default, and the default length of a booking.
DEFAULT_LENGTH = dt.timedelta(hours=1)
STEP_MINUTES = 15


def _staff(request: HttpRequest) -> User:
    """The signed-in staff member (403, audited, for anyone else)."""
    access_rooms(request.user)
    assert isinstance(request.user, User)
    return request.user


def _error_text(exc: BookingError) -> str:
    language = get_language() or "ja"
    return exc.message if language.startswith("ja") else exc.message_en


def _is_htmx(request: HttpRequest) -> bool:
    return request.headers.get("HX-Request") == "true"


def _next_quarter(moment: dt.datetime) -> dt.datetime:
    local = clock.local(moment).replace(second=0, microsecond=0)
    extra = (-local.minute) % STEP_MINUTES or (STEP_MINUTES if local.second else 0)
    return local + dt.timedelta(minutes=extra)


def _bookable(user: User) -> list[Room]:
    rooms = Room.objects.filter(is_active=True, out_of_service=False).select_related(
        "floor__building"
    )
    return finder.bookable_rooms(user, rooms)


# --- my bookings -----------------------------------------------------------------------------


def _role(user: User, booking: Booking) -> str:
    if booking.organiser_id == user.pk:
        return _("主催")
    if booking.booked_by_id == user.pk:
        return _("代理で予約")
    return _("出席")


def checkin_state(booking: Booking, now: dt.datetime) -> str:
    """The check-in state shown beside a booking."""
    if booking.checked_in_at is not None:
        return _("チェックイン済み")
    if booking.status != Booking.Status.CONFIRMED:
        return ""
    opens, closes = checkin_window(booking)
    if opens <= now < closes:
        if booking.release_due_at is not None:
            return _("チェックイン受付中（%(time)s までに）") % {
                "time": f"{clock.local(booking.release_due_at):%H:%M}"
            }
        return _("チェックイン受付中")
    if booking.release_due_at is None:
        return _("自動解放なし")
    return _("開始後%(minutes)d分以内にチェックインが必要") % {
        "minutes": round((booking.release_due_at - booking.starts_at).total_seconds() / 60)
    }


@login_required
@require_GET
def home(request: HttpRequest) -> HttpResponse:
    user = _staff(request)
    now = clock.now()
    bookings = finder.my_upcoming_bookings(user)
    manager = is_facility_manager(user)
    rows = [
        {"booking": booking, "role": _role(user, booking), "checkin": checkin_state(booking, now)}
        for booking in bookings
    ]
    return render(
        request,
        "rooms/home.html",
        {
            "active_nav": "rooms",
            "rows": rows,
            "is_manager": manager,
            "pending_count": finder.count_pending() if manager else 0,
        },
    )


# --- finding a room and a time -------------------------------------------------------------


@login_required
@require_GET
def finder_page(request: HttpRequest) -> HttpResponse:
    user = _staff(request)
    status = 200
    results: list[Room] | None = None
    if "date" in request.GET:
        form = FinderForm(request.GET)
        if form.is_valid():
            starts_at, ends_at = form.span()
            results = finder.free_rooms(
                user,
                starts_at=starts_at,
                ends_at=ends_at,
                people=form.cleaned_data["people"],
                equipment=form.cleaned_data["equipment"],
                accessible=form.cleaned_data["accessible"],
            )
        else:
            status = 400
    else:
        start = _next_quarter(clock.now())
        form = FinderForm(
            initial={
                "date": start.date(),
                "start": start.time(),
                "end": (start + DEFAULT_LENGTH).time(),
                "people": 1,
            }
        )
    context: dict[str, Any] = {"active_nav": "rooms", "form": form, "results": results}
    if results is not None:
        starts_at, ends_at = form.span()
        context["results_rows"] = [
            (
                room,
                urlencode(
                    {
                        "room": str(room.pk),
                        "start": clock.local(starts_at).isoformat(timespec="minutes"),
                        "end": clock.local(ends_at).isoformat(timespec="minutes"),
                    }
                ),
            )
            for room in results
        ]
        day = clock.local(starts_at).date()
        context["holiday"] = holiday_name(day) or ""
    template = "rooms/partials/finder_results.html" if _is_htmx(request) else "rooms/finder.html"
    return render(request, template, context, status=status)


@login_required
@require_GET
def find_time(request: HttpRequest) -> HttpResponse:
    user = _staff(request)
    rooms = _bookable(user)
    status = 200
    slots: list[dict[str, Any]] | None = None
    if "attendees" in request.GET:
        form = FindTimeForm(request.GET, viewer=user, rooms=rooms)
        room_id = _int(request.GET.get("room"))
        room = access_room_for_booking(user, room_id) if room_id is not None else None
        if room is not None and room not in rooms:
            rooms.append(room)
            form = FindTimeForm(request.GET, viewer=user, rooms=rooms)
        if form.is_valid():
            data = form.cleaned_data
            attendees: list[User] = data["attendee_users"]
            found = finder.find_times(
                attendees=attendees,
                room=room,
                first_day=data["first_day"],
                last_day=data["last_day"],
                duration=dt.timedelta(minutes=data["duration"]),
            )
            holidays = holidays_between(data["first_day"], data["last_day"])
            names = ", ".join(person.username for person in attendees)
            slots = [
                {
                    "slot": slot,
                    "holiday": holidays.get(clock.local(slot.starts_at).date(), ""),
                    "url": _slot_url(slot, room, names, len(attendees)),
                }
                for slot in found
            ]
        else:
            status = 400
    else:
        today = clock.today()
        form = FindTimeForm(
            viewer=user,
            rooms=rooms,
            initial={
                "first_day": today,
                "last_day": today + dt.timedelta(days=6),
                "duration": 60,
                "attendees": user.username,
            },
        )
    context = {"active_nav": "rooms", "form": form, "slots": slots}
    template = (
        "rooms/partials/find_time_results.html" if _is_htmx(request) else "rooms/find_time.html"
    )
    return render(request, template, context, status=status)


def _slot_url(slot: finder.Slot, room: Room | None, attendees: str, people: int) -> str:
    start = clock.local(slot.starts_at)
    end = clock.local(slot.ends_at)
    if room is not None:
        query = urlencode(
            {
                "room": str(room.pk),
                "start": start.isoformat(timespec="minutes"),
                "end": end.isoformat(timespec="minutes"),
                "attendees": attendees,
            }
        )
        return f"{reverse('rooms:booking_new')}?{query}"
    query = urlencode(
        {
            "date": start.date().isoformat(),
            "start": f"{start:%H:%M}",
            "end": f"{end:%H:%M}",
            "people": str(max(people, 1)),
        }
    )
    return f"{reverse('rooms:finder')}?{query}"


@login_required
@require_GET
def people_search(request: HttpRequest) -> HttpResponse:
    """Staff matching a name, for the people fields (an htmx partial)."""
    user = _staff(request)
    query = request.GET.get("q", "").strip()[:100]
    staff = list(search_staff(user, query=query)[:10]) if query else []
    context = {"staff": staff, "query": query}
    if request.headers.get("HX-Request") != "true":
        # Opened without htmx (no script, a bookmark): a whole page with its own form.
        return render(request, "rooms/people.html", context)
    return render(request, "rooms/partials/people_results.html", context)


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value not in (None, "") else None  # type: ignore[arg-type]  # None checked
    except ValueError:
        return None


# --- booking ----------------------------------------------------------------------------------


def _render_form(
    request: HttpRequest,
    form: BookingForm,
    *,
    status: int = 200,
    booking: Booking | None = None,
) -> HttpResponse:
    date = None
    if form.is_bound and hasattr(form, "cleaned_data"):
        date = form.cleaned_data.get("date")
    if date is None:
        raw = form["date"].value()
        date = raw if isinstance(raw, dt.date) else _date(str(raw or ""))
    holiday = (holiday_name(date) or "") if date else ""
    return render(
        request,
        "rooms/booking_form.html",
        {
            "active_nav": "rooms",
            "form": form,
            "booking": booking,
            "holiday": holiday,
        },
        status=status,
    )


def _date(value: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        return None


def _refuse(
    request: HttpRequest, form: BookingForm, exc: BookingError, booking: Booking | None = None
) -> HttpResponse:
    form.add_error(None, _error_text(exc))
    status = 409 if isinstance(exc, BookingConflict) else 400
    return _render_form(request, form, status=status, booking=booking)


def _booked_message(booking: Booking) -> str:
    if booking.status == Booking.Status.PENDING:
        return _("「%(title)s」を仮予約しました。施設管理者の承認をお待ちください。") % {
            "title": booking.title
        }
    return _("「%(title)s」を予約しました。") % {"title": booking.title}


@login_required
@require_http_methods(["GET", "POST"])
def booking_new(request: HttpRequest) -> HttpResponse:
    user = _staff(request)
    rooms = _bookable(user)
    if request.method != "POST":
        return _render_form(
            request, BookingForm(viewer=user, rooms=rooms, initial=_initial(request))
        )
    room_id = _int(request.POST.get("room"))
    # The permission comes first: a room limited to other 所属 is refused (403, audited)
    # whatever else was typed.
    room = access_room_for_booking(user, room_id) if room_id is not None else None
    if room is not None and room not in rooms:
        rooms.append(room)
    form = BookingForm(request.POST, viewer=user, rooms=rooms)
    if room is None or not form.is_valid():
        return _render_form(request, form, status=400)
    data = form.cleaned_data
    starts_at, ends_at = form.span()
    if data.get("frequency"):
        return _create_series(request, form, room)
    try:
        booking = check_create_booking(
            BookingRequest(
                room=room,
                starts_at=starts_at,
                ends_at=ends_at,
                title=data["title"],
                organiser=data["organiser_user"],
                attendees=data["attendee_users"],
                is_private=data["is_private"],
                note=data["note"],
                wants_web_meeting=data["wants_web_meeting"],
            ),
            acting_user=user,
        )
    except BookingError as exc:
        return _refuse(request, form, exc)
    messages.success(request, _booked_message(booking))
    return redirect("rooms:booking_detail", booking_id=booking.pk)


def _create_series(request: HttpRequest, form: BookingForm, room: Room) -> HttpResponse:
    assert isinstance(request.user, User)
    data = form.cleaned_data
    weekdays = sorted(int(day) for day in data.get("weekdays") or ())
    if data["frequency"] == "weekly" and not weekdays:
        weekdays = [data["date"].isoweekday()]
    elif data["frequency"] != "weekly":
        weekdays = []  # monthly rules take the day or weekday of the first date
    try:
        series, bookings, skipped = check_create_series(
            room,
            organiser=data["organiser_user"],
            title=data["title"],
            frequency=data["frequency"],
            interval=data.get("interval") or 1,
            weekdays=weekdays,
            first_date=data["date"],
            until_date=data.get("until_date"),
            count=data.get("count"),
            start_time=data["start"],
            end_time=data["end"],
            attendees=data["attendee_users"],
            is_private=data["is_private"],
            note=data["note"],
            wants_web_meeting=data["wants_web_meeting"],
            skip_conflicts=data["skip_conflicts"],
            acting_user=request.user,
        )
    except BookingError as exc:
        return _refuse(request, form, exc)
    text = _("定期予約「%(title)s」を%(count)d回分登録しました。") % {
        "title": series.title,
        "count": len(bookings),
    }
    if skipped:
        days = "、".join(f"{day.month}/{day.day}" for day in skipped[:10])
        more = _(" ほか%(count)d日") % {"count": len(skipped) - 10} if len(skipped) > 10 else ""
        text += " " + _("予約済みのため飛ばした日: %(days)s") % {"days": days + more}
    messages.success(request, text)
    if bookings:
        return redirect("rooms:booking_detail", booking_id=bookings[0].pk)
    return redirect("rooms:home")


def _initial(request: HttpRequest) -> dict[str, Any]:
    """The form prefilled from a finder link (``?room=ID&start=ISO&end=ISO``)."""
    start = parse_local(request.GET.get("start", "")) or _next_quarter(clock.now())
    end = parse_local(request.GET.get("end", ""))
    if end is None or end <= start:
        end = start + DEFAULT_LENGTH
    return {
        "room": _int(request.GET.get("room")),
        "date": start.date(),
        "start": start.time(),
        "end": end.time(),
        "title": request.GET.get("title", "")[:200],
        "attendees": request.GET.get("attendees", "")[:2000],
        "interval": 1,
    }


@login_required
@require_GET
def booking_detail(request: HttpRequest, booking_id: int) -> HttpResponse:
    user = _staff(request)
    booking = access_booking(user, booking_id)
    now = clock.now()
    opens, closes = checkin_window(booking)
    can_check_in = (
        may_check_in(user, booking)
        and booking.status == Booking.Status.CONFIRMED
        and booking.checked_in_at is None
        and opens <= now < closes
    )
    local_day = clock.local(booking.starts_at).date()
    return render(
        request,
        "rooms/booking_detail.html",
        {
            "active_nav": "rooms",
            "booking": booking,
            "attendees": list(booking.attendees.order_by("display_name", "pk")),
            "series": booking.series,
            "checkin": checkin_state(booking, now),
            "can_check_in": can_check_in,
            "can_manage": booking.is_live and may_manage_booking(user, booking),
            "holiday": holiday_name(local_day) or "",
            "cancel_form": CancelForm(),
        },
    )


@login_required
@require_POST
def booking_checkin(request: HttpRequest, booking_id: int) -> HttpResponse:
    user = _staff(request)
    booking = access_booking_for_check_in(user, booking_id)
    try:
        checked_in = do_check_in(booking, acting_user=user, method=Booking.CheckInMethod.WEB)
    except BookingError as exc:
        messages.error(request, _error_text(exc))
        return redirect("rooms:booking_detail", booking_id=booking.pk)
    if checked_in:
        messages.success(request, _("チェックインしました。"))
    else:
        messages.info(request, _("この予約は既にチェックイン済みか、利用できない状態です。"))
    return redirect("rooms:booking_detail", booking_id=booking.pk)


@login_required
@require_http_methods(["GET", "POST"])
def booking_edit(request: HttpRequest, booking_id: int) -> HttpResponse:
    user = _staff(request)
    booking = access_booking_for_change(user, booking_id)
    rooms = _bookable(user)
    if booking.room not in rooms:
        rooms.append(booking.room)
    if request.method != "POST":
        start, end = clock.local(booking.starts_at), clock.local(booking.ends_at)
        people = booking.attendees.order_by("pk").values_list("username", flat=True)
        form = BookingForm(
            viewer=user,
            rooms=rooms,
            editing=True,
            initial={
                "title": booking.title,
                "room": booking.room_id,
                "date": start.date(),
                "start": start.time(),
                "end": end.time(),
                "attendees": ", ".join(people),
                "is_private": booking.is_private,
                "note": booking.note,
                "scope": "this",
            },
        )
        return _render_form(request, form, booking=booking)
    room_id = _int(request.POST.get("room"))
    room = booking.room
    if room_id is not None and room_id != booking.room_id:
        room = access_room_for_booking(user, room_id)
        if room not in rooms:
            rooms.append(room)
    form = BookingForm(request.POST, viewer=user, rooms=rooms, editing=True)
    if not form.is_valid():
        return _render_form(request, form, status=400, booking=booking)
    data = form.cleaned_data
    starts_at, ends_at = form.span()
    scope = data.get("scope") or "this"
    whole_series = scope != "this" and booking.series is not None
    if whole_series and data["date"] != clock.local(booking.starts_at).date():
        form.add_error("date", _("日付を変えられるのは「この回のみ」の変更だけです。"))
        return _render_form(request, form, status=400, booking=booking)
    try:
        if whole_series:
            assert booking.series is not None
            check_change_series(
                booking.series,
                scope=scope,
                from_date=booking.occurrence_date or clock.local(booking.starts_at).date(),
                acting_user=user,
                room=room,
                start_time=data["start"],
                end_time=data["end"],
                title=data["title"],
                is_private=data["is_private"],
                note=data["note"],
                attendees=data["attendee_users"],
            )
        else:
            check_change_booking(
                booking,
                acting_user=user,
                room=room,
                starts_at=starts_at,
                ends_at=ends_at,
                title=data["title"],
                is_private=data["is_private"],
                note=data["note"],
                attendees=data["attendee_users"],
            )
    except BookingError as exc:
        return _refuse(request, form, exc, booking)
    messages.success(request, _("予約を変更しました。"))
    return redirect("rooms:booking_detail", booking_id=booking.pk)


@login_required
@require_POST
def booking_cancel(request: HttpRequest, booking_id: int) -> HttpResponse:
    user = _staff(request)
    booking = access_booking_for_change(user, booking_id)
    form = CancelForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("取消の範囲を選び、理由は300文字以内で入力してください。"))
        return redirect("rooms:booking_detail", booking_id=booking.pk)
    reason = form.cleaned_data["reason"]
    scope = form.cleaned_data.get("scope") or "this"
    if booking.series is not None and scope in ("following", "all"):
        try:
            cancelled = do_cancel_series(
                booking.series,
                scope=scope,
                from_date=booking.occurrence_date or clock.local(booking.starts_at).date(),
                acting_user=user,
                reason=reason,
            )
        except BookingError as exc:
            messages.error(request, _error_text(exc))
            return redirect("rooms:booking_detail", booking_id=booking.pk)
        messages.success(
            request, _("定期予約を%(count)d回分取り消しました。") % {"count": len(cancelled)}
        )
        return redirect("rooms:home")
    if booking.series_id is not None:
        done = do_cancel_occurrence(booking, acting_user=user, reason=reason)
    else:
        done = do_cancel_booking(booking, acting_user=user, reason=reason)
    if done:
        messages.success(request, _("「%(title)s」を取り消しました。") % {"title": booking.title})
    else:
        messages.info(request, _("この予約は既に取り消されているか、解放されています。"))
    return redirect("rooms:home")


# --- approvals ---------------------------------------------------------------------------------


@login_required
@require_GET
def approvals(request: HttpRequest) -> HttpResponse:
    user = _staff(request)
    access_facility_management(user, "rooms.approvals")
    return render(
        request,
        "rooms/approvals.html",
        {"active_nav": "rooms", "pending": finder.pending_bookings(), "form": DecideForm()},
    )


@login_required
@require_POST
def booking_decide(request: HttpRequest, booking_id: int) -> HttpResponse:
    user = _staff(request)
    access_facility_management(user, "rooms.decide")
    booking = access_booking(user, booking_id)
    form = DecideForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("承認か却下を選んでください（理由は300文字以内）。"))
        return redirect("rooms:approvals")
    approve = form.cleaned_data["decision"] == "approve"
    decided = do_decide_booking(
        booking, approve=approve, acting_user=user, note=form.cleaned_data["note"]
    )
    if not decided:
        messages.info(request, _("この予約は既に承認・却下されているか、取り消されています。"))
    elif approve:
        messages.success(request, _("「%(title)s」を承認しました。") % {"title": booking.title})
    else:
        messages.success(request, _("「%(title)s」を却下しました。") % {"title": booking.title})
    return redirect("rooms:approvals")


urlpatterns: list[URLPattern] = [
    path("", home, name="home"),
    path("find/", finder_page, name="finder"),
    path("find-time/", find_time, name="find_time"),
    path("people/", people_search, name="people_search"),
    path("book/", booking_new, name="booking_new"),
    path("bookings/<int:booking_id>/", booking_detail, name="booking_detail"),
    path("bookings/<int:booking_id>/edit/", booking_edit, name="booking_edit"),
    path("bookings/<int:booking_id>/cancel/", booking_cancel, name="booking_cancel"),
    path("bookings/<int:booking_id>/check-in/", booking_checkin, name="booking_checkin"),
    path("bookings/<int:booking_id>/decide/", booking_decide, name="booking_decide"),
    path("approvals/", approvals, name="approvals"),
]
