"""The chat JSON API: conversations, messages, 既読, and who may call what (sessions,
bots with a chat:send token, tokens without it)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.cache import cache
from django.test import Client
from pytest_django import DjangoAssertNumQueries

from tests.conftest import PASSWORD
from yakuba.audit.models import AuditEntry
from yakuba.audit.record import Actor
from yakuba.chat.actions.conversations import do_add_members, do_archive
from yakuba.chat.models import Conversation, Membership, Message
from yakuba.chat.notices import notices_conversation, notify_person
from yakuba.directory.actions.auth import do_create_token
from yakuba.directory.models import User

API = "/api/chat"


@pytest.fixture(autouse=True)
def _fresh_rate_counters() -> Iterator[None]:
    cache.clear()
    yield
    cache.clear()


def body(response: Any) -> Any:
    return json.loads(response.content)


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def post(client: Client, path: str, data: dict[str, Any] | None = None, **headers: str) -> Any:
    return client.post(
        f"{API}{path}", json.dumps(data or {}), content_type="application/json", headers=headers
    )


def send(client: Client, conversation: Conversation, text: str, key: str, **extra: Any) -> Any:
    return post(
        client,
        f"/conversations/{conversation.pk}/messages",
        {"text": text, "client_key": key, **extra},
    )


@pytest.fixture
def bot(db: None) -> User:
    """A bot that posts the day's 防災 information.  (Made directly: no action creates
    bot accounts yet.)"""
    return User.objects.create_user("bousai-bot", None, display_name="防災情報ボット", kind="bot")


def token_for(user: User, scopes: list[str]) -> str:
    _row, raw = do_create_token(
        user, name="chat", scopes=scopes, expires_at=None, acting_user=Actor.system("test")
    )
    return raw


def test_it_sends_once_per_client_key(bunsho_channel: Conversation, alice: User) -> None:
    client = signed_in(alice)
    first = send(client, bunsho_channel, "**至急** 書類の提出は本日まで", "web-1")
    assert first.status_code == 201, first.content
    created = body(first)
    assert created["html"].startswith("<strong>至急</strong>")
    assert created["read_count"] == 0
    again = send(client, bunsho_channel, "**至急** 書類の提出は本日まで", "web-1")
    assert again.status_code == 200
    assert body(again)["id"] == created["id"]
    assert Message.objects.count() == 1


def test_it_answers_a_send_with_what_it_built_in_few_queries(
    bunsho_channel: Conversation,
    alice: User,
    bob: User,
    django_assert_num_queries: DjangoAssertNumQueries,
) -> None:
    """No second read of the message just sent: the answer is the payload the members
    were sent, with 既読 0 (no query: only the sender has seen it)."""
    client = signed_in(alice)
    send(client, bunsho_channel, "一通目", "q-1")
    send(signed_in(bob), bunsho_channel, "ボブから", "q-2")
    # 1 the session, 2 the user, 3 the membership with its conversation (access),
    # 4 SAVEPOINT, 5 the seq (UPDATE … RETURNING), 6 INSERT the message, 7 the members,
    # 8 the sender's pointer (stays: Bob's message was not shown to her), 9 RELEASE.
    with django_assert_num_queries(9):
        sent = send(client, bunsho_channel, "二通目", "q-3")
    assert sent.status_code == 201, sent.content
    answer = body(sent)
    stored = body(client.get(f"{API}/conversations/{bunsho_channel.pk}/changes?after=2"))
    assert answer == stored["items"][0]
    assert (answer["text"], answer["sender_name"], answer["read_count"]) == ("二通目", "青木 愛", 0)
    again = send(client, bunsho_channel, "二通目", "q-3")
    assert again.status_code == 200
    assert body(again) == answer
    post(signed_in(bob), f"/conversations/{bunsho_channel.pk}/read", {"seq": answer["seq"]})
    assert body(send(client, bunsho_channel, "二通目", "q-3"))["read_count"] == 1


def test_it_answers_a_send_without_kidoku_where_receipts_are_off(
    bunsho_channel: Conversation, alice: User, dora: User
) -> None:
    off = signed_in(dora).patch(
        f"{API}/conversations/{bunsho_channel.pk}",
        json.dumps({"read_receipts": False}),
        content_type="application/json",
    )
    assert off.status_code == 200, off.content
    client = signed_in(alice)
    sent = send(client, bunsho_channel, "既読なし", "rr-1")
    assert sent.status_code == 201, sent.content
    assert body(sent)["read_count"] is None
    assert body(send(client, bunsho_channel, "既読なし", "rr-1"))["read_count"] is None


def test_it_answers_errors_in_the_one_format(
    bunsho_channel: Conversation, alice: User, bob: User, dora: User, settings: Any
) -> None:
    client = signed_in(alice)
    empty = send(client, bunsho_channel, "  ", "e-1")
    assert empty.status_code == 400
    error = body(empty)["error"]
    assert error["code"] == "empty"
    assert error["fields"] == {"text": ["メッセージを入力してください。"]}
    assert error["message_en"] == "The message is empty."
    missing_key = post(client, f"/conversations/{bunsho_channel.pk}/messages", {"text": "a"})
    assert missing_key.status_code == 422
    assert "client_key" in body(missing_key)["error"]["fields"]
    settings.CHAT_MENTION_CONFIRM_OVER = 1
    many = send(client, bunsho_channel, "@全員 避難訓練", "e-2")
    assert many.status_code == 409
    assert body(many)["error"]["code"] == "confirm_mentions"
    assert body(many)["error"]["details"] == {"count": 2}
    confirmed = send(client, bunsho_channel, "@全員 避難訓練", "e-2", confirm_mentions=True)
    assert confirmed.status_code == 201
    assert signed_in(alice).get(f"{API}/conversations/999999/messages").status_code == 404


def test_it_refuses_outsiders(bunsho_channel: Conversation, alice: User, charlie: User) -> None:
    send(signed_in(alice), bunsho_channel, "文書係の連絡", "o-1")
    message = Message.objects.get()
    outsider = signed_in(charlie)
    for response in (
        outsider.get(f"{API}/conversations/{bunsho_channel.pk}/messages"),
        outsider.get(f"{API}/conversations/{bunsho_channel.pk}/changes?after=0"),
        outsider.get(f"{API}/messages/{message.pk}/thread"),
        outsider.get(f"{API}/messages/{message.pk}/readers"),
        send(outsider, bunsho_channel, "のぞき見", "o-2"),
        post(outsider, f"/messages/{message.pk}/reactions", {"emoji": "👀"}),
        post(outsider, f"/conversations/{bunsho_channel.pk}/read", {"seq": 1}),
    ):
        assert response.status_code == 403, response.content
        assert body(response)["error"]["code"] == "forbidden"
    assert Message.objects.count() == 1
    assert Client().get(f"{API}/conversations").status_code == 401


def test_it_lists_conversations_with_unread_counts(
    bunsho_channel: Conversation, alice: User, bob: User
) -> None:
    send(signed_in(alice), bunsho_channel, "@bob 確認してください", "l-1")
    rows = body(signed_in(bob).get(f"{API}/conversations"))
    channel = next(row for row in rows if row["id"] == bunsho_channel.pk)
    assert (channel["unread"], channel["mentions_unread"], channel["first_unread_seq"]) == (1, 1, 1)
    assert channel["kind"] == "department"
    read = post(signed_in(bob), f"/conversations/{bunsho_channel.pk}/read", {"seq": 1})
    assert body(read) == {"moved": True, "last_read_seq": 1}
    rows = body(signed_in(bob).get(f"{API}/conversations"))
    assert next(row for row in rows if row["id"] == bunsho_channel.pk)["unread"] == 0


def test_it_pages_messages_and_shows_kidoku(
    bunsho_channel: Conversation,
    alice: User,
    bob: User,
    dora: User,
    django_assert_num_queries: DjangoAssertNumQueries,
) -> None:
    client = signed_in(alice)
    for i in range(4):
        send(client, bunsho_channel, f"連絡{i}", f"p-{i}")
    post(signed_in(bob), f"/conversations/{bunsho_channel.pk}/read", {"seq": 2})
    # 1 the session, 2 the user, 3 the conversation, 4 membership (access), 5 the page
    # with senders, 6 reactions, 7 files, 8 the members' read pointers (既読).
    with django_assert_num_queries(8):
        page = body(client.get(f"{API}/conversations/{bunsho_channel.pk}/messages?limit=3"))
    assert [m["text"] for m in page["items"]] == ["連絡1", "連絡2", "連絡3"]
    assert [m["read_count"] for m in page["items"]] == [1, 0, 0]
    assert page["more"]
    older = body(client.get(f"{API}/conversations/{bunsho_channel.pk}/messages?before=2"))
    assert [m["text"] for m in older["items"]] == ["連絡0"]
    first_id = older["items"][0]["id"]
    readers = body(client.get(f"{API}/messages/{first_id}/readers"))
    assert [(r["user"], r["name"]) for r in readers] == [(bob.pk, "坂東 歩")]
    # With 既読 off, neither counts nor the list are shown.
    settings_change = signed_in(dora).patch(
        f"{API}/conversations/{bunsho_channel.pk}",
        json.dumps({"read_receipts": False}),
        content_type="application/json",
    )
    assert settings_change.status_code == 200, settings_change.content
    assert body(settings_change)["read_receipts"] is False
    page = body(client.get(f"{API}/conversations/{bunsho_channel.pk}/messages"))
    assert {m["read_count"] for m in page["items"]} == {None}
    hidden = client.get(f"{API}/messages/{first_id}/readers")
    assert hidden.status_code == 403
    assert body(hidden)["error"]["code"] == "read_receipts_off"


def test_it_resyncs_through_changes(bunsho_channel: Conversation, alice: User) -> None:
    client = signed_in(alice)
    first = body(send(client, bunsho_channel, "一通目", "c-1"))
    body(send(client, bunsho_channel, "二通目", "c-2"))
    edited = client.patch(
        f"{API}/messages/{first['id']}",
        json.dumps({"text": "一通目（訂正）"}),
        content_type="application/json",
    )
    assert edited.status_code == 200
    assert body(edited)["edited"] is True
    changes = body(client.get(f"{API}/conversations/{bunsho_channel.pk}/changes?after=1"))
    assert [m["text"] for m in changes["items"]] == ["二通目", "一通目（訂正）"]
    assert (changes["head"], changes["more"]) == (3, False)
    bad = client.get(f"{API}/conversations/{bunsho_channel.pk}/changes?after=-1")
    assert bad.status_code == 422


def test_it_edits_deletes_reacts_pins_and_forwards(
    bunsho_channel: Conversation, project: Conversation, alice: User, bob: User
) -> None:
    alices, bobs = signed_in(alice), signed_in(bob)
    message = body(send(alices, bunsho_channel, "書庫整理の日程", "m-1"))
    url = f"{API}/messages/{message['id']}"
    not_mine = bobs.patch(url, json.dumps({"text": "改ざん"}), content_type="application/json")
    assert not_mine.status_code == 403
    reacted = post(bobs, f"/messages/{message['id']}/reactions", {"emoji": "👍", "add": True})
    assert body(reacted)["reactions"] == [{"emoji": "👍", "users": [bob.pk]}]
    pinned = post(bobs, f"/messages/{message['id']}/pin")
    assert body(pinned)["pinned"] is True
    pins = body(alices.get(f"{API}/conversations/{bunsho_channel.pk}/pins"))
    assert [p["id"] for p in pins] == [message["id"]]
    assert body(post(bobs, f"/messages/{message['id']}/unpin"))["pinned"] is False
    forwarded = post(
        alices,
        f"/messages/{message['id']}/forward",
        {"conversation": project.pk, "comment": "参考まで", "client_key": "f-1"},
    )
    assert forwarded.status_code == 201, forwarded.content
    assert body(forwarded)["forwarded_from"] == message["id"]
    assert body(forwarded)["conversation"] == project.pk
    deleted = alices.delete(url)
    assert deleted.status_code == 200
    assert body(deleted)["deleted"] is True
    assert body(deleted)["text"] == ""
    assert alices.delete(url).status_code == 404


def test_it_shows_a_thread_with_its_own_unread(
    bunsho_channel: Conversation, alice: User, bob: User
) -> None:
    alices, bobs = signed_in(alice), signed_in(bob)
    root = body(send(alices, bunsho_channel, "引越しの段取り", "t-1"))
    reply = send(bobs, bunsho_channel, "段ボールは50箱", "t-2", thread_root=root["id"])
    assert reply.status_code == 201
    thread = body(alices.get(f"{API}/messages/{root['id']}/thread"))
    assert thread["root"]["reply_count"] == 1
    assert [r["text"] for r in thread["replies"]] == ["段ボールは50箱"]
    assert thread["unread"] == 1
    marked = post(alices, f"/messages/{root['id']}/thread-read", {"seq": body(reply)["seq"]})
    assert body(marked) == {"moved": True, "last_read_seq": body(reply)["seq"]}
    assert body(alices.get(f"{API}/messages/{root['id']}/thread"))["unread"] == 0
    not_root = post(alices, f"/messages/{body(reply)['id']}/thread-read", {"seq": 1})
    assert not_root.status_code == 400


def test_it_creates_and_manages_conversations(
    channels: dict[str, Conversation], alice: User, bob: User, charlie: User
) -> None:
    alices = signed_in(alice)
    direct = post(alices, "/conversations", {"kind": "direct", "members": ["charlie"]})
    assert direct.status_code == 201, direct.content
    assert body(direct)["name"] == "千葉 茶太郎"
    again = post(alices, "/conversations", {"kind": "direct", "members": ["charlie"]})
    assert again.status_code == 200
    assert body(again)["id"] == body(direct)["id"]
    created = post(
        alices,
        "/conversations",
        {"kind": "project", "name": "防災訓練2025", "members": ["bob"], "is_private": True},
    )
    assert created.status_code == 201, created.content
    project_id = body(created)["id"]
    assert body(created)["membership"]["role"] == "owner"
    unknown = post(alices, "/conversations", {"kind": "group", "members": ["nobody"]})
    assert unknown.status_code == 400
    assert body(unknown)["error"]["code"] == "unknown_users"
    members = body(alices.get(f"{API}/conversations/{project_id}/members"))
    assert sorted(m["username"] for m in members) == ["alice", "bob"]
    added = post(alices, f"/conversations/{project_id}/members", {"users": ["charlie"]})
    assert added.status_code == 200, added.content
    removed = alices.delete(f"{API}/conversations/{project_id}/members/{charlie.pk}")
    assert removed.status_code == 204
    notify = signed_in(bob).put(
        f"{API}/conversations/{project_id}/notify",
        json.dumps({"notify": "mentions", "muted": True}),
        content_type="application/json",
    )
    assert body(notify) == {
        "role": "member",
        "notify": "mentions",
        "muted": True,
        "last_read_seq": 0,
    }
    archived = post(alices, f"/conversations/{project_id}/archive")
    assert body(archived)["archived"] is True
    refused = send(alices, Conversation.objects.get(pk=project_id), "アーカイブ後", "a-1")
    assert refused.status_code == 403
    assert body(post(alices, f"/conversations/{project_id}/unarchive"))["archived"] is False
    left = post(signed_in(bob), f"/conversations/{project_id}/leave")
    assert left.status_code == 204
    assert not Membership.objects.filter(conversation_id=project_id, user=bob).exists()


def test_it_lets_staff_join_a_public_channel(project: Conversation, charlie: User) -> None:
    client = signed_in(charlie)
    assert client.get(f"{API}/conversations/{project.pk}/messages").status_code == 200
    joined = post(client, f"/conversations/{project.pk}/join")
    assert joined.status_code == 200, joined.content
    assert body(joined)["membership"]["role"] == "member"


def test_it_lets_a_bot_send_and_read_where_it_is_a_member(
    project: Conversation, bunsho_channel: Conversation, alice: User, bot: User
) -> None:
    do_add_members(project, [bot], acting_user=alice)
    client = Client()
    auth = {"Authorization": f"Bearer {token_for(bot, ['chat:send'])}"}
    sent = post(
        client,
        f"/conversations/{project.pk}/messages",
        {"text": "本日の気象警報：なし", "client_key": "b-1"},
        **auth,
    )
    assert sent.status_code == 201, sent.content
    assert body(sent)["sender_name"] == "防災情報ボット"
    page = client.get(f"{API}/conversations/{project.pk}/messages", headers=auth)
    assert page.status_code == 200
    assert [m["text"] for m in body(page)["items"]] == ["本日の気象警報：なし"]
    elsewhere = post(
        client,
        f"/conversations/{bunsho_channel.pk}/messages",
        {"text": "x", "client_key": "b-2"},
        **auth,
    )
    assert elsewhere.status_code == 403
    assert (
        client.get(f"{API}/conversations/{bunsho_channel.pk}/messages", headers=auth).status_code
        == 403
    )


def test_it_refuses_a_token_without_the_chat_scope(
    project: Conversation, alice: User, bot: User
) -> None:
    do_add_members(project, [bot], acting_user=alice)
    auth = {"Authorization": f"Bearer {token_for(bot, ['api:read', 'api:write'])}"}
    refused = Client().get(f"{API}/conversations/{project.pk}/messages", headers=auth)
    assert refused.status_code == 403
    assert body(refused)["error"]["code"] == "forbidden"
    assert "chat:send" in body(refused)["error"]["message"]
    sent = post(
        Client(),
        f"/conversations/{project.pk}/messages",
        {"text": "x", "client_key": "n-1"},
        **auth,
    )
    assert sent.status_code == 403
    assert not Message.objects.exists()


def test_it_signs_in_with_a_password_too(bunsho_channel: Conversation, alice: User) -> None:
    client = Client()
    assert client.login(username="alice", password=PASSWORD)
    assert send(client, bunsho_channel, "パスワードでサインイン", "s-1").status_code == 201


def test_it_refuses_posting_in_an_archived_channel(project: Conversation, alice: User) -> None:
    do_archive(project, acting_user=alice)
    response = send(signed_in(alice), project, "もう閉じた", "x-1")
    assert response.status_code == 403
    assert signed_in(alice).get(f"{API}/conversations/{project.pk}/messages").status_code == 200


def test_it_refuses_ids_too_large_for_the_database(
    bunsho_channel: Conversation, project: Conversation, alice: User
) -> None:
    client = signed_in(alice)
    message = body(send(client, bunsho_channel, "元", "big-0"))
    huge = 10**30
    for response in (
        send(client, bunsho_channel, "添付", "big-1", attachments=[huge]),
        send(client, bunsho_channel, "返信", "big-2", thread_root=huge),
        post(
            client,
            f"/messages/{message['id']}/forward",
            {"conversation": huge, "client_key": "big-3"},
        ),
    ):
        assert response.status_code == 422, response.content
    assert Message.objects.count() == 1


def test_it_refuses_a_text_that_no_database_can_store(
    bunsho_channel: Conversation, alice: User
) -> None:
    raw = '{"text": "\\ud800", "client_key": "sur-1"}'
    response = signed_in(alice).post(
        f"{API}/conversations/{bunsho_channel.pk}/messages", raw, content_type="application/json"
    )
    assert response.status_code == 400, response.content
    assert body(response)["error"]["code"] == "control_characters"


def test_it_caps_the_people_named_at_creation(channels: Any, alice: User) -> None:
    response = post(
        signed_in(alice),
        "/conversations",
        {"kind": "group", "members": [f"u{i}" for i in range(40000)]},
    )
    assert response.status_code == 422
    assert "members" in body(response)["error"]["fields"]


def test_it_does_not_let_a_bot_open_conversations(
    project: Conversation, alice: User, bob: User, bot: User
) -> None:
    do_add_members(project, [bot], acting_user=alice)
    auth = {"Authorization": f"Bearer {token_for(bot, ['chat:send'])}"}
    for data in (
        {"kind": "direct", "members": ["bob"]},
        {"kind": "group", "members": ["alice", "bob"]},
        {"kind": "project", "name": "ボットの部屋"},
    ):
        response = post(Client(), "/conversations", data, **auth)
        assert response.status_code == 403, response.content
    assert not Conversation.objects.exclude(pk=project.pk).exclude(kind="department").exists()
    assert AuditEntry.objects.filter(action="auth.denied", actor_id=bot.pk).count() == 3


def test_it_marks_read_in_archived_conversations_and_notices(
    project: Conversation, alice: User, bob: User, charlie: User
) -> None:
    """Nobody posts there, but what was shown is read: the unread badge must go."""
    send(signed_in(alice), project, "最後の連絡", "ar-1")
    do_archive(project, acting_user=alice)
    bobs = signed_in(bob)
    archived = post(bobs, f"/conversations/{project.pk}/read", {"seq": 1})
    assert body(archived) == {"moved": True, "last_read_seq": 1}, archived.content
    notify_person(bob, "会議室の予約が承認されました", label="施設予約")
    notices = notices_conversation(bob)
    rows = {row["id"]: row for row in body(bobs.get(f"{API}/conversations"))}
    assert rows[notices.pk]["unread"] == 1
    marked = post(bobs, f"/conversations/{notices.pk}/read", {"seq": 1})
    assert marked.status_code == 200, marked.content
    rows = {row["id"]: row for row in body(bobs.get(f"{API}/conversations"))}
    assert rows[notices.pk]["unread"] == 0
    # A reader who is not a member (staff in a public channel) has no pointer to move.
    outsider = post(signed_in(charlie), f"/conversations/{project.pk}/read", {"seq": 1})
    assert outsider.status_code == 403


def test_it_refuses_a_username_no_account_can_have(channels: Any, alice: User) -> None:
    """PostgreSQL refuses NUL in a query: the look-up crashed with a 500."""
    for name in ("bo\x00b", "\ud800", "x" * 10_000):
        response = post(signed_in(alice), "/conversations", {"kind": "group", "members": [name]})
        assert response.status_code in (400, 422), response.content
        assert "\x00" not in body(response)["error"]["message"]


def test_it_answers_413_to_a_body_over_the_request_size_limit(
    client: Client, alice: User, bunsho_channel: Conversation
) -> None:
    client.force_login(alice)

    response = client.post(
        f"/api/chat/conversations/{bunsho_channel.pk}/messages",
        {"text": "あ" * 1_000_000, "client_key": "too-big-1"},
        content_type="application/json",
    )

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "too_large"
    assert not Message.objects.filter(client_key="too-big-1").exists()
