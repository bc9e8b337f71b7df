"""Room management for facility managers (施設管理者): the list of rooms, the room form
(with its photo), out of service, CSV import and export; and the photo itself, for
staff."""

from __future__ import annotations

import io
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.files.uploadedfile import UploadedFile
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import URLPattern, path, reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_POST

from yakuba.directory.models import Department, User
from yakuba.rooms import csv_io
from yakuba.rooms.access import access_facility_management, access_room
from yakuba.rooms.actions.rooms import (
    EDITABLE_FIELDS,
    do_change_room,
    do_create_room,
    do_set_out_of_service,
)
from yakuba.rooms.models import Room
from yakuba.web.csv_pages import csv_download, csv_import_page

MAX_PHOTO_BYTES = 5 * 1024 * 1024
# A room CSV is a few kilobytes (a row a room); anything far larger is a wrong file.
MAX_CSV_BYTES = 1024 * 1024
# Pillow's format name → (file extension, Content-Type).
PHOTO_FORMATS = {
    "JPEG": ("jpg", "image/jpeg"),
    "PNG": ("png", "image/png"),
    "WEBP": ("webp", "image/webp"),
}
CONTENT_TYPES = dict(PHOTO_FORMATS.values())


def photo_format(head: bytes) -> str | None:
    """The photo format from the file's first bytes (its "magic"), never its name."""
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    return None


class RoomForm(forms.ModelForm):  # type: ignore[type-arg]  # Room
    allowed_departments = forms.ModelMultipleChoiceField(
        queryset=Department.objects.filter(is_active=True).order_by("code"),
        required=False,
        label=gettext_lazy("予約できる所属"),
        help_text=gettext_lazy("選ばなければ全職員が予約できます。選んだ所属の下の係も含みます。"),
    )
    new_photo = forms.FileField(
        required=False,
        label=gettext_lazy("写真"),
        help_text=gettext_lazy("JPEG・PNG・WebP、5MBまで"),
    )
    remove_photo = forms.BooleanField(required=False, label=gettext_lazy("写真を削除する"))

    class Meta:
        model = Room
        fields = EDITABLE_FIELDS
        widgets = {
            "opens_at": forms.TimeInput(attrs={"type": "time"}, format="%H:%M"),
            "closes_at": forms.TimeInput(attrs={"type": "time"}, format="%H:%M"),
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["floor"].queryset = self.fields["floor"].queryset.select_related("building")  # type: ignore[attr-defined]  # a ModelChoiceField
        if self.instance.pk and not self.instance.open_to_all:
            self.initial["allowed_departments"] = list(
                self.instance.allowed_departments.values_list("pk", flat=True)
            )

    def clean_new_photo(self) -> UploadedFile | None:
        upload: UploadedFile | None = self.cleaned_data.get("new_photo")
        if not upload:
            return None
        if (upload.size or 0) > MAX_PHOTO_BYTES:
            raise forms.ValidationError(_("写真は5MB以下のファイルにしてください。"))
        head = upload.read(16)
        upload.seek(0)
        kind = photo_format(head)
        if kind is None:
            raise forms.ValidationError(
                _(
                    "写真は JPEG・PNG・WebP の画像ファイルにしてください"
                    "（ファイルの中身が画像ではありません）。"
                )
            )
        try:
            from PIL import Image

            with Image.open(io.BytesIO(upload.read())) as image:
                image.verify()
                if image.format != kind:
                    raise ValueError(image.format)
        except Exception:  # any decoder failure means "not a usable image"
            raise forms.ValidationError(
                _("画像を読み取れませんでした。別のファイルを選んでください。")
            ) from None
        upload.seek(0)
        extension, _content_type = PHOTO_FORMATS[kind]
        upload.name = f"room.{extension}"
        return upload

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        opens, closes = data.get("opens_at"), data.get("closes_at")
        if opens and closes and opens >= closes:
            self.add_error("closes_at", _("利用終了時刻は利用開始時刻より後にしてください。"))
        return data

    def room_values(self) -> dict[str, Any]:
        return {name: self.cleaned_data[name] for name in EDITABLE_FIELDS}

    def photo_change(self) -> Any:
        """An upload, False to remove the photo, or None to keep it."""
        if self.cleaned_data.get("new_photo"):
            return self.cleaned_data["new_photo"]
        return False if self.cleaned_data.get("remove_photo") else None


def _acting(request: HttpRequest) -> User:
    """The signed-in facility manager (``access_facility_management`` has passed)."""
    assert isinstance(request.user, User)
    return request.user


@login_required
@require_GET
def manage(request: HttpRequest) -> HttpResponse:
    access_facility_management(request.user, "rooms.manage")
    rooms = Room.objects.select_related("floor__building").prefetch_related("allowed_departments")
    return render(request, "rooms/manage/list.html", {"rooms": rooms, "active_nav": "rooms"})


@login_required
def room_new(request: HttpRequest) -> HttpResponse:
    access_facility_management(request.user, "rooms.manage")
    form = RoomForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        room = do_create_room(
            form.room_values(),
            allowed_departments=list(form.cleaned_data["allowed_departments"]),
            photo=form.photo_change() or None,
            acting_user=_acting(request),
        )
        messages.success(request, _("会議室「%(name)s」を登録しました。") % {"name": room.name})
        return redirect("rooms:manage")
    status = 400 if request.method == "POST" else 200
    return render(request, "rooms/manage/edit.html", {"form": form, "room": None}, status=status)


@login_required
def room_edit(request: HttpRequest, room_id: int) -> HttpResponse:
    access_facility_management(request.user, "rooms.manage")
    room = access_room(request.user, room_id)
    form = RoomForm(request.POST or None, request.FILES or None, instance=room)
    if request.method == "POST" and form.is_valid():
        # The form must not write: the action does (audit, events).  Re-read the room,
        # since ModelForm validation has set the new values on ``form.instance``.
        fresh = access_room(request.user, room_id)
        changed = do_change_room(
            fresh,
            form.room_values(),
            allowed_departments=list(form.cleaned_data["allowed_departments"]),
            photo=form.photo_change(),
            acting_user=_acting(request),
        )
        if changed:
            messages.success(
                request, _("会議室「%(name)s」を変更しました。") % {"name": fresh.name}
            )
        else:
            messages.info(request, _("変更はありませんでした。"))
        return redirect("rooms:manage")
    status = 400 if request.method == "POST" else 200
    return render(request, "rooms/manage/edit.html", {"form": form, "room": room}, status=status)


@login_required
@require_POST
def room_service(request: HttpRequest, room_id: int) -> HttpResponse:
    """Take a room out of service (利用停止) or back into service."""
    access_facility_management(request.user, "rooms.manage")
    room = access_room(request.user, room_id)
    stop = request.POST.get("out_of_service") == "1"
    note = request.POST.get("note", "").strip()[:200]
    if do_set_out_of_service(
        room,
        out_of_service=stop,
        note=note,
        acting_user=_acting(request),
    ):
        text = (
            _("「%(name)s」を利用停止にしました。")
            if stop
            else _("「%(name)s」の利用を再開しました。")
        )
        messages.success(request, text % {"name": room.name})
    return redirect("rooms:manage")


@login_required
def rooms_import(request: HttpRequest) -> HttpResponse:
    """Upload a room CSV: every bad row listed with its line number and nothing imported,
    or everything imported."""
    access_facility_management(request.user, "rooms.import")
    acting = _acting(request)
    return csv_import_page(
        request,
        template="rooms/manage/import.html",
        context={"columns": csv_io.COLUMNS},
        run_import=lambda data, encoding: csv_io.check_import_rooms(
            data, encoding=encoding, acting_user=acting
        ),
        max_bytes=MAX_CSV_BYTES,
        done_url=reverse("rooms:manage"),
    )


@login_required
@require_GET
def rooms_export(request: HttpRequest) -> HttpResponse:
    access_facility_management(request.user, "rooms.export")
    return csv_download(
        request,
        export=csv_io.export_rooms,
        filename="rooms.csv",
        error_url=reverse("rooms:rooms_import"),
    )


@login_required
@require_GET
def room_photo(request: HttpRequest, room_id: int) -> FileResponse:
    """A room's photo, for staff only (served by Django, not as a public media URL)."""
    room = access_room(request.user, room_id)
    if not room.photo:
        raise Http404(_("この会議室の写真はありません。"))
    extension = room.photo.name.rsplit(".", 1)[-1].lower()
    content_type = CONTENT_TYPES.get(extension)
    if content_type is None:
        raise Http404(_("この会議室の写真はありません。"))
    try:
        handle = room.photo.open("rb")
    except FileNotFoundError:
        raise Http404(_("この会議室の写真はありません。")) from None
    response = FileResponse(handle, content_type=content_type)
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, max-age=3600"
    return response


urlpatterns: list[URLPattern] = [
    path("manage/", manage, name="manage"),
    path("manage/new/", room_new, name="room_new"),
    path("manage/import/", rooms_import, name="rooms_import"),
    path("manage/export.csv", rooms_export, name="rooms_export"),
    path("manage/<int:room_id>/", room_edit, name="room_edit"),
    path("manage/<int:room_id>/service", room_service, name="room_service"),
    path("<int:room_id>/photo", room_photo, name="room_photo"),
]
