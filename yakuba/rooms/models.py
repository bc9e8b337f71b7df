"""会議室: rooms, their bookings, recurring series and holidays.

A booking blocks its room over ``[block_start, block_end)``: its own time plus the room's
buffer after it.  Two live bookings (pending or confirmed) of one room never have
overlapping blocks: ``actions`` checks under a lock, and on PostgreSQL an exclusion
constraint (migration 0002, btree_gist) is the backstop that no code path can skip.
"""

from __future__ import annotations

import datetime as dt
import secrets
from typing import ClassVar

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from yakuba.directory.models import Department, User
from yakuba.lib import clock


def new_secret() -> str:
    """A URL-safe secret for feed and check-in URLs (256 bits)."""
    return secrets.token_urlsafe(32)


class Building(models.Model):
    code = models.CharField(_("コード"), max_length=20, unique=True)
    name = models.CharField(_("建物名"), max_length=100)
    sort_order = models.IntegerField(_("表示順"), default=0)

    class Meta:
        verbose_name = _("建物")
        verbose_name_plural = _("建物")
        ordering = ("sort_order", "code")

    def __str__(self) -> str:
        return self.name


class Floor(models.Model):
    building = models.ForeignKey(Building, on_delete=models.PROTECT, related_name="floors")
    name = models.CharField(_("階"), max_length=50)  # 「3階」「地下1階」
    level = models.IntegerField(_("階数"), default=1)  # sorts floors; basements are negative

    class Meta:
        verbose_name = _("フロア")
        verbose_name_plural = _("フロア")
        ordering = ("building__sort_order", "building__code", "level")
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["building", "name"], name="floor_name_once")
        ]

    def __str__(self) -> str:
        return f"{self.building.name} {self.name}"


class Room(models.Model):
    """A bookable room.  Settings that shape the release of no-shows live here per room
    (``auto_release``), the rest are ward-wide (``ROOMS_*`` settings)."""

    floor = models.ForeignKey(Floor, on_delete=models.PROTECT, related_name="rooms")
    code = models.CharField(_("会議室コード"), max_length=30, unique=True)
    name = models.CharField(_("会議室名"), max_length=100)
    capacity = models.PositiveIntegerField(_("定員"))
    has_display = models.BooleanField(_("ディスプレイ"), default=False)
    has_projector = models.BooleanField(_("プロジェクター"), default=False)
    has_web_meeting_kit = models.BooleanField(_("Web会議機材"), default=False)
    has_whiteboard = models.BooleanField(_("ホワイトボード"), default=False)
    wheelchair_accessible = models.BooleanField(_("車椅子対応"), default=False)
    accessibility_note = models.CharField(_("バリアフリー情報"), max_length=200, blank=True)
    photo = models.FileField(_("写真"), upload_to="rooms/photos/", blank=True)
    # Who may book: everyone, or only the listed 所属 (and their sub-departments).
    open_to_all = models.BooleanField(_("全職員が予約可"), default=True)
    allowed_departments = models.ManyToManyField(
        Department, verbose_name=_("予約できる所属"), blank=True, related_name="+"
    )
    requires_approval = models.BooleanField(_("施設管理者の承認が必要"), default=False)
    # Bookable hours, local time (Asia/Tokyo), the same every day.
    opens_at = models.TimeField(_("利用開始時刻"), default=dt.time(8, 30))
    closes_at = models.TimeField(_("利用終了時刻"), default=dt.time(20, 0))
    buffer_minutes = models.PositiveIntegerField(_("予約間の間隔（分）"), default=0)
    # Per-room opt-out of the automatic release of no-shows.
    auto_release = models.BooleanField(_("未使用時の自動解放"), default=True)
    out_of_service = models.BooleanField(_("利用停止中"), default=False)
    out_of_service_note = models.CharField(_("利用停止の理由"), max_length=200, blank=True)
    is_active = models.BooleanField(_("有効"), default=True)
    # The QR code on the door holds this; scanning it proves the phone is at the door.
    checkin_secret = models.CharField(max_length=64, default=new_secret, unique=True)
    # The room's iCalendar feed is served at a URL holding this.
    feed_secret = models.CharField(max_length=64, default=new_secret, unique=True)
    # The device account of the tablet by the door (a User of kind "device").
    panel_device = models.OneToOneField(
        User,
        verbose_name=_("ドアパネル端末"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="panel_room",
    )

    class Meta:
        verbose_name = _("会議室")
        verbose_name_plural = _("会議室")
        ordering = ("floor__building__sort_order", "floor__level", "code")

    def __str__(self) -> str:
        return self.name

    @property
    def equipment_labels(self) -> list[str]:
        return [
            str(Room._meta.get_field(name).verbose_name)  # type: ignore[union-attr]  # concrete fields
            for name in EQUIPMENT_FIELDS
            if getattr(self, name)
        ]


# The equipment a room finder can ask for, as Room field names.
EQUIPMENT_FIELDS = ("has_display", "has_projector", "has_web_meeting_kit", "has_whiteboard")


class BookingSeries(models.Model):
    """A recurring booking (定期予約).  Its occurrences are ``Booking`` rows, made up to the
    advance-booking horizon and extended daily by the worker.  An occurrence changed on
    its own keeps ``series`` and its ``occurrence_date`` but is marked ``detached``; a
    date skipped is an exception."""

    class Frequency(models.TextChoices):
        DAILY = "daily", _("毎日")
        WEEKLY = "weekly", _("毎週")
        MONTHLY_BY_DATE = "monthly_date", _("毎月（日付）")
        MONTHLY_BY_WEEKDAY = "monthly_weekday", _("毎月（曜日）")

    class Status(models.TextChoices):
        ACTIVE = "active", _("有効")
        ENDED = "ended", pgettext_lazy("status of a recurring booking", "終了")
        CANCELLED = "cancelled", _("取消")

    room = models.ForeignKey(Room, on_delete=models.PROTECT, related_name="series")
    organiser = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    booked_by = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    title = models.CharField(_("件名"), max_length=200)
    is_private = models.BooleanField(_("非公開"), default=False)
    frequency = models.CharField(_("繰り返し"), max_length=20, choices=Frequency.choices)
    interval = models.PositiveIntegerField(_("間隔"), default=1)
    # Weekly: ISO weekdays (1 = Monday … 7 = Sunday).
    weekdays = models.JSONField(_("曜日"), default=list, blank=True)
    first_date = models.DateField(_("開始日"))
    until_date = models.DateField(_("終了日"), null=True, blank=True)
    count = models.PositiveIntegerField(_("回数"), null=True, blank=True)
    # Local wall-clock time of each occurrence (Asia/Tokyo).
    start_time = models.TimeField(_("開始時刻"))
    end_time = models.TimeField(_("終了時刻"))
    # Dates on which no occurrence is made (exceptions, 除外日).
    excluded_dates = models.JSONField(_("除外日"), default=list, blank=True)
    # Occurrences exist up to and including this date.
    generated_through = models.DateField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    consecutive_no_shows = models.PositiveIntegerField(default=0)
    no_show_warned_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        verbose_name = _("定期予約")
        verbose_name_plural = _("定期予約")

    def __str__(self) -> str:
        return f"{self.room} {self.title}"


class Booking(models.Model):
    """One booking of one room, for one span of time."""

    class Status(models.TextChoices):
        PENDING = "pending", _("承認待ち")
        CONFIRMED = "confirmed", _("予約済")
        REJECTED = "rejected", _("却下")
        CANCELLED = "cancelled", _("取消")
        RELEASED = "released", _("自動解放")

    # The statuses that hold the room (the exclusion constraint's condition).
    LIVE: ClassVar = (Status.PENDING, Status.CONFIRMED)

    class CheckInMethod(models.TextChoices):
        PANEL = "panel", _("ドアパネル")
        QR = "qr", _("QRコード")
        WEB = "web", _("画面")
        START_NOW = "start_now", _("今すぐ開始")

    room = models.ForeignKey(Room, on_delete=models.PROTECT, related_name="bookings")
    series = models.ForeignKey(
        BookingSeries, null=True, blank=True, on_delete=models.PROTECT, related_name="bookings"
    )
    # For an occurrence: the date the series rule gave it (stays when the occurrence moves).
    occurrence_date = models.DateField(null=True, blank=True)
    detached = models.BooleanField(default=False)
    organiser = models.ForeignKey(
        User, verbose_name=_("主催者"), on_delete=models.PROTECT, related_name="organised_bookings"
    )
    booked_by = models.ForeignKey(
        User, verbose_name=_("予約者"), on_delete=models.PROTECT, related_name="+"
    )
    title = models.CharField(_("件名"), max_length=200)
    # A private booking shows as 「予約あり」 to everyone but its people and managers.
    is_private = models.BooleanField(_("非公開"), default=False)
    note = models.TextField(_("備考"), blank=True)
    starts_at = models.DateTimeField(_("開始"))
    ends_at = models.DateTimeField(pgettext_lazy("end time of a booking", "終了"))
    block_start = models.DateTimeField()
    block_end = models.DateTimeField()  # ends_at plus the room's buffer
    status = models.CharField(
        _("状態"), max_length=10, choices=Status.choices, default=Status.CONFIRMED
    )
    attendees = models.ManyToManyField(
        User, verbose_name=_("出席者"), blank=True, related_name="attended_bookings"
    )
    # A web meeting held in the room (the meetings feature fills ``meeting_url``).
    wants_web_meeting = models.BooleanField(_("Web会議を併用"), default=False)
    meeting_url = models.CharField(_("Web会議URL"), max_length=500, blank=True)
    created_at = models.DateTimeField(default=clock.now)
    # When the no-show release is due (None: this booking is never released).
    release_due_at = models.DateTimeField(null=True, blank=True)
    checked_in_at = models.DateTimeField(_("チェックイン日時"), null=True, blank=True)
    checked_in_by = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    check_in_method = models.CharField(max_length=10, choices=CheckInMethod.choices, blank=True)
    ended_early_at = models.DateTimeField(null=True, blank=True)
    released_at = models.DateTimeField(_("解放日時"), null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decision_note = models.CharField(_("承認・却下の理由"), max_length=300, blank=True)
    # An .ics UID for this booking, stable across changes (RFC 5545 §3.8.4.7).
    ical_uid = models.CharField(max_length=100, unique=True, default=new_secret)
    ical_sequence = models.PositiveIntegerField(default=0)

    class Meta:
        verbose_name = _("会議室予約")
        verbose_name_plural = _("会議室予約")
        indexes: ClassVar = [
            models.Index(fields=["room", "block_start"], name="booking_room_time"),
            models.Index(fields=["organiser", "starts_at"], name="booking_organiser"),
            models.Index(
                fields=["release_due_at"],
                condition=Q(status="confirmed", checked_in_at__isnull=True),
                name="booking_release_due",
            ),
        ]
        constraints: ClassVar = [
            models.CheckConstraint(
                condition=Q(starts_at__lt=models.F("ends_at")), name="booking_starts_before_end"
            ),
            models.CheckConstraint(
                condition=Q(block_start__lte=models.F("starts_at"))
                & Q(block_end__gte=models.F("ends_at")),
                name="booking_block_covers_booking",
            ),
        ]

    def __str__(self) -> str:
        local = clock.local(self.starts_at)
        return f"{self.room} {local:%Y-%m-%d %H:%M} {self.title}"

    @property
    def is_live(self) -> bool:
        return self.status in self.LIVE


class Holiday(models.Model):
    """祝日 and the ward's own closed days (年末年始): flagged when booking, never blocked."""

    date = models.DateField(_("日付"), unique=True)
    name = models.CharField(_("名称"), max_length=100)

    class Meta:
        verbose_name = _("祝日・休庁日")
        verbose_name_plural = _("祝日・休庁日")
        ordering = ("date",)

    def __str__(self) -> str:
        return f"{self.date:%Y-%m-%d} {self.name}"


class CalendarFeed(models.Model):
    """A person's secret iCalendar URL (their bookings as organiser or attendee)."""

    user = models.OneToOneField(User, on_delete=models.CASCADE, related_name="calendar_feed")
    secret = models.CharField(max_length=64, default=new_secret, unique=True)
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        verbose_name = _("カレンダー配信URL")
        verbose_name_plural = _("カレンダー配信URL")

    def __str__(self) -> str:
        return str(self.user)
