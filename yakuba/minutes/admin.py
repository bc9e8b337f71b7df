"""The minutes in the Django admin, for IT administrators.

Everything here is read-only: meetings, recordings, transcription jobs and minutes change
only through the minutes actions (validation, the audit entry, events, the recordings'
files), on the minutes pages.  The admin lets an IT administrator find a meeting, see
its jobs (engine, status, error) when someone reports a failed transcription, and open
the page where the change belongs.  The ward dictionary is edited on its own page
(所属長 and IT administrators), which records ``DICTIONARY_CHANGED``.
"""

from __future__ import annotations

from django.contrib import admin
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy as _

from yakuba.minutes.models import DictionaryEntry, Meeting, Minutes, Recording, TranscriptionJob
from yakuba.rooms.admin import ReadOnlyAdmin


def _link(name: str, args: list[int], label: str) -> SafeString | str:
    try:
        return format_html('<a href="{}">{}</a>', reverse(name, args=args), label)
    except NoReverseMatch:
        return "—"


class RecordingInline(admin.TabularInline):  # type: ignore[type-arg]  # any model
    model = Recording
    fields = ("original_name", "format", "duration_ms", "size_bytes", "uploaded_by", "uploaded_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, *args: object) -> bool:
        return False

    def has_change_permission(self, *args: object) -> bool:
        return False


class JobInline(admin.TabularInline):  # type: ignore[type-arg]  # any model
    model = TranscriptionJob
    fields = ("engine", "model", "status", "created_at", "finished_at", "error")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, *args: object) -> bool:
        return False

    def has_change_permission(self, *args: object) -> bool:
        return False


@admin.register(Meeting)
class MeetingAdmin(ReadOnlyAdmin):
    list_display = ("title", "starts_at", "organiser", "department", "page_link")
    list_select_related = ("organiser", "department")
    list_filter = ("department",)
    date_hierarchy = "starts_at"
    search_fields = ("title", "organiser__username", "place")
    raw_id_fields = ("organiser", "department", "attendees", "absentees", "created_by", "booking")
    inlines = (RecordingInline, JobInline)

    @admin.display(description=_("画面"))
    def page_link(self, obj: Meeting) -> SafeString | str:
        return _link("minutes:meeting", [obj.pk], str(_("会議の概要")))


@admin.register(TranscriptionJob)
class TranscriptionJobAdmin(ReadOnlyAdmin):
    list_display = ("meeting", "engine", "status", "created_at", "finished_at", "error")
    list_filter = ("status", "engine")
    list_select_related = ("meeting",)
    raw_id_fields = ("meeting", "requested_by")


@admin.register(Minutes)
class MinutesAdmin(ReadOnlyAdmin):
    list_display = ("meeting", "style", "status", "approved_by", "approved_at", "page_link")
    list_filter = ("status", "style")
    list_select_related = ("meeting", "approved_by")
    search_fields = ("meeting__title",)
    raw_id_fields = ("meeting", "review_requested_by", "approved_by")
    exclude = ("llm_prompt", "llm_output")

    @admin.display(description=_("画面"))
    def page_link(self, obj: Minutes) -> SafeString | str:
        return _link("minutes:document", [obj.meeting_id], str(_("議事録")))


@admin.register(DictionaryEntry)
class DictionaryEntryAdmin(ReadOnlyAdmin):
    list_display = ("term", "reading", "kind", "active", "updated_at", "edit_link")
    list_filter = ("kind", "active")
    search_fields = ("term", "reading", "variants")

    @admin.display(description=_("変更"))
    def edit_link(self, obj: DictionaryEntry) -> SafeString | str:
        return _link("minutes:dictionary", [], str(_("区の辞書の画面で変更")))
