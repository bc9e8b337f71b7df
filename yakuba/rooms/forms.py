"""Forms of the booking pages.  They parse and validate what was typed; the actions
decide whether the booking can be made.  Times are typed as Tokyo wall-clock times."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from yakuba.directory.access import search_staff
from yakuba.directory.models import User
from yakuba.lib import clock
from yakuba.rooms.finder import MAX_DAYS
from yakuba.rooms.models import EQUIPMENT_FIELDS, BookingSeries, Room
from yakuba.rooms.recurrence import WEEKDAY_LABELS

# People are separated by commas (、 too), semicolons or new lines; a name may hold a space.
PEOPLE_SEPARATORS = re.compile(r"[,、，;；\n\r]+")
MAX_PEOPLE = 50

WEEKDAY_CHOICES = [(str(day), label) for day, label in WEEKDAY_LABELS.items()]


def equipment_choices() -> list[tuple[str, str]]:
    return [
        (name, str(Room._meta.get_field(name).verbose_name))  # type: ignore[union-attr]  # concrete fields
        for name in EQUIPMENT_FIELDS
    ]


# Dates far outside any booking (year 1 or 9999) overflow when a time or a day is added:
# they are refused as typing mistakes instead.
EARLIEST_DATE = dt.date(2000, 1, 1)
LATEST_DATE = dt.date(2999, 12, 31)


def sane_date(value: dt.date) -> None:
    if not EARLIEST_DATE <= value <= LATEST_DATE:
        raise ValidationError(
            _("日付は%(first)s〜%(last)sの範囲で入力してください。")
            % {"first": f"{EARLIEST_DATE:%Y-%m-%d}", "last": f"{LATEST_DATE:%Y-%m-%d}"},
            code="out_of_range",
        )


class DateInput(forms.DateInput):
    input_type = "date"


class TimeInput(forms.TimeInput):
    input_type = "time"

    def __init__(self, attrs: dict[str, Any] | None = None) -> None:
        super().__init__({"step": 300, **(attrs or {})}, format="%H:%M")


def tokyo(day: dt.date, time: dt.time) -> dt.datetime:
    return dt.datetime.combine(day, time, tzinfo=clock.TOKYO)


def parse_local(value: str) -> dt.datetime | None:
    """An ISO date-time from a link (``?start=2025-06-12T10:00``); a naive one is Tokyo
    time.  None when it does not parse."""
    try:
        moment = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if not EARLIEST_DATE <= moment.date() <= LATEST_DATE:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=clock.TOKYO)
    return clock.local(moment)


def resolve_people(viewer: User, text: str, *, guests: bool) -> list[User]:
    """Users named in ``text``: each entry is a username (staff, or a guest when
    ``guests``), or a staff member's name, ふりがな or 職員番号 that matches exactly one
    person.  Raises ``ValidationError`` listing every entry that did not."""
    entries = [entry.strip() for entry in PEOPLE_SEPARATORS.split(text) if entry.strip()]
    if len(entries) > MAX_PEOPLE:
        raise ValidationError(_("一度に指定できるのは%(max)d人までです。") % {"max": MAX_PEOPLE})
    kinds = [User.Kind.STAFF, User.Kind.GUEST] if guests else [User.Kind.STAFF]
    by_username = {
        user.username.lower(): user
        for user in User.objects.filter(
            username__in=entries, is_active=True, kind__in=kinds
        ).order_by("pk")
    }
    found: dict[int, User] = {}
    problems: list[str] = []
    for entry in entries:
        user = by_username.get(entry.lower())
        if user is None:
            matches = [
                staff.user
                for staff in search_staff(viewer, query=entry)[:2]
                if staff.user.is_active
            ]
            if len(matches) == 1:
                user = matches[0]
            elif matches:
                problems.append(
                    _("「%(entry)s」に当てはまる職員が複数います。ユーザー名で指定してください。")
                    % {"entry": entry}
                )
                continue
            else:
                problems.append(
                    _("「%(entry)s」に当てはまる人が見つかりません。") % {"entry": entry}
                )
                continue
        found.setdefault(user.pk, user)
    if problems:
        raise ValidationError(problems)
    return list(found.values())


class PeopleMixin:
    """Resolves people fields against the signed-in user's view of the directory."""

    viewer: User

    def people(self, name: str, *, guests: bool) -> list[User]:
        cleaned: dict[str, Any] = self.cleaned_data  # type: ignore[attr-defined]  # a Form mixin
        return resolve_people(self.viewer, cleaned.get(name, ""), guests=guests)


def _check_span(form: forms.Form, start_field: str = "start", end_field: str = "end") -> None:
    start, end = form.cleaned_data.get(start_field), form.cleaned_data.get(end_field)
    if start is not None and end is not None and end <= start:
        form.add_error(end_field, _("終了時刻は開始時刻より後にしてください。"))


class FinderForm(forms.Form):
    date = forms.DateField(label=_("日付"), widget=DateInput, validators=[sane_date])
    start = forms.TimeField(label=_("開始時刻"), widget=TimeInput)
    end = forms.TimeField(label=_("終了時刻"), widget=TimeInput)
    people = forms.IntegerField(label=_("人数"), min_value=1, max_value=1000, initial=1)
    equipment = forms.MultipleChoiceField(
        label=_("必要な設備"),
        required=False,
        choices=equipment_choices,
        widget=forms.CheckboxSelectMultiple,
    )
    accessible = forms.BooleanField(label=_("車椅子対応の会議室のみ"), required=False)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        _check_span(self)
        return cleaned

    def span(self) -> tuple[dt.datetime, dt.datetime]:
        data = self.cleaned_data
        return tokyo(data["date"], data["start"]), tokyo(data["date"], data["end"])


class FindTimeForm(PeopleMixin, forms.Form):
    attendees = forms.CharField(
        label=_("出席者"),
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_(
            "ユーザー名または氏名（ふりがな・職員番号も可）を、カンマか改行で区切って入力します。"
        ),
        max_length=2000,
    )
    duration = forms.TypedChoiceField(
        label=_("所要時間"),
        coerce=int,
        choices=[
            (15, _("15分")),
            (30, _("30分")),
            (45, _("45分")),
            (60, _("1時間")),
            (90, _("1時間30分")),
            (120, _("2時間")),
            (180, _("3時間")),
            (240, _("4時間")),
        ],
        initial=60,
    )
    first_day = forms.DateField(label=_("検索開始日"), widget=DateInput, validators=[sane_date])
    last_day = forms.DateField(label=_("検索終了日"), widget=DateInput, validators=[sane_date])
    room = forms.TypedChoiceField(
        label=_("会議室（任意）"), coerce=int, required=False, empty_value=None
    )

    def __init__(self, *args: Any, viewer: User, rooms: list[Room], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.viewer = viewer
        self.fields["room"].choices = [("", _("指定しない")), *room_choices(rooms)]  # type: ignore[attr-defined]  # a ChoiceField

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        first, last = cleaned.get("first_day"), cleaned.get("last_day")
        if first and last:
            if last < first:
                self.add_error("last_day", _("検索終了日は検索開始日以降にしてください。"))
            elif (last - first).days >= MAX_DAYS:
                self.add_error(
                    "last_day", _("検索できるのは%(days)d日間までです。") % {"days": MAX_DAYS}
                )
        if "attendees" in cleaned:
            try:
                cleaned["attendee_users"] = self.people("attendees", guests=False)
            except ValidationError as exc:
                self.add_error("attendees", exc)
        return cleaned


def room_choices(rooms: list[Room]) -> list[tuple[int, str]]:
    return [
        (
            room.pk,
            gettext("%(name)s（%(floor)s・定員%(capacity)d）")
            % {"name": room.name, "floor": room.floor, "capacity": room.capacity},
        )
        for room in rooms
    ]


class BookingForm(PeopleMixin, forms.Form):
    """A new booking, or the change of one (``editing``: no organiser, no recurrence)."""

    title = forms.CharField(label=_("件名"), max_length=200)
    room = forms.TypedChoiceField(label=_("会議室"), coerce=int)
    date = forms.DateField(label=_("日付"), widget=DateInput, validators=[sane_date])
    start = forms.TimeField(label=_("開始時刻"), widget=TimeInput)
    end = forms.TimeField(label=_("終了時刻"), widget=TimeInput)
    organiser = forms.CharField(
        label=_("主催者"),
        required=False,
        max_length=150,
        help_text=_(
            "他の職員の代わりに予約するときは、その人のユーザー名か氏名を入力します。空欄なら自分です。"
        ),
    )
    attendees = forms.CharField(
        label=_("出席者"),
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=_(
            "職員はユーザー名か氏名、ゲスト（庁外の方）はユーザー名を、カンマか改行で区切って入力します。"
        ),
    )
    is_private = forms.BooleanField(
        label=_("非公開（件名と出席者を他の職員に見せない）"), required=False
    )
    wants_web_meeting = forms.BooleanField(label=_("Web会議を併用する"), required=False)
    note = forms.CharField(
        label=_("備考"), required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 3})
    )
    frequency = forms.ChoiceField(
        label=_("繰り返し"),
        required=False,
        choices=[("", _("繰り返さない")), *BookingSeries.Frequency.choices],
    )
    interval = forms.IntegerField(
        label=_("間隔"), min_value=1, max_value=12, initial=1, required=False
    )
    weekdays = forms.MultipleChoiceField(
        label=_("曜日（毎週のとき）"),
        required=False,
        choices=WEEKDAY_CHOICES,
        widget=forms.CheckboxSelectMultiple,
    )
    until_date = forms.DateField(
        label=_("終了日"), required=False, widget=DateInput, validators=[sane_date]
    )
    count = forms.IntegerField(label=_("回数"), min_value=1, max_value=200, required=False)
    skip_conflicts = forms.BooleanField(label=_("予約済みの日を飛ばして登録する"), required=False)
    scope = forms.ChoiceField(
        label=_("変更する範囲"),
        required=False,
        initial="this",
        choices=[
            ("this", _("この回のみ")),
            ("following", _("この回以降すべて")),
            ("all", _("すべての回")),
        ],
        widget=forms.RadioSelect,
    )

    def __init__(
        self, *args: Any, viewer: User, rooms: list[Room], editing: bool = False, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.viewer = viewer
        self.editing = editing
        self.fields["room"].choices = room_choices(rooms)  # type: ignore[attr-defined]  # a ChoiceField
        hidden = (
            (
                "organiser",
                "frequency",
                "interval",
                "weekdays",
                "until_date",
                "count",
                "skip_conflicts",
            )
            if editing
            else ("scope",)
        )
        for name in hidden:
            del self.fields[name]
        if editing:
            del self.fields["wants_web_meeting"]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        _check_span(self)
        for name, guests in (("attendees", True), ("organiser", False)):
            if name not in self.fields or name not in cleaned:
                continue
            try:
                people = self.people(name, guests=guests)
            except ValidationError as exc:
                self.add_error(name, exc)
                continue
            if name == "attendees":
                cleaned["attendee_users"] = people
            elif len(people) > 1:
                self.add_error(name, _("主催者は1人だけ指定してください。"))
            else:
                cleaned["organiser_user"] = people[0] if people else self.viewer
        if cleaned.get("frequency"):
            if not cleaned.get("until_date") and not cleaned.get("count"):
                self.add_error("until_date", _("繰り返すときは終了日か回数を入力してください。"))
            date, until = cleaned.get("date"), cleaned.get("until_date")
            if date and until and until < date:
                self.add_error("until_date", _("終了日は日付より後にしてください。"))
        return cleaned

    def span(self) -> tuple[dt.datetime, dt.datetime]:
        data = self.cleaned_data
        return tokyo(data["date"], data["start"]), tokyo(data["date"], data["end"])


class CancelForm(forms.Form):
    reason = forms.CharField(label=_("取消の理由（任意）"), required=False, max_length=300)
    scope = forms.ChoiceField(
        required=False,
        choices=[
            ("this", _("この回のみ")),
            ("following", _("この回以降すべて")),
            ("all", _("すべての回")),
        ],
    )


class DecideForm(forms.Form):
    decision = forms.ChoiceField(choices=[("approve", _("承認")), ("reject", _("却下"))])
    note = forms.CharField(label=_("理由・連絡事項"), required=False, max_length=300)
