"""Japanese search of messages and attachment names: substrings of every length, the
filters, who sees what, edits and deletions, paging, the API's errors, and the index
(FTS5 trigram on SQLite, pg_trgm on PostgreSQL) with its migration."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.db.models import QuerySet
from django.test import Client
from pytest_django.fixtures import Settings as SettingsWrapper

from yakuba.audit.models import AuditAction, AuditEntry
from yakuba.chat import access, search
from yakuba.chat.actions import ChatError
from yakuba.chat.actions.conversations import do_create_project_channel
from yakuba.chat.actions.messages import (
    check_send_message,
    do_delete_message,
    do_edit_message,
    do_toggle_reaction,
)
from yakuba.chat.attachments import check_upload_attachment
from yakuba.chat.models import Attachment, Conversation, Message
from yakuba.chat.search import search_messages
from yakuba.directory.models import User
from yakuba.lib import clock

pytestmark = pytest.mark.django_db

RESERVATION = "明日の会議室の予約をお願いします"


# --- helpers (also used by test_retention and test_export) ----------------------------------


def send(user: User, conversation: Conversation, text: str, **extra: Any) -> Message:
    """``user`` posts ``text`` through the real send action."""
    membership = access.access_conversation_for_post(user, conversation.pk)
    message, created = check_send_message(
        membership, text=text, client_key=uuid.uuid4().hex, acting_user=user, **extra
    )
    assert created
    return message


def upload(user: User, conversation: Conversation, name: str, content: bytes = b"data") -> int:
    """An attachment uploaded (not sent yet); returns its id."""
    membership = access.access_conversation_for_post(user, conversation.pk)
    attachment = check_upload_attachment(
        membership,
        upload=SimpleUploadedFile(name, content, content_type="application/octet-stream"),
        acting_user=user,
    )
    return attachment.pk


def found(user: User, query: str, **filters: Any) -> list[int]:
    """Ids of the messages ``user`` finds, newest first."""
    return [r["id"] for r in search_messages(user, query=query, **filters).results]


def as_user(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture(autouse=True)
def media(settings: SettingsWrapper, tmp_path: Path) -> Path:
    folder = tmp_path / "chat-media"
    settings.CHAT_MEDIA_DIR = folder
    settings.CHAT_SCAN_COMMAND = ""
    return folder


@pytest.fixture
def private(alice: User, bob: User) -> Conversation:
    """A private project channel of Alice's; Bob is not in it."""
    return do_create_project_channel(
        name="人事異動（内示）",
        description="",
        is_private=True,
        owners=[alice],
        members=[],
        acting_user=alice,
    )


# --- Japanese substrings ---------------------------------------------------------------------


def test_it_finds_a_japanese_phrase_by_any_part_of_it(
    alice: User, bob: User, bunsho_channel: Conversation
) -> None:
    message = send(alice, bunsho_channel, RESERVATION)
    other = send(alice, bunsho_channel, "来年度の予算要求について")

    for query in ("予約", "会議", "会議室", "会議室の予約", "室の予", "約"):
        assert found(bob, query) == [message.pk], query
    assert found(bob, "予算") == [other.pk]
    assert found(bob, "会議室の予算") == []
    assert found(bob, "予") == [other.pk, message.pk]


def test_it_finds_the_same_by_scanning_where_sqlite_has_no_trigram_index(
    alice: User, bob: User, bunsho_channel: Conversation, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An SQLite built without FTS5 or older than 3.34: the migration made no table.
    monkeypatch.setattr(search, "fts_available", lambda: False)
    message = send(alice, bunsho_channel, RESERVATION)
    send(alice, bunsho_channel, "来年度の予算要求について")

    for query in ("予約", "会議", "会議室", "会議室の予約", "約", "会議室 お願い"):
        assert found(bob, query) == [message.pk], query
    assert found(bob, "会議室の予算") == []


def test_it_needs_every_word_of_the_query(
    alice: User, bob: User, bunsho_channel: Conversation
) -> None:
    both = send(alice, bunsho_channel, RESERVATION)
    send(alice, bunsho_channel, "会議の議事録を回覧します")

    assert found(bob, "会議 予約") == [both.pk]
    # A full-width space separates words too; one short word, one long.
    assert found(bob, "会議室\u3000お願い") == [both.pk]
    assert found(bob, "会議 回覧 予約") == []


def test_it_ignores_the_case_of_latin_letters(
    alice: User, bob: User, bunsho_channel: Conversation
) -> None:
    message = send(alice, bunsho_channel, "LGWAN端末の設定手順")

    assert found(bob, "lgwan") == [message.pk]
    assert found(bob, "Lg") == [message.pk]


def test_it_takes_wildcards_and_search_syntax_literally(
    alice: User, bob: User, bunsho_channel: Conversation
) -> None:
    percent = send(alice, bunsho_channel, "回答率は100%でした")
    underscore = send(alice, bunsho_channel, "ファイル名は minutes_2026.docx です")
    quoted = send(alice, bunsho_channel, '件名は "至急" としてください')
    send(alice, bunsho_channel, "関係のないお知らせ")

    assert found(bob, "%") == [percent.pk]
    assert found(bob, "0%で") == [percent.pk]
    assert found(bob, "_") == [underscore.pk]
    assert found(bob, "s_2026") == [underscore.pk]
    assert found(bob, '"至急"') == [quoted.pk]
    assert found(bob, '"至') == [quoted.pk]
    for syntax in ("NEAR(", "a OR b", "*", "至急 AND", "-お知らせ", "^関係"):
        assert isinstance(found(bob, syntax), list), syntax
    assert found(bob, "お知らせ OR") == []


def test_it_finds_attachments_by_name(alice: User, bob: User, bunsho_channel: Conversation) -> None:
    with_file = send(
        alice,
        bunsho_channel,
        "資料を添付します",
        attachment_ids=[upload(alice, bunsho_channel, "令和8年度予算書.xlsx")],
    )
    send(alice, bunsho_channel, "予算の件は明日話します")

    assert found(bob, "予算書") == [with_file.pk]
    assert found(bob, "xlsx") == [with_file.pk]
    assert found(bob, "書.") == [with_file.pk]
    page = search_messages(bob, query="予算書")
    assert page.results[0]["matched_files"] == [with_file.attachments.get().pk]


def test_it_indexes_a_file_when_it_is_sent_not_when_it_is_uploaded(
    alice: User, bob: User, bunsho_channel: Conversation
) -> None:
    attachment_id = upload(alice, bunsho_channel, "庁舎レイアウト案.pdf")
    assert found(alice, "レイアウト案") == []

    message = send(alice, bunsho_channel, "", attachment_ids=[attachment_id])

    assert found(bob, "レイアウト案") == [message.pk]


# --- edits and deletions ---------------------------------------------------------------------


def test_it_finds_an_edited_message_by_its_new_text_only(
    alice: User, bob: User, bunsho_channel: Conversation
) -> None:
    message = send(alice, bunsho_channel, "打合せは第一会議室で行います")
    do_edit_message(message, text="打合せは第三会議室で行います", acting_user=alice)

    assert found(bob, "第三会議室") == [message.pk]
    assert found(bob, "第一会議室") == []
    assert found(bob, "第一") == []
    assert found(bob, "第三") == [message.pk]


def test_it_never_finds_a_deleted_message(
    alice: User, bob: User, bunsho_channel: Conversation
) -> None:
    message = send(
        alice,
        bunsho_channel,
        "誤送信しました：個人情報を含む名簿",
        attachment_ids=[upload(alice, bunsho_channel, "名簿.csv")],
    )
    do_delete_message(message, acting_user=alice)

    for query in ("個人情報", "名簿", "名", "名簿.csv"):
        assert found(bob, query) == [], query
        assert found(alice, query) == [], query


# --- who sees what ---------------------------------------------------------------------------


def test_it_shows_nobody_messages_of_conversations_they_cannot_read(
    alice: User,
    bob: User,
    charlie: User,
    channels: dict[str, Conversation],
    private: Conversation,
    project: Conversation,
    guest: User,
) -> None:
    in_bunsho = send(alice, channels["bunsho"], "文書係だけの会議室の予約")
    in_private = send(alice, private, "内示の会議室の予約")
    in_public = send(alice, project, "移転の会議室の予約")
    in_koseki = send(charlie, channels["koseki"], "戸籍住民課の会議室の予約")

    for query in ("会議室の予約", "予約", "約"):
        # Charlie (another 所属) sees the public channel and his own, never 文書係's.
        assert found(charlie, query) == [in_koseki.pk, in_public.pk], query
        # Bob is not in the private channel.
        assert found(bob, query) == [in_public.pk, in_bunsho.pk], query
        assert found(alice, query) == [in_public.pk, in_private.pk, in_bunsho.pk], query
        # A guest is in none of them; a public channel is for staff to look into.
        assert found(guest, query) == [], query


def test_it_refuses_a_search_in_a_named_conversation_one_may_not_read(
    alice: User, charlie: User, bunsho_channel: Conversation
) -> None:
    send(alice, bunsho_channel, RESERVATION)

    response = as_user(charlie).get(
        "/api/chat/search", {"q": "予約", "conversation": str(bunsho_channel.pk)}
    )

    assert response.status_code == 403
    denial = AuditEntry.objects.filter(action=AuditAction.PERMISSION_DENIED).get()
    assert denial.actor_id == charlie.pk
    assert denial.details["what"] == "chat.read"


# --- filters and paging ----------------------------------------------------------------------


def test_it_filters_by_conversation_person_and_file(
    alice: User, bob: User, channels: dict[str, Conversation], project: Conversation
) -> None:
    alices = send(alice, channels["bunsho"], "会議室の予約（文書係）")
    bobs = send(bob, channels["bunsho"], "会議室の予約（坂東）")
    elsewhere = send(alice, project, "会議室の予約（移転）")
    with_file = send(
        bob,
        project,
        "会議室の予約表です",
        attachment_ids=[upload(bob, project, "予約表.pdf")],
    )

    assert found(bob, "予約", conversation_id=channels["bunsho"].pk) == [bobs.pk, alices.pk]
    assert found(bob, "予約", sender_id=alice.pk) == [elsewhere.pk, alices.pk]
    assert found(bob, "会議室", has_file=True) == [with_file.pk]
    assert found(bob, "会議室", has_file=False) == [elsewhere.pk, bobs.pk, alices.pk]
    assert found(bob, "予約", conversation_id=project.pk, sender_id=bob.pk) == [with_file.pk]


def test_it_filters_by_tokyo_dates(alice: User, bob: User, bunsho_channel: Conversation) -> None:
    # 23:30 on 1 April in Tokyo is still 1 April there, though 14:30 UTC.
    late = dt.datetime(2026, 4, 1, 23, 30, tzinfo=clock.TOKYO)
    with clock.frozen_at(late):
        first = send(alice, bunsho_channel, "4月1日の会議室の予約")
    with clock.frozen_at(late + dt.timedelta(hours=1)):
        second = send(alice, bunsho_channel, "4月2日の会議室の予約")

    april = dt.date(2026, 4, 1)
    assert found(bob, "予約", date_from=april, date_to=april) == [first.pk]
    assert found(bob, "予約", date_from=april + dt.timedelta(days=1)) == [second.pk]
    assert found(bob, "予約", date_to=april) == [first.pk]
    assert found(bob, "予約", date_from=april, date_to=april + dt.timedelta(days=1)) == [
        second.pk,
        first.pk,
    ]
    with pytest.raises(ChatError) as refused:
        search_messages(bob, query="予約", date_from=april, date_to=april - dt.timedelta(days=1))
    assert refused.value.code == "bad_dates"


def test_it_pages_newest_first(alice: User, bob: User, bunsho_channel: Conversation) -> None:
    sent = [send(alice, bunsho_channel, f"会議室の予約 その{n}") for n in range(5)]
    newest_first = [m.pk for m in reversed(sent)]

    pages: list[list[int]] = []
    before = None
    while True:
        page = search_messages(bob, query="会議室", limit=2, before_id=before)
        pages.append([r["id"] for r in page.results])
        if page.next_before is None:
            break
        before = page.next_before

    assert pages == [newest_first[:2], newest_first[2:4], newest_first[4:]]


def test_it_caps_the_scan_of_short_words_and_says_where_to_go_on(
    alice: User, bob: User, bunsho_channel: Conversation, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(search, "SHORT_SCAN_MESSAGES", 3)
    old = send(alice, bunsho_channel, "古い予約")
    for n in range(4):
        send(alice, bunsho_channel, f"雑談 {n}")
    new = send(alice, bunsho_channel, "新しい予約")

    first = search_messages(bob, query="予約")
    assert [r["id"] for r in first.results] == [new.pk]
    assert first.scan_limited
    assert first.next_before is not None

    rest = search_messages(bob, query="予約", before_id=first.next_before)
    assert [r["id"] for r in rest.results] == [old.pk]
    assert rest.next_before is None
    # Three characters use the index: no cap.
    assert not search_messages(bob, query="しい予約").scan_limited


def test_it_refuses_empty_and_overlong_queries(bob: User, bunsho_channel: Conversation) -> None:
    for query, code in (
        ("", "empty_query"),
        ("\u3000 ", "empty_query"),
        ("あ" * 101, "query_too_long"),
        ("a b c d e f", "too_many_terms"),
    ):
        with pytest.raises(ChatError) as refused:
            search_messages(bob, query=query)
        assert refused.value.code == code, query


# --- the result ------------------------------------------------------------------------------


def test_it_answers_with_the_message_its_conversation_and_a_snippet(
    alice: User, bob: User, bunsho_channel: Conversation
) -> None:
    text = "お疲れさまです。" + "前置き" * 20 + RESERVATION + "。" + "後書き" * 30
    message = send(alice, bunsho_channel, text)

    response = as_user(bob).get("/api/chat/search", {"q": "会議室 予約"})

    assert response.status_code == 200, response.content
    body = json.loads(response.content)
    assert body["next_before"] is None
    assert body["scan_limited"] is False
    (result,) = body["results"]
    assert result["id"] == message.pk
    assert result["text"] == text
    assert result["sender"] == alice.pk
    assert result["conversation"] == bunsho_channel.pk
    assert result["conversation_name"] == bunsho_channel.name
    snippet = result["snippet"]
    assert snippet.startswith("…")
    assert snippet.endswith("…")
    assert len(snippet) <= search.SNIPPET_LENGTH + 2
    marked = [snippet[start:end] for start, end in result["highlights"]]
    assert marked == ["会議室", "予約"]


def test_it_names_a_direct_conversation_after_the_other_person(alice: User, bob: User) -> None:
    from yakuba.chat.actions.conversations import do_get_or_create_direct

    direct, _created = do_get_or_create_direct(alice, bob, acting_user=alice)
    send(alice, direct, RESERVATION)

    (result,) = search_messages(bob, query="予約").results

    assert result["conversation_name"] == str(alice)


def test_it_answers_bad_requests_with_a_clear_400(bob: User, bunsho_channel: Conversation) -> None:
    client = as_user(bob)
    cases = (
        ({"q": ""}, "empty_query", "q"),
        ({"q": "予約", "from": "2026/04/01"}, "bad_date", "from"),
        ({"q": "予約", "to": "4月1日"}, "bad_date", "to"),
        ({"q": "予約", "from": "2026-04-02", "to": "2026-04-01"}, "bad_dates", "from"),
        ({"q": "予約", "has_file": "maybe"}, "bad_request", "has_file"),
        ({"q": "予約", "person": "alice"}, "bad_request", "person"),
        # Days at the ends of the calendar: the day after, or UTC, does not exist.
        ({"q": "予約", "to": "9999-12-31"}, "bad_date", "to"),
        ({"q": "予約", "from": "0001-01-01"}, "bad_date", "from"),
        ({"q": "予約", "person": "9" * 30}, "bad_request", "person"),
        ({"q": "予約", "before": "9" * 30}, "bad_request", "before"),
        ({"q": "予約", "limit": "0"}, "bad_request", "limit"),
        ({"q": "予約", "limit": "101"}, "bad_request", "limit"),
    )
    for params, code, field in cases:
        response = client.get("/api/chat/search", params)
        assert response.status_code == 400, (params, response.content)
        error = json.loads(response.content)["error"]
        assert error["code"] == code, params
        assert error["fields"][field], params
        assert error["message"] != error["message_en"]
        if field == "limit":
            assert "件数" in error["message"], params


def test_it_refuses_the_search_to_callers_not_signed_in(bunsho_channel: Conversation) -> None:
    response = Client().get("/api/chat/search", {"q": "予約"})

    assert response.status_code == 401


# --- the index -------------------------------------------------------------------------------


def test_it_keeps_the_index_in_step_with_messages_and_files(
    alice: User, bunsho_channel: Conversation
) -> None:
    if connection.vendor != "sqlite":
        pytest.skip("the FTS5 table is SQLite's")
    assert search.fts_available()
    message = send(
        alice,
        bunsho_channel,
        RESERVATION,
        attachment_ids=[upload(alice, bunsho_channel, "予約表.pdf")],
    )

    def row() -> tuple[str, str] | None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT body, names FROM chat_search WHERE rowid = %s", [message.pk])
            found_row = cursor.fetchone()
        return None if found_row is None else (found_row[0], found_row[1])

    assert row() == (RESERVATION, "予約表.pdf")
    Attachment.objects.filter(message=message).update(name="予約一覧.pdf")
    assert row() == (RESERVATION, "予約一覧.pdf")
    do_edit_message(message, text="会議室の予約を取り消します", acting_user=alice)
    assert row() == ("会議室の予約を取り消します", "予約一覧.pdf")
    do_delete_message(message, acting_user=alice)
    assert row() is None


def test_it_has_the_search_index_after_every_migration(db: None) -> None:
    # A later migration that alters chat_message on SQLite rebuilds the table and drops
    # its triggers: it must recreate them (migrations/0002_search.create_sqlite).
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")
            triggers = {name for (name,) in cursor.fetchall()}
            assert {
                "chat_search_message_insert",
                "chat_search_message_update",
                "chat_search_message_delete",
                "chat_search_attachment_insert",
                "chat_search_attachment_update",
                "chat_search_attachment_delete",
            } <= triggers
        else:
            cursor.execute(
                "SELECT indexname, indexdef FROM pg_indexes WHERE indexname LIKE %s",
                ["chat_%_trgm"],
            )
            indexes = dict(cursor.fetchall())
            assert set(indexes) == {"chat_message_text_trgm", "chat_attachment_name_trgm"}
            assert "gin_trgm_ops" in indexes["chat_message_text_trgm"]


def test_it_uses_the_trigram_index_on_postgresql(
    alice: User, bob: User, bunsho_channel: Conversation
) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("pg_trgm is PostgreSQL's")
    send(alice, bunsho_channel, RESERVATION)
    query = Message.objects.filter(text__icontains="会議室").values("pk")
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        sql, params = query.query.sql_with_params()
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(line for (line,) in cursor.fetchall())
    assert "chat_message_text_trgm" in plan, plan


def test_it_uses_both_trigram_indexes_in_the_query_search_runs(
    alice: User, bob: User, bunsho_channel: Conversation
) -> None:
    # The query of search_messages itself, not a bare icontains: an OR of the text with
    # a correlated EXISTS on the files cannot be answered from either index.
    if connection.vendor != "postgresql":
        pytest.skip("pg_trgm is PostgreSQL's")
    send(alice, bunsho_channel, RESERVATION)
    scope = Message.objects.filter(
        conversation__in=access.readable_conversations(bob), deleted_at__isnull=True
    )
    query = search._matching(scope, ["会議室"]).values("pk")
    plan = explain(query)
    assert "chat_message_text_trgm" in plan, plan
    # The files' side: with a handful of attachments the planner may as well reach them
    # through their message ids (what a full test run's statistics make it do); what
    # matters is that the name index can answer the name search.
    names = Attachment.objects.filter(name__icontains="会議室")
    assert "chat_attachment_name_trgm" in explain(names.values("message_id"))


def explain(query: QuerySet[Any]) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        sql, params = query.query.sql_with_params()
        cursor.execute(f"EXPLAIN {sql}", params)
        return "\n".join(line for (line,) in cursor.fetchall())


@pytest.mark.django_db(transaction=True)
def test_it_migrates_the_index_both_ways(
    alice: User, bunsho_channel: Conversation, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Live events would be published for real at commit here; not what this test is about.
    monkeypatch.setattr("yakuba.chat.events.send_live_on_commit", lambda *args: None)
    message = send(alice, bunsho_channel, RESERVATION)
    executor = MigrationExecutor(connection)
    executor.migrate([("chat", "0001_chat")])
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("SELECT count(*) FROM sqlite_master WHERE name LIKE 'chat_search%%'")
        else:
            cursor.execute("SELECT count(*) FROM pg_indexes WHERE indexname LIKE 'chat_%%_trgm'")
        assert cursor.fetchone()[0] == 0

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes("chat"))

    # Messages written before the migration are in the index.
    assert found(alice, "会議室の予約") == [message.pk]
    assert found(alice, "予約") == [message.pk]


def test_it_searches_in_a_fixed_number_of_queries(
    alice: User,
    bob: User,
    bunsho_channel: Conversation,
    django_assert_num_queries: Any,
) -> None:
    for n in range(5):
        message = send(
            alice,
            bunsho_channel,
            f"会議室の予約 その{n}",
            attachment_ids=[upload(alice, bunsho_channel, f"予約表{n}.pdf")],
        )
        do_toggle_reaction(message, emoji="👍", add=True, acting_user=bob)
    fts = 1 if connection.vendor == "sqlite" else 0

    # [SQLite: is there an FTS5 table], the messages (with conversation and sender),
    # their reactions, their attachments.  The conversation has a name: no more.
    with django_assert_num_queries(fts + 3):
        assert len(search_messages(bob, query="会議室の予約").results) == 5
    # A short word: also the scan's boundary.
    with django_assert_num_queries(fts + 4):
        assert len(search_messages(bob, query="予約").results) == 5
