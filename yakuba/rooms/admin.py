"""The rooms in the Django admin, for IT administrators.

Buildings, floors and holidays are plain reference data: their saves and deletes are
audited as ``ADMIN_CHANGE`` by the directory's ``AuditedModelAdmin``.  Rooms are changed
through the room actions (``ROOM_CREATED`` / ``ROOM_CHANGED``, events to the floor
boards) on the facility manager's pages (/rooms/manage/), so here they are read-only with
a link there.  Bookings and series are read-only: every write of a booking must go
through the booking actions (locking, the exclusion constraint's retries, mail, events).
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy as _

from yakuba.directory.admin import AuditedModelAdmin, ItAdminOnly
from yakuba.rooms.models import Booking, BookingSeries, Building, Floor, Holiday, Room


class ReadOnlyAdmin(ItAdminOnly, admin.ModelAdmin):  # type: ignore[type-arg]  # any model
    """Viewable by IT administrators; no add, change or delete."""

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Building)
class BuildingAdmin(AuditedModelAdmin):
    list_display = ("code", "name", "sort_order")
    search_fields = ("code", "name")


@admin.register(Floor)
class FloorAdmin(AuditedModelAdmin):
    list_display = ("building", "name", "level")
    list_filter = ("building",)
    list_select_related = ("building",)


@admin.register(Holiday)
class HolidayAdmin(AuditedModelAdmin):
    list_display = ("date", "name")
    date_hierarchy = "date"


@admin.register(Room)
class RoomAdmin(ReadOnlyAdmin):
    list_display = (
        "code",
        "name",
        "floor",
        "capacity",
        "requires_approval",
        "out_of_service",
        "edit_link",
    )
    list_filter = ("floor__building", "requires_approval", "out_of_service", "is_active")
    list_select_related = ("floor__building",)
    search_fields = ("code", "name")
    exclude = ("checkin_secret", "feed_secret")

    @admin.display(description=_("変更"))
    def edit_link(self, obj: Room) -> SafeString:
        return format_html(
            '<a href="{}">{}</a>',
            reverse("rooms:room_edit", args=[obj.pk]),
            _("会議室の管理で変更"),
        )


@admin.register(BookingSeries)
class BookingSeriesAdmin(ReadOnlyAdmin):
    list_display = ("room", "title", "frequency", "first_date", "until_date", "status")
    list_filter = ("status", "frequency")
    list_select_related = ("room",)
    raw_id_fields = ("organiser", "booked_by")


@admin.register(Booking)
class BookingAdmin(ReadOnlyAdmin):
    list_display = ("room", "starts_at", "ends_at", "title", "organiser", "status", "checked_in_at")
    list_filter = ("status", "room__floor__building")
    list_select_related = ("room", "organiser")
    date_hierarchy = "starts_at"
    search_fields = ("title", "room__code", "organiser__username")
    exclude = ("ical_uid",)
    raw_id_fields = ("organiser", "booked_by", "attendees", "series")
