"""Disclosure exports (情報公開請求): a conversation's or a person's messages with their
edit and deletion history, reactions, files and threads, as CSV (Excel) and JSON; the
record and audit of each export; who may export."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from pathlib import Path
from typing import Any

import pytest
from pytest_django.fixtures import Settings as SettingsWrapper

from yakuba.audit.models import AuditAction, AuditEntry
from yakuba.chat.actions import ChatError
from yakuba.chat.actions.messages import do_delete_message, do_edit_message, do_toggle_reaction
from yakuba.chat.disclosure import do_export_messages
from yakuba.chat.models import Conversation, DisclosureExport, Message
from yakuba.directory.models import User
from yakuba.lib import clock

from .test_search import as_user, send, upload

pytestmark = pytest.mark.django_db

BOM = "\ufeff"


@pytest.fixture(autouse=True)
def media(settings: SettingsWrapper, tmp_path: Path) -> Path:
    folder = tmp_path / "chat-media"
    settings.CHAT_MEDIA_DIR = folder
    settings.CHAT_SCAN_COMMAND = ""
    return folder


@pytest.fixture
def history(alice: User, bob: User, bunsho_channel: Conversation) -> dict[str, Message]:
    """文書係's channel on 1 April 2026: a message edited twice, one deleted by its
    sender, a reply in a thread, a reaction and a file."""
    start = dt.datetime(2026, 4, 1, 9, 0, tzinfo=clock.TOKYO)
    with clock.frozen_at(start):
        edited = send(alice, bunsho_channel, "会議は10時からです")
    with clock.frozen_at(start + dt.timedelta(minutes=5)):
        do_edit_message(edited, text="会議は11時からです", acting_user=alice)
    with clock.frozen_at(start + dt.timedelta(minutes=6)):
        do_edit_message(edited, text="会議は11時から第二会議室です", acting_user=alice)
        do_toggle_reaction(edited, emoji="👍", add=True, acting_user=bob)
    with clock.frozen_at(start + dt.timedelta(minutes=10)):
        deleted = send(bob, bunsho_channel, '=HYPERLINK("http://example.invalid")')
    with clock.frozen_at(start + dt.timedelta(minutes=11)):
        do_delete_message(deleted, acting_user=bob)
    with clock.frozen_at(start + dt.timedelta(minutes=20)):
        reply = send(
            bob,
            bunsho_channel,
            "資料を付けます",
            thread_root_id=edited.pk,
            attachment_ids=[upload(bob, bunsho_channel, "会議資料.pdf")],
        )
    edited.refresh_from_db()
    return {"edited": edited, "deleted": deleted, "reply": reply}


def export_csv(**kwargs: Any) -> list[dict[str, str]]:
    content = do_export_messages(fmt="csv", **kwargs)
    text = content.decode("utf-8")
    assert text.startswith(BOM)
    return list(csv.DictReader(io.StringIO(text[len(BOM) :])))


def test_it_exports_a_conversation_with_its_history_as_csv(
    erin: User, alice: User, bob: User, bunsho_channel: Conversation, history: dict[str, Message]
) -> None:
    rows = export_csv(conversation=bunsho_channel, reference="R8-情-0012", acting_user=erin)

    assert [(row["種別"], row["メッセージID"], row["本文"]) for row in rows] == [
        ("メッセージ", str(history["edited"].pk), "会議は11時から第二会議室です"),
        ("編集前", str(history["edited"].pk), "会議は10時からです"),
        ("編集前", str(history["edited"].pk), "会議は11時からです"),
        ("メッセージ", str(history["deleted"].pk), ""),
        ("削除前", str(history["deleted"].pk), '\'=HYPERLINK("http://example.invalid")'),
        ("メッセージ", str(history["reply"].pk), "資料を付けます"),
    ]
    first, _edit1, edit2, deleted, deletion, reply = rows
    assert first["送信者"] == str(alice)
    assert first["送信日時"] == "2026-04-01T09:00:00+09:00"
    assert first["編集日時"] == "2026-04-01T09:06:00+09:00"
    assert first["リアクション"] == f"👍 {bob} 2026-04-01T09:06:00+09:00"
    assert first["会話名"] == bunsho_channel.name
    assert edit2["変更日時"] == "2026-04-01T09:06:00+09:00"
    assert edit2["変更者"] == str(alice)
    assert deleted["削除日時"] == "2026-04-01T09:11:00+09:00"
    assert deleted["削除者"] == str(bob)
    assert deletion["変更者"] == str(bob)
    assert reply["スレッド親ID"] == str(history["edited"].pk)
    assert reply["添付ファイル"] == "会議資料.pdf"
    assert [row["連番"] for row in rows if row["種別"] == "メッセージ"] == sorted(
        (row["連番"] for row in rows if row["種別"] == "メッセージ"), key=int
    )


def test_it_exports_the_same_as_json(
    erin: User, bob: User, bunsho_channel: Conversation, history: dict[str, Message]
) -> None:
    content = do_export_messages(
        conversation=bunsho_channel, reference="R8-情-0012", fmt="json", acting_user=erin
    )

    document = json.loads(content.decode("utf-8"))
    assert document["reference"] == "R8-情-0012"
    assert document["exported_by"]["id"] == erin.pk
    assert document["scope"]["conversation"]["id"] == bunsho_channel.pk
    assert document["message_count"] == 3
    edited, deleted, reply = document["messages"]
    assert edited["text"] == "会議は11時から第二会議室です"
    assert [(r["change"], r["text"]) for r in edited["revisions"]] == [
        ("edit", "会議は10時からです"),
        ("edit", "会議は11時からです"),
    ]
    assert edited["reactions"] == [
        {
            "emoji": "👍",
            "user": {"id": bob.pk, "username": "bob", "name": str(bob)},
            "at": "2026-04-01T09:06:00+09:00",
        }
    ]
    assert deleted["text"] == ""
    assert deleted["deleted_by"]["id"] == bob.pk
    assert deleted["revisions"][0]["change"] == "delete"
    # The JSON is the exact record: no apostrophe before a formula.
    assert deleted["revisions"][0]["text"] == '=HYPERLINK("http://example.invalid")'
    assert reply["thread_root"] == edited["id"]
    assert [a["name"] for a in reply["attachments"]] == ["会議資料.pdf"]


def test_it_exports_a_persons_messages_across_conversations_within_dates(
    erin: User, alice: User, bob: User, bunsho_channel: Conversation, project: Conversation
) -> None:
    day = dt.datetime(2026, 4, 1, 23, 30, tzinfo=clock.TOKYO)
    with clock.frozen_at(day):
        first = send(bob, bunsho_channel, "文書係への連絡")
        send(alice, bunsho_channel, "アリスの連絡")
        second = send(bob, project, "移転プロジェクトへの連絡")
    with clock.frozen_at(day + dt.timedelta(hours=1)):
        send(bob, project, "翌日の連絡")

    rows = export_csv(
        person=bob,
        date_from=dt.date(2026, 4, 1),
        date_to=dt.date(2026, 4, 1),
        reference="R8-情-0013",
        acting_user=erin,
    )

    assert [row["メッセージID"] for row in rows] == [str(first.pk), str(second.pk)]
    assert {row["送信者ID"] for row in rows} == {str(bob.pk)}


def test_it_records_and_audits_each_export(
    erin: User, bunsho_channel: Conversation, history: dict[str, Message]
) -> None:
    do_export_messages(
        conversation=bunsho_channel, reference="R8-情-0012", fmt="csv", acting_user=erin
    )

    export = DisclosureExport.objects.get()
    assert export.requested_by == erin
    assert export.conversation == bunsho_channel
    assert export.reference == "R8-情-0012"
    assert export.message_count == 3
    entry = AuditEntry.objects.get(action=AuditAction.CHAT_EXPORTED)
    assert entry.actor_id == erin.pk
    assert entry.target_id == str(export.pk)
    assert entry.details["reference"] == "R8-情-0012"
    assert entry.details["count"] == 3
    assert entry.details["format"] == "csv"
    assert "会議" not in json.dumps(entry.details, ensure_ascii=False)


def test_it_refuses_an_export_without_reference_or_scope(
    erin: User, bunsho_channel: Conversation
) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"conversation": bunsho_channel, "reference": " ", "fmt": "csv"}, "reference_required"),
        ({"reference": "R8-1", "fmt": "csv"}, "scope_required"),
        ({"conversation": bunsho_channel, "reference": "R8-1", "fmt": "xlsx"}, "bad_format"),
        (
            {
                "conversation": bunsho_channel,
                "reference": "R8-1",
                "fmt": "csv",
                "date_from": dt.date(2026, 4, 2),
                "date_to": dt.date(2026, 4, 1),
            },
            "bad_dates",
        ),
    ]
    for kwargs, code in cases:
        with pytest.raises(ChatError) as refused:
            do_export_messages(acting_user=erin, **kwargs)
        assert refused.value.code == code
    assert not DisclosureExport.objects.exists()
    assert not AuditEntry.objects.filter(action=AuditAction.CHAT_EXPORTED).exists()


# --- over the API ----------------------------------------------------------------------------


def test_it_downloads_an_export_for_an_auditor(
    erin: User, bunsho_channel: Conversation, history: dict[str, Message]
) -> None:
    response = as_user(erin).get(
        "/api/chat/export",
        {"conversation": str(bunsho_channel.pk), "reference": "R8-情-0012", "format": "csv"},
    )

    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    disposition = response["Content-Disposition"]
    assert disposition.startswith("attachment; filename=")
    assert disposition.endswith('.csv"')
    assert response.content.startswith(BOM.encode("utf-8"))
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert len([row for row in rows if row["種別"] == "メッセージ"]) == 3


def test_it_downloads_json_for_an_it_administrator(
    ida: User, bob: User, bunsho_channel: Conversation, history: dict[str, Message]
) -> None:
    response = as_user(ida).get(
        "/api/chat/export",
        {"person": str(bob.pk), "reference": "R8-情-0014", "format": "json", "from": "2026-04-01"},
    )

    assert response.status_code == 200, response.content
    assert response["Content-Disposition"].endswith('.json"')
    document = json.loads(response.content)
    assert [m["id"] for m in document["messages"]] == [
        history["deleted"].pk,
        history["reply"].pk,
    ]


def test_it_refuses_exports_to_everyone_else_and_audits_it(
    alice: User, bob: User, dora: User, bunsho_channel: Conversation, history: dict[str, Message]
) -> None:
    for user in (bob, alice, dora):
        response = as_user(user).get(
            "/api/chat/export",
            {"conversation": str(bunsho_channel.pk), "reference": "R8-1", "format": "csv"},
        )
        assert response.status_code == 403, response.content
        assert "会議" not in response.content.decode("utf-8")
    denials = AuditEntry.objects.filter(action=AuditAction.PERMISSION_DENIED)
    assert sorted(e.actor_id or 0 for e in denials) == sorted([bob.pk, alice.pk, dora.pk])
    assert {e.details["what"] for e in denials} == {"chat.disclosure"}
    assert not DisclosureExport.objects.exists()


def test_it_answers_bad_export_requests_with_400_and_404(
    erin: User, bunsho_channel: Conversation
) -> None:
    client = as_user(erin)
    channel = str(bunsho_channel.pk)
    cases: tuple[tuple[dict[str, str], int, str], ...] = (
        ({"conversation": channel, "format": "csv"}, 400, "reference_required"),
        ({"reference": "R8-1"}, 400, "scope_required"),
        (
            {"conversation": channel, "reference": "R8-1", "format": "pdf"},
            400,
            "bad_format",
        ),
        ({"conversation": channel, "reference": "R8-1", "from": "昨日"}, 400, "bad_date"),
        ({"conversation": channel, "reference": "R8-1", "to": "9999-12-31"}, 400, "bad_date"),
        ({"conversation": "9" * 30, "reference": "R8-1"}, 400, "bad_request"),
        ({"conversation": "999999", "reference": "R8-1"}, 404, "not_found"),
        ({"person": "999999", "reference": "R8-1"}, 404, "not_found"),
    )
    for params, status, code in cases:
        response = client.get("/api/chat/export", params)
        assert response.status_code == status, (params, response.content)
        assert json.loads(response.content)["error"]["code"] == code, params
