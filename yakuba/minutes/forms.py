"""Forms of the meeting pages.  They parse what was typed (times are Tokyo wall-clock
times; people are usernames or names, as on the room booking form); the actions in
``minutes.actions.meetings`` decide whether the meeting can be saved."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from yakuba.directory.models import User
from yakuba.rooms.forms import DateInput, TimeInput, resolve_people, sane_date, tokyo

PEOPLE_HELP = _(
    "職員はユーザー名か氏名、ゲスト（庁外の方）はユーザー名を、カンマか改行で区切って入力します。"
)


class MeetingForm(forms.Form):
    """A new meeting, or the change of one (``editing``: the organiser stays)."""

    title = forms.CharField(label=_("会議名"), max_length=200)
    date = forms.DateField(label=_("開催日"), widget=DateInput, validators=[sane_date])
    start = forms.TimeField(label=_("開始時刻"), widget=TimeInput)
    end = forms.TimeField(label=_("終了時刻"), widget=TimeInput)
    place = forms.CharField(label=_("場所"), max_length=200, required=False)
    organiser = forms.CharField(
        label=_("主催者"),
        required=False,
        max_length=150,
        help_text=_(
            "他の職員が主催する会議を登録するときは、その人のユーザー名か氏名を入力します。空欄なら自分です。"
        ),
    )
    attendees = forms.CharField(
        label=_("出席者"),
        required=False,
        max_length=4000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=PEOPLE_HELP,
    )
    absentees = forms.CharField(
        label=_("欠席者"),
        required=False,
        max_length=4000,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=_("職員のユーザー名か氏名を、カンマか改行で区切って入力します。"),
    )
    other_attendees = forms.CharField(
        label=_("その他の出席者（庁外）"),
        required=False,
        max_length=4000,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=_("アカウントのない出席者を1行に1人、「氏名（所属）」の形で入力します。"),
    )
    agenda = forms.CharField(
        label=_("議題"),
        required=False,
        max_length=4000,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text=_("1行に1つの議題を入力します。"),
    )

    def __init__(self, *args: Any, viewer: User, editing: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.viewer = viewer
        if editing:
            del self.fields["organiser"]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        start, end = cleaned.get("start"), cleaned.get("end")
        if start is not None and end is not None and end <= start:
            self.add_error("end", _("終了時刻は開始時刻より後にしてください。"))
        for name, guests in (("attendees", True), ("absentees", False), ("organiser", False)):
            if name not in self.fields or name not in cleaned:
                continue
            try:
                people = resolve_people(self.viewer, cleaned[name], guests=guests)
            except ValidationError as exc:
                self.add_error(name, exc)
                continue
            if name != "organiser":
                cleaned[f"{name}_users"] = people
            elif len(people) > 1:
                self.add_error(name, _("主催者は1人だけ指定してください。"))
            else:
                cleaned["organiser_user"] = people[0] if people else self.viewer
        return cleaned

    def span(self) -> tuple[dt.datetime, dt.datetime]:
        data = self.cleaned_data
        return tokyo(data["date"], data["start"]), tokyo(data["date"], data["end"])


def people_text(users: Any) -> str:
    """Users as the people fields take them back: usernames, comma-separated."""
    return ", ".join(user.username for user in users)
