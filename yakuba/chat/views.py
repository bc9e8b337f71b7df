"""The chat pages: the web client's shell (/chat/) and the search page (/chat/search/).

The client (frontend/src/chat.ts) does the rest through the JSON API under /api/chat/ and
the core WebSocket.  The shell carries what the first paint needs in one json_script
block (the CSP refuses inline scripts): the conversations the person is a member of, the
UI texts (gettext, so the client holds no Japanese of its own) and the era table for
和暦 date separators (from yakuba.lib.wareki, the one date formatter).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django import forms
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from yakuba.chat import queries
from yakuba.chat.access import active_person, readable_conversations
from yakuba.chat.models import Conversation, Membership, Presence
from yakuba.directory.access import can_view_directory, search_staff
from yakuba.directory.models import User
from yakuba.lib import clock
from yakuba.lib.wareki import ERAS

SEARCH_LIMIT = 100
PEOPLE_LIMIT = 20


def _person(request: HttpRequest) -> User:
    """The signed-in person, if they may use chat (staff and guests; bots use the API)."""
    person = active_person(request.user)
    if person is None or person.kind == User.Kind.BOT:
        raise PermissionDenied("chat.page")
    return person


def conversation_list(person: User) -> list[dict[str, Any]]:
    """The sidebar's first list: ``queries.conversation_list`` (what GET
    /api/chat/conversations answers), plus, for direct messages, the other person's id
    for the presence dot (one more query)."""
    rows = queries.conversation_list(person)
    direct = [row["id"] for row in rows if row["kind"] == Conversation.Kind.DIRECT]
    others = dict(
        Membership.objects.filter(conversation_id__in=direct)
        .exclude(user=person)
        .values_list("conversation_id", "user_id")
    )
    for row in rows:
        row["other_user"] = others.get(row["id"])
    return rows


def _strings() -> dict[str, str]:
    """The client's texts.  ``{name}`` places are filled in by the client."""
    return {
        "loading": _("読み込み中…"),
        "network_error": _(
            "通信できませんでした。ネットワークの状態を確かめて、もう一度お試しください。"
        ),
        "server_error": _("処理できませんでした。しばらくしてから、もう一度お試しください。"),
        "send_kept": _("入力した文章は残っています。Enter でもう一度送信できます。"),
        "send_anyway": _("通知して送信"),
        "uploading": _("「{name}」を送信しています…"),
        "remove_file": _("添付「{name}」を外す"),
        "no_readers": _("まだ誰も読んでいません。"),
        "no_pins": _("ピン留めしたメッセージはありません。"),
        "offline": _("オフライン"),
        "mentions_n": _("自分宛て {n}件"),
        "unread_n": _("未読 {n}件"),
        "new_message": _("{name}さんから新しいメッセージ"),
        "typing": _("{names}さんが入力中…"),
        "load_older": _("以前のメッセージを読み込む"),
        "unread_from_here": _("ここから未読"),
        "no_messages": _("メッセージはまだありません。"),
        "system": _("お知らせ"),
        "edited": _("編集済み"),
        "pinned": _("ピン留め"),
        "forwarded": _("転送"),
        "deleted": _("このメッセージは削除されました。"),
        "reaction_n": _("{emoji} {n}人"),
        "replies_n": _("返信 {n}件"),
        "read_n": _("既読 {n}"),
        "read_n_open": _("既読 {n}人（読んだ人を表示）"),
        "actions": _("メッセージの操作"),
        "reply": _("返信"),
        "react": _("リアクション"),
        "react_with": _("{emoji} でリアクション"),
        "pin": _("ピン留め"),
        "unpin": _("ピン留めを外す"),
        "forward": _("転送"),
        "forwarded_done": _("転送しました。"),
        "edit": _("編集"),
        "edit_label": _("メッセージを編集"),
        "save": _("保存"),
        "cancel": _("取り消し"),
        "delete": _("削除"),
        "delete_confirm": _(
            "このメッセージを削除しますか。削除したことは他の参加者にも表示されます。"
        ),
        "presence_saved": _("在席状況を変更しました。"),
        "mention_title": _("{conversation}で{name}さんからメンション"),
        "thread_unread_n": _("未読の返信 {n}件"),
        "choose": _("選ぶ"),
        "remove_person": _("{name}さんを外す"),
        "no_people": _("該当する人はいません。"),
        "people_direct": _("相手（名前・ふりがなで検索）"),
        "people_many": _("参加者（名前・ふりがなで検索、2〜50人）"),
        "people_project": _("最初の参加者（任意。名前・ふりがなで検索）"),
        "name_optional": _("名前（任意）"),
        "name_required": _("名前"),
        "pick_one": _("相手を1人選んでください。"),
        "pick_group": _("グループには自分のほかに1〜49人を選んでください。"),
        "name_needed": _("チャンネルの名前を入力してください。"),
        "join": _("参加する"),
        "joined": _("「{name}」に参加しました。"),
        "no_channels": _("参加できる公開チャンネルはありません。"),
        "members_n": _("{n}人"),
        "private": _("非公開"),
        "archive": _("アーカイブする"),
        "unarchive": _("アーカイブを解除する"),
        "archive_confirm": _(
            "この会話をアーカイブしますか。アーカイブすると誰も投稿できなくなります。"
        ),
        "leave_confirm": _("この会話から退出しますか。"),
        "remove_member_confirm": _("{name}さんをこの会話から外しますか。"),
        "saved": _("保存しました。"),
        "added": _("{name}さんを追加しました。"),
        "removed": _("{name}さんを外しました。"),
        "left": _("「{name}」から退出しました。"),
        "guest": _("ゲスト"),
        "owner": _("管理者"),
        "notices_readonly": _("このお知らせには返信できません"),
        "archived_note": _("この会話はアーカイブされています。投稿できません。"),
        "muted": _("ミュート"),
        "settings_of": _("「{name}」の設定"),
        "leave": _("退出する"),
    }


def _int_param(request: HttpRequest, name: str) -> int | None:
    try:
        return int(request.GET.get(name, ""))
    except ValueError:
        return None


def _boot(
    person: User, open_id: int | None, focus_id: int | None, focus_thread: bool
) -> dict[str, Any]:
    return {
        "user": person.pk,
        "user_name": person.display_name,
        "api": "/api/chat/",
        "search_url": reverse("chat:search"),
        "page_url": reverse("chat:home"),
        "conversations": conversation_list(person),
        "open": open_id,
        "focus_message": focus_id,
        "focus_thread": focus_thread,
        "eras": [
            {"name": era.name, "start": era.start.isoformat(), "first_year": era.first_year}
            for era in ERAS
        ],
        "date_style": "wareki",
        "idle_minutes": settings.CHAT_PRESENCE_IDLE_MINUTES,
        "statuses": [
            {"value": value, "label": str(label)} for value, label in Presence.Status.choices
        ],
        "strings": _strings(),
    }


def people(person: User, query: str, *, guests: bool) -> list[dict[str, Any]]:
    """Up to PEOPLE_LIMIT people for the client's pickers, by name or ふりがな: serving
    staff through the directory's own search (staff only may look), and, when ``guests``
    (inviting to a project channel), guests by name.  The JSON API's staff search answers
    職員番号, not the user names the chat API takes, hence this page's own look-up."""
    text = query.strip()[:100]
    if not text or not can_view_directory(person):
        return []
    found: list[dict[str, Any]] = []
    rows = search_staff(person, query=text).order_by("employee_number")[:PEOPLE_LIMIT]
    for row in rows:
        if row.user_id == person.pk or not row.user.is_active:
            continue
        found.append(
            {
                "id": row.user_id,
                "username": row.user.username,
                "name": row.user.display_name,
                "detail": row.department.name,
                "kind": User.Kind.STAFF,
            }
        )
    if guests:
        guest_rows = User.objects.filter(
            Q(display_name__icontains=text) | Q(guest__name__icontains=text),
            kind=User.Kind.GUEST,
            is_active=True,
            guest__expires_at__gt=clock.now(),
        ).select_related("guest")[:PEOPLE_LIMIT]
        for user in guest_rows:
            found.append(
                {
                    "id": user.pk,
                    "username": user.username,
                    "name": user.display_name,
                    "detail": f"{_('ゲスト')} {user.guest.organisation}".strip(),
                    "kind": User.Kind.GUEST,
                }
            )
    return found[:PEOPLE_LIMIT]


def browsable_channels(person: User) -> list[dict[str, Any]]:
    """Public project channels, not archived, that ``person`` may read but has not
    joined (「チャンネルを探す」)."""
    rows = (
        readable_conversations(person)
        .filter(kind=Conversation.Kind.PROJECT, is_private=False, archived_at__isnull=True)
        .exclude(memberships__user=person)
        .annotate(member_count=Count("memberships"))
        .order_by("name")[:200]
    )
    return [
        {
            "id": row.pk,
            "name": row.name,
            "description": row.description,
            "members": row.member_count,
        }
        for row in rows
    ]


@login_required
@require_GET
def home(request: HttpRequest) -> HttpResponse:
    """The shell; with ``?people=…`` or ``?channels=1`` (asked for by the client with
    ``Accept: application/json``) the pickers' JSON instead."""
    person = _person(request)
    if "people" in request.GET:
        items = people(person, request.GET["people"], guests=request.GET.get("guests") == "1")
        return JsonResponse({"items": items}, json_dumps_params={"ensure_ascii": False})
    if "channels" in request.GET:
        return JsonResponse(
            {"items": browsable_channels(person)}, json_dumps_params={"ensure_ascii": False}
        )
    return render(
        request,
        "chat/home.html",
        {
            "active_nav": "chat",
            "boot": _boot(
                person,
                _int_param(request, "c"),
                _int_param(request, "m"),
                request.GET.get("thread") == "1",
            ),
            "statuses": [
                (value, label)
                for value, label in Presence.Status.choices
                if value != Presence.Status.OFFLINE
            ],
        },
    )


# --- search ------------------------------------------------------------------------------


class SearchForm(forms.Form):
    q = forms.CharField(label=_("検索する言葉"), max_length=100)
    conversation = forms.TypedChoiceField(
        label=_("会話"), coerce=int, required=False, empty_value=None
    )
    person = forms.CharField(
        label=_("送信者（名前またはユーザー名）"), max_length=100, required=False
    )
    date_from = forms.DateField(
        label=_("期間（から）"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    date_to = forms.DateField(
        label=_("期間（まで）"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    has_file = forms.BooleanField(label=_("ファイル付きのメッセージだけ"), required=False)

    def __init__(self, *args: Any, choices: list[tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["conversation"]
        assert isinstance(field, forms.TypedChoiceField)
        field.choices = [("", _("すべての会話")), *choices]

    def clean_person(self) -> int | None:
        """The one person whose name or user name matches, or None for anyone."""
        name = self.cleaned_data["person"].strip()
        if not name:
            return None
        found = list(
            User.objects.filter(
                Q(username__iexact=name) | Q(display_name__icontains=name),
                kind__in=(User.Kind.STAFF, User.Kind.GUEST, User.Kind.BOT),
            ).values_list("pk", flat=True)[:2]
        )
        if not found:
            raise forms.ValidationError(_("その名前の人は見つかりません。名前を確かめてください。"))
        if len(found) > 1:
            raise forms.ValidationError(
                _(
                    "その名前の人が複数います。氏名をもっと詳しく（またはユーザー名を）入力してください。"
                )
            )
        return found[0]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        start: dt.date | None = data.get("date_from")
        end: dt.date | None = data.get("date_to")
        if start and end and start > end:
            raise forms.ValidationError(_("期間の「から」は「まで」より前の日にしてください。"))
        return data


def _highlighted(snippet: str, highlights: list[list[int]]) -> list[tuple[str, bool]]:
    """The snippet cut into (text, is_hit) parts for the template to mark up (escaped
    there: the snippet is plain text)."""
    parts: list[tuple[str, bool]] = []
    at = 0
    for start, end in highlights:
        if start < at:
            continue  # overlaps the previous hit
        if start > at:
            parts.append((snippet[at:start], False))
        parts.append((snippet[start:end], True))
        at = end
    if at < len(snippet):
        parts.append((snippet[at:], False))
    return parts


@login_required
@require_GET
def search(request: HttpRequest) -> HttpResponse:
    """Server-rendered search (H4's ``search_messages``: only what ``person`` may read)."""
    person = _person(request)
    choices = [(str(row["id"]), row["name"]) for row in conversation_list(person)]
    form = SearchForm(request.GET or None, choices=choices)
    results: list[dict[str, Any]] | None = None
    if form.is_bound and form.is_valid():
        from yakuba.chat.actions import ChatError
        from yakuba.chat.search import search_messages

        data = form.cleaned_data
        try:
            page = search_messages(
                person,
                query=data["q"],
                conversation_id=data["conversation"],
                sender_id=data["person"],
                date_from=data["date_from"],
                date_to=data["date_to"],
                has_file=True if data["has_file"] else None,
                limit=SEARCH_LIMIT,
            )
        except ChatError as error:
            form.add_error(None, error.message)
        else:
            results = [
                {
                    **row,
                    "created": dt.datetime.fromisoformat(row["created_at"]),
                    "parts": _highlighted(row["snippet"], row["highlights"]),
                }
                for row in page.results
            ]
    return render(
        request,
        "chat/search.html",
        {"active_nav": "chat", "form": form, "results": results, "limit": SEARCH_LIMIT},
    )
