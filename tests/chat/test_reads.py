"""Read pointers (既読): forward only, read marks, 既読 N and the readers list, unread
counts and the first-unread marker, resync after a gap, and the query budgets."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

import pytest
from django.db import connection
from pytest_django import DjangoAssertNumQueries

from yakuba.chat import access, queries
from yakuba.chat.actions.conversations import do_change_conversation, do_get_or_create_direct
from yakuba.chat.actions.messages import (
    check_send_message,
    do_delete_message,
    do_edit_message,
    do_toggle_reaction,
)
from yakuba.chat.actions.reads import do_mark_read, do_mark_thread_read
from yakuba.chat.models import Conversation, Membership, MentionNotice, Message, ReadMark
from yakuba.directory.models import User
from yakuba.lib import clock

from .conftest import Sent

_keys = iter(range(1, 10**6))


def send(user: User, conversation: Conversation, text: str, **kwargs: Any) -> Message:
    kwargs.setdefault("client_key", f"r-{user.pk}-{next(_keys)}")
    membership = access.access_conversation_for_post(user, conversation.pk)
    message, _created = check_send_message(membership, text=text, acting_user=user, **kwargs)
    return message


def read(user: User, conversation: Conversation, seq: int) -> bool:
    return do_mark_read(access.access_conversation_for_post(user, conversation.pk), up_to_seq=seq)


def pointer(user: User, conversation: Conversation) -> int:
    return Membership.objects.get(user=user, conversation=conversation).last_read_seq


def test_it_moves_the_pointer_forward_only_and_keeps_each_move(
    bunsho_channel: Conversation, alice: User, bob: User
) -> None:
    for text in ("一", "二", "三"):
        send(alice, bunsho_channel, text)
    assert read(bob, bunsho_channel, 2)
    assert not read(bob, bunsho_channel, 1)
    assert not read(bob, bunsho_channel, 2)
    assert pointer(bob, bunsho_channel) == 2
    assert read(bob, bunsho_channel, 99)  # capped at the head
    assert pointer(bob, bunsho_channel) == 3
    marks = list(ReadMark.objects.filter(user=bob).values_list("from_seq", "to_seq"))
    assert marks == [(0, 2), (2, 3)]


def test_it_tells_the_members_only_where_receipts_are_shown(
    bunsho_channel: Conversation, alice: User, bob: User, dora: User, sent: Sent
) -> None:
    send(alice, bunsho_channel, "回覧")
    sent.clear()
    read(bob, bunsho_channel, 1)
    reads = [(payload, ids) for payload, ids in sent if payload["op"] == "read"]
    assert len(reads) == 1
    assert reads[0][0]["user"] == bob.pk
    assert reads[0][0]["seq"] == 1
    assert reads[0][1] == sorted([alice.pk, bob.pk, dora.pk])
    do_change_conversation(bunsho_channel, acting_user=dora, read_receipts=False)
    send(alice, bunsho_channel, "二通目")
    sent.clear()
    read(bob, bunsho_channel, 2)
    assert [payload for payload, _ids in sent if payload["op"] == "read"] == []


def test_it_settles_pending_mention_emails_when_read(
    bunsho_channel: Conversation, alice: User, bob: User, settings: Any
) -> None:
    settings.CHAT_MENTION_EMAIL_DELAY_MINUTES = 30
    first = send(alice, bunsho_channel, "@bob 至急")
    second = send(alice, bunsho_channel, "@bob もう一件")
    assert MentionNotice.objects.filter(user=bob).count() == 2
    read(bob, bunsho_channel, first.seq)
    outcome = dict(MentionNotice.objects.values_list("message_id", "outcome"))
    assert outcome == {first.pk: "read", second.pk: ""}


def test_it_counts_kidoku_from_the_pointers_of_others(
    bunsho_channel: Conversation,
    alice: User,
    bob: User,
    dora: User,
    django_assert_num_queries: DjangoAssertNumQueries,
) -> None:
    first = send(alice, bunsho_channel, "一通目")
    second = send(alice, bunsho_channel, "二通目")
    read(bob, bunsho_channel, first.seq)
    messages = [first, second]
    with django_assert_num_queries(1):  # the members' pointers
        counts = queries.read_counts(bunsho_channel, messages)
    assert counts == {first.pk: 1, second.pk: 0}
    read(dora, bunsho_channel, second.seq)
    assert queries.read_counts(bunsho_channel, messages) == {first.pk: 2, second.pk: 1}
    # The sender's own pointer never counts.
    bobs = send(bob, bunsho_channel, "三通目")
    assert queries.read_counts(bunsho_channel, [bobs]) == {bobs.pk: 0}


def test_it_lists_who_read_a_message_and_when(
    bunsho_channel: Conversation, alice: User, bob: User, dora: User
) -> None:
    start = dt.datetime(2025, 6, 12, 0, 0, tzinfo=dt.UTC)
    with clock.frozen_at(start):
        first = send(alice, bunsho_channel, "一通目")
        second = send(alice, bunsho_channel, "二通目")
    with clock.frozen_at(start + dt.timedelta(minutes=5)):
        read(dora, bunsho_channel, second.seq)
    with clock.frozen_at(start + dt.timedelta(minutes=9)):
        read(bob, bunsho_channel, first.seq)
    with clock.frozen_at(start + dt.timedelta(minutes=20)):
        read(bob, bunsho_channel, second.seq)
    assert queries.readers(first) == [
        (dora.pk, "土田 乃", start + dt.timedelta(minutes=5)),
        (bob.pk, "坂東 歩", start + dt.timedelta(minutes=9)),
    ]
    assert [(uid, at) for uid, _name, at in queries.readers(second)] == [
        (dora.pk, start + dt.timedelta(minutes=5)),
        (bob.pk, start + dt.timedelta(minutes=20)),
    ]
    do_change_conversation(bunsho_channel, acting_user=dora, read_receipts=False)
    first.conversation.refresh_from_db()
    assert queries.readers(first) == []


def test_it_counts_unread_and_marks_the_first_unread(
    bunsho_channel: Conversation, project: Conversation, alice: User, bob: User
) -> None:
    send(alice, bunsho_channel, "一")
    root = send(alice, bunsho_channel, "@bob 二")
    send(alice, bunsho_channel, "スレッド内", thread_root_id=root.pk)
    gone = send(alice, bunsho_channel, "消す")
    do_delete_message(gone, acting_user=alice)
    bobs = send(bob, bunsho_channel, "自分の")
    fifth = send(alice, bunsho_channel, "@全員 五")
    rows = {row["id"]: row for row in queries.conversation_list(bob)}
    channel = rows[bunsho_channel.pk]
    # Sending is not reading: Bob's own message left his pointer before 一 and 二 (not
    # shown to him); it does not count itself, nor do the reply or the deleted one.
    assert (channel["unread"], channel["first_unread_seq"]) == (3, 1)
    assert channel["mentions_unread"] == 2
    read(bob, bunsho_channel, fifth.seq - 1)
    channel = {row["id"]: row for row in queries.conversation_list(bob)}[bunsho_channel.pk]
    assert (channel["unread"], channel["first_unread_seq"]) == (1, fifth.seq)
    assert channel["mentions_unread"] == 1
    assert rows[project.pk]["unread"] == 0
    assert rows[project.pk]["first_unread_seq"] is None
    # Alice sent 五 after Bob's message without being shown it: it stays unread to her.
    alices = {row["id"]: row for row in queries.conversation_list(alice)}
    assert (alices[bunsho_channel.pk]["unread"], alices[bunsho_channel.pk]["first_unread_seq"]) == (
        1,
        bobs.seq,
    )


def test_it_counts_unread_before_the_readers_own_message(
    bunsho_channel: Conversation, alice: User, bob: User
) -> None:
    send(alice, bunsho_channel, "一")
    root = send(alice, bunsho_channel, "@bob 二")
    rows = {row["id"]: row for row in queries.conversation_list(bob)}
    assert rows[bunsho_channel.pk]["unread"] == 2
    assert rows[bunsho_channel.pk]["first_unread_seq"] == 1
    assert rows[bunsho_channel.pk]["mentions_unread"] == 1
    read(bob, bunsho_channel, root.seq)
    rows = {row["id"]: row for row in queries.conversation_list(bob)}
    assert (rows[bunsho_channel.pk]["unread"], rows[bunsho_channel.pk]["mentions_unread"]) == (
        0,
        0,
    )


def test_it_lists_conversations_in_a_fixed_number_of_queries(
    channels: dict[str, Conversation],
    project: Conversation,
    alice: User,
    bob: User,
    charlie: User,
    django_assert_num_queries: DjangoAssertNumQueries,
) -> None:
    direct, _created = do_get_or_create_direct(alice, charlie, acting_user=alice)
    for conversation in (channels["bunsho"], channels["somu_ka"], project, direct):
        send(alice, conversation, "@bob お知らせ")
    # 1 memberships + conversations + member counts, 2 unread counts, 3 unread mentions,
    # 4 the other members' names of direct/unnamed group conversations (Bob has none).
    with django_assert_num_queries(3):
        rows = queries.conversation_list(bob)
    assert len(rows) == 4  # 文書係, 総務課, 総務部, the project
    with django_assert_num_queries(4):
        alices = queries.conversation_list(alice)
    names = {row["id"]: row["name"] for row in alices}
    assert names[direct.pk] == "千葉 茶太郎"
    assert {row["id"]: row["other_user"] for row in alices}[direct.pk] == charlie.pk
    counts = {row["id"]: row["members"] for row in alices}
    assert counts[direct.pk] == 2
    assert counts[project.pk] == 2


def test_it_pages_back_through_history_without_n_plus_one(
    bunsho_channel: Conversation,
    alice: User,
    bob: User,
    django_assert_num_queries: DjangoAssertNumQueries,
) -> None:
    sent_messages = [send(alice if i % 2 else bob, bunsho_channel, f"m{i}") for i in range(7)]
    for message in sent_messages[:3]:
        do_toggle_reaction(message, emoji="👍", add=True, acting_user=bob)
    root = sent_messages[0]
    send(bob, bunsho_channel, "スレッドの返信", thread_root_id=root.pk)
    # 1 the page (with senders), 2 reactions, 3 files.
    with django_assert_num_queries(3):
        page = queries.messages_page(bunsho_channel, limit=5)
        payloads = queries.message_payloads(page.messages)
    assert [p["text"] for p in payloads] == ["m2", "m3", "m4", "m5", "m6"]
    assert page.more
    older = queries.messages_page(bunsho_channel, before_seq=page.messages[0].seq, limit=5)
    assert [m.text for m in older.messages] == ["m0", "m1"]
    assert not older.more
    assert queries.message_payloads(older.messages)[0]["reply_count"] == 1


def test_it_resyncs_changes_once_each_in_change_order(
    bunsho_channel: Conversation, alice: User, bob: User
) -> None:
    first = send(alice, bunsho_channel, "一通目")
    known = first.seq
    second = send(bob, bunsho_channel, "二通目")
    do_edit_message(first, text="一通目（訂正）", acting_user=alice)
    reply = send(bob, bunsho_channel, "返信", thread_root_id=second.pk)
    changes = queries.changes_after(bunsho_channel, known)
    assert [m.pk for m in changes.messages] == [first.pk, reply.pk, second.pk]
    assert changes.messages[0].text == "一通目（訂正）"
    assert changes.head == Conversation.objects.get(pk=bunsho_channel.pk).last_seq
    assert not changes.more
    limited = queries.changes_after(bunsho_channel, known, limit=2)
    assert limited.more
    assert limited.head == limited.messages[-1].changed_seq
    rest = queries.changes_after(bunsho_channel, limited.head, limit=2)
    assert [m.pk for m in rest.messages] == [second.pk]
    assert queries.changes_after(bunsho_channel, changes.head).messages == []


@pytest.mark.parametrize("seq", [-1, 0])
def test_it_ignores_a_pointer_that_does_not_move(
    bunsho_channel: Conversation, alice: User, bob: User, seq: int
) -> None:
    send(alice, bunsho_channel, "一")
    assert not read(bob, bunsho_channel, seq)
    assert not ReadMark.objects.filter(user=bob).exists()


def test_it_counts_kidoku_of_a_reply_from_the_thread_pointers(
    bunsho_channel: Conversation,
    alice: User,
    bob: User,
    dora: User,
    django_assert_num_queries: DjangoAssertNumQueries,
) -> None:
    """A reply is shown in its thread only: Dora reading the timeline past it has not
    read it; Bob opening the thread has."""
    root = send(alice, bunsho_channel, "引越しの段取り")
    reply = send(alice, bunsho_channel, "段ボールは50箱", thread_root_id=root.pk)
    later = send(alice, bunsho_channel, "別件")
    read(dora, bunsho_channel, later.seq)
    assert queries.read_counts(bunsho_channel, [reply]) == {reply.pk: 0}
    root.refresh_from_db()
    do_mark_thread_read(bob, root, up_to_seq=reply.seq)
    # 1 the members' pointers, 2 the thread pointers.
    with django_assert_num_queries(2):
        counts = queries.read_counts(bunsho_channel, [root, reply, later])
    assert counts == {root.pk: 1, reply.pk: 1, later.pk: 1}


def test_it_counts_a_mention_in_a_thread_until_the_thread_is_read(
    bunsho_channel: Conversation, alice: User, bob: User
) -> None:
    root = send(bob, bunsho_channel, "書庫の整理")
    reply = send(alice, bunsho_channel, "@bob 鍵をお願いします", thread_root_id=root.pk)
    later = send(alice, bunsho_channel, "別件です")
    read(bob, bunsho_channel, later.seq)  # the timeline, not the thread

    def mentions() -> int:
        rows = {row["id"]: row for row in queries.conversation_list(bob)}
        return int(rows[bunsho_channel.pk]["mentions_unread"])

    assert mentions() == 1
    root.refresh_from_db()
    assert do_mark_thread_read(bob, root, up_to_seq=reply.seq)
    assert mentions() == 0


def test_it_tells_where_the_pointer_is_when_another_tab_moved_it(
    bunsho_channel: Conversation, alice: User, bob: User
) -> None:
    for text in ("一", "二", "三"):
        send(alice, bunsho_channel, text)
    stale = access.access_conversation_for_post(bob, bunsho_channel.pk)
    assert read(bob, bunsho_channel, 3)  # another tab, meanwhile
    assert not do_mark_read(stale, up_to_seq=3)
    assert stale.last_read_seq == 3


def test_it_lists_the_readers_of_a_reply_from_the_thread(
    bunsho_channel: Conversation, alice: User, bob: User, dora: User
) -> None:
    """Dora read the timeline past the reply without opening the thread: not a reader."""
    root = send(alice, bunsho_channel, "引越しの段取り")
    reply = send(alice, bunsho_channel, "段ボールは50箱", thread_root_id=root.pk)
    later = send(alice, bunsho_channel, "別件")
    read(dora, bunsho_channel, later.seq)
    read(bob, bunsho_channel, later.seq)
    root.refresh_from_db()
    do_mark_thread_read(bob, root, up_to_seq=reply.seq)
    assert queries.readers(reply) == [(bob.pk, "坂東 歩", None)]
    assert {uid for uid, _name, _at in queries.readers(later)} == {dora.pk, bob.pk}


@pytest.mark.django_db(transaction=True)
def test_it_resyncs_without_a_gap_while_changes_race(
    bunsho_channel: Conversation, alice: User, bob: User
) -> None:
    """Writers send, edit and react at once while a client resyncs again and again from
    the head it was given: it ends with every message in its latest state (a change
    committed out of seq order would be skipped for good), and no seq is taken twice."""
    seen: dict[int, int] = {}
    errors: list[BaseException] = []
    done = threading.Event()

    def writer(user: User, prefix: str) -> None:
        try:
            for i in range(8):
                message = send(user, bunsho_channel, f"{prefix}{i}")
                if i % 2:
                    do_edit_message(message, text=f"{prefix}{i}（訂正）", acting_user=user)
                do_toggle_reaction(message, emoji="👍", add=True, acting_user=user)
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    def poller() -> None:
        head = 0
        try:
            while not done.is_set():
                changes = queries.changes_after(bunsho_channel, head, limit=3)
                assert all(head < m.changed_seq <= changes.head for m in changes.messages)
                assert changes.head >= head
                seen.update({m.pk: m.changed_seq for m in changes.messages})
                head = changes.head
            while True:  # the writers are done: catch up from the last head
                changes = queries.changes_after(bunsho_channel, head, limit=3)
                seen.update({m.pk: m.changed_seq for m in changes.messages})
                head = changes.head
                if not changes.more:
                    break
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    writers = [
        threading.Thread(target=writer, args=(alice, "a")),
        threading.Thread(target=writer, args=(bob, "b")),
    ]
    reading = threading.Thread(target=poller)
    reading.start()
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join(timeout=120)
    done.set()
    reading.join(timeout=120)
    assert not errors, errors
    final = dict(Message.objects.values_list("pk", "changed_seq"))
    assert seen == final
    changed = sorted(final.values())
    assert len(set(changed)) == len(changed) == 16
    assert Conversation.objects.get(pk=bunsho_channel.pk).last_seq == 16 * 2 + 8
