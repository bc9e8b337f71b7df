"""Messages: send with a client key (also under a race), validation, mentions, threads,
edit and delete with their history, reactions, pins, forwarding, notices, files."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.db import connection
from pytest_django.fixtures import Settings as SettingsWrapper

from yakuba.audit.models import AuditEntry
from yakuba.chat import access, membership, queries
from yakuba.chat.actions import ChatError
from yakuba.chat.actions import messages as message_actions
from yakuba.chat.actions.conversations import do_add_members
from yakuba.chat.actions.messages import (
    check_forward_message,
    check_send_message,
    do_delete_message,
    do_edit_message,
    do_pin,
    do_post_notice,
    do_toggle_reaction,
    do_unpin,
)
from yakuba.chat.actions.reads import do_mark_read, do_mark_thread_read
from yakuba.chat.mentions import parse_mentions
from yakuba.chat.models import (
    Attachment,
    Conversation,
    Membership,
    Message,
    MessageRevision,
    Reaction,
    ReadMark,
)
from yakuba.directory.models import Department, User

from ..conftest import make_department, make_staff
from .conftest import Sent

_keys = iter(range(1, 10**6))


def send(user: User, conversation: Conversation, text: str, **kwargs: Any) -> Message:
    kwargs.setdefault("client_key", f"k-{user.pk}-{next(_keys)}")
    membership = access.access_conversation_for_post(user, conversation.pk)
    message, _created = check_send_message(membership, text=text, acting_user=user, **kwargs)
    return message


def chat_events(sent: Sent, op: str) -> list[tuple[dict[str, Any], list[int]]]:
    return [(payload, ids) for payload, ids in sent if payload.get("op") == op]


def test_it_sends_a_message_in_seq_order_and_tells_the_members(
    bunsho_channel: Conversation, alice: User, bob: User, sent: Sent
) -> None:
    first = send(alice, bunsho_channel, "おはようございます")
    second = send(bob, bunsho_channel, "本日の予定を共有します")
    assert (first.seq, second.seq) == (1, 2)
    assert (first.changed_seq, second.changed_seq) == (1, 2)
    bunsho_channel.refresh_from_db()
    assert bunsho_channel.last_seq == 2
    assert bunsho_channel.last_message_at == second.created_at
    events = chat_events(sent, "message")
    assert [payload["message"]["text"] for payload, _ids in events] == [
        "おはようございます",
        "本日の予定を共有します",
    ]
    assert events[0][1] == sorted([alice.pk, bob.pk])
    assert events[0][0]["message"]["sender_name"] == "青木 愛"


def test_it_moves_a_caught_up_senders_pointer_silently(
    bunsho_channel: Conversation, alice: User, bob: User, sent: Sent
) -> None:
    """Sending is not reading: Alice was caught up, so her pointer moves onto her own
    message, without a mark or a read event (nobody's 既読 count changes)."""
    bobs = send(bob, bunsho_channel, "先に一件")
    membership = access.access_conversation_for_post(alice, bunsho_channel.pk)
    assert do_mark_read(membership, up_to_seq=bobs.seq)
    sent.clear()
    mine = send(alice, bunsho_channel, "了解です")
    again = send(alice, bunsho_channel, "もう一言")
    pointer = Membership.objects.get(conversation=bunsho_channel, user=alice).last_read_seq
    assert pointer == again.seq
    assert list(ReadMark.objects.filter(user=alice).values_list("from_seq", "to_seq")) == [
        (0, bobs.seq)
    ]
    assert chat_events(sent, "read") == []
    # Bob's own first message moved his pointer too (nothing was before it); no more.
    assert Membership.objects.get(conversation=bunsho_channel, user=bob).last_read_seq == 1
    assert queries.read_counts(bunsho_channel, [mine]) == {mine.pk: 0}


def test_it_does_not_read_for_the_sender_what_they_were_not_shown(
    bunsho_channel: Conversation, alice: User, bob: User, sent: Sent
) -> None:
    """Bob's message came after Alice's pointer: her send leaves the pointer before it
    (no mark, no event), so Bob's message is not 既読 by her and stays unread for her;
    her own messages never count as unread."""
    bobs = send(bob, bunsho_channel, "ボブの連絡")
    sent.clear()
    send(alice, bunsho_channel, "返事")
    send(alice, bunsho_channel, "追伸")
    assert Membership.objects.get(conversation=bunsho_channel, user=alice).last_read_seq == 0
    assert not ReadMark.objects.filter(user=alice).exists()
    assert chat_events(sent, "read") == []
    assert queries.read_counts(bunsho_channel, [bobs]) == {bobs.pk: 0}
    row = {r["id"]: r for r in queries.conversation_list(alice)}[bunsho_channel.pk]
    assert (row["unread"], row["first_unread_seq"]) == (1, bobs.seq)


def test_it_passes_over_changes_but_not_others_messages_or_notices(
    bunsho_channel: Conversation, alice: User, bob: User
) -> None:
    """Caught up means no one else's top-level message between the pointer and the new
    one: a reaction, an edit or a reply in a thread takes a seq without being one."""
    first = send(alice, bunsho_channel, "一")
    assert Membership.objects.get(conversation=bunsho_channel, user=alice).last_read_seq == 1
    do_toggle_reaction(first, emoji="👍", add=True, acting_user=bob)
    send(bob, bunsho_channel, "スレッドで", thread_root_id=first.pk)
    second = send(alice, bunsho_channel, "二")
    pointer = Membership.objects.get(conversation=bunsho_channel, user=alice).last_read_seq
    assert pointer == second.seq
    do_post_notice(bunsho_channel, "停電のお知らせ", label="施設管理")
    send(alice, bunsho_channel, "三")
    after = Membership.objects.get(conversation=bunsho_channel, user=alice).last_read_seq
    assert after == second.seq


def test_it_moves_the_senders_thread_pointer_only_when_caught_up(
    bunsho_channel: Conversation, alice: User, bob: User
) -> None:
    root = send(alice, bunsho_channel, "会議室の予約について")
    first = send(alice, bunsho_channel, "自分で返信", thread_root_id=root.pk)
    assert queries.thread_pointer(alice, root) == first.seq
    bobs = send(bob, bunsho_channel, "3階を押さえました", thread_root_id=root.pk)
    # Bob was never shown Alice's reply: his thread pointer stays at the start.
    assert queries.thread_pointer(bob, root) == 0
    assert queries.thread_unread(bob, root) == 1
    send(alice, bunsho_channel, "ありがとうございます", thread_root_id=root.pk)
    assert queries.thread_pointer(alice, root) == first.seq
    assert queries.thread_unread(alice, root) == 1
    root.refresh_from_db()
    assert do_mark_thread_read(alice, root, up_to_seq=bobs.seq)
    last = send(alice, bunsho_channel, "では3階で", thread_root_id=root.pk)
    assert queries.thread_pointer(alice, root) == last.seq
    # A reply is not in the timeline: it does not move the conversation's pointer.
    assert Membership.objects.get(conversation=bunsho_channel, user=bob).last_read_seq == 0


def test_it_returns_the_first_message_when_the_client_key_repeats(
    bunsho_channel: Conversation, alice: User
) -> None:
    membership = access.access_conversation_for_post(alice, bunsho_channel.pk)
    first, created = check_send_message(
        membership, text="議事録を回覧します", client_key="retry-1", acting_user=alice
    )
    again, created_again = check_send_message(
        membership, text="議事録を回覧します", client_key="retry-1", acting_user=alice
    )
    assert (created, created_again) == (True, False)
    assert again.pk == first.pk
    assert Message.objects.filter(client_key="retry-1").count() == 1
    assert Conversation.objects.get(pk=bunsho_channel.pk).last_seq == 1


def test_it_inserts_first_and_answers_the_first_message_from_the_constraint(
    bunsho_channel: Conversation, alice: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No look-up before the INSERT: a new key is never looked up; a repeated one fails
    the INSERT on the unique constraint and the send answers with the message there,
    the seq the failed INSERT took rolled back with it."""
    real = message_actions._existing
    looked_up: list[str] = []

    def counting(sender: User, client_key: str) -> Message | None:
        looked_up.append(client_key)
        return real(sender, client_key)

    monkeypatch.setattr(message_actions, "_existing", counting)
    first = send(alice, bunsho_channel, "一通目", client_key="race-1")
    assert looked_up == []
    membership = access.access_conversation_for_post(alice, bunsho_channel.pk)
    again = message_actions.check_send(
        membership, text="一通目", client_key="race-1", acting_user=alice
    )
    assert (again.message.pk, again.created, looked_up) == (first.pk, False, ["race-1"])
    assert again.payload["text"] == "一通目"
    assert again.payload["sender_name"] == "青木 愛"
    assert Message.objects.filter(client_key="race-1").count() == 1
    assert Conversation.objects.get(pk=bunsho_channel.pk).last_seq == 1


def test_it_answers_a_retry_with_files_with_the_first_message(
    bunsho_channel: Conversation, alice: User
) -> None:
    """The retry's files are attached to the first message now: it is the answer, not
    a refusal of the files."""
    upload = Attachment.objects.create(
        conversation=bunsho_channel,
        uploaded_by=alice,
        name="配席図.pdf",
        content_type="application/pdf",
        size=1234,
        sha256="0" * 64,
        path="x/配席図.pdf",
    )
    first = send(alice, bunsho_channel, "", client_key="file-1", attachment_ids=[upload.pk])
    membership = access.access_conversation_for_post(alice, bunsho_channel.pk)
    again = message_actions.check_send(
        membership, text="", client_key="file-1", attachment_ids=[upload.pk], acting_user=alice
    )
    assert (again.message.pk, again.created) == (first.pk, False)
    assert [a["name"] for a in again.payload["attachments"]] == ["配席図.pdf"]
    with pytest.raises(ChatError) as refused:
        send(alice, bunsho_channel, "", client_key="file-2", attachment_ids=[upload.pk])
    assert refused.value.code == "bad_attachment"


@pytest.mark.django_db(transaction=True)
def test_it_makes_one_message_when_two_sends_race_with_the_same_key(
    bunsho_channel: Conversation, alice: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    published: list[dict[str, Any]] = []
    # Where live events leave the process after commit: the losing send publishes nothing.
    monkeypatch.setattr(
        "yakuba.realtime.bus.publish_live", lambda event, user_ids: published.append(event)
    )
    barrier = threading.Barrier(2)
    results: list[tuple[int, bool]] = []
    errors: list[BaseException] = []

    def attempt() -> None:
        try:
            membership = access.access_conversation_for_post(alice, bunsho_channel.pk)
            barrier.wait(timeout=10)
            message, created = check_send_message(
                membership, text="同時送信", client_key="same-key", acting_user=alice
            )
            results.append((message.pk, created))
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=attempt) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    assert Message.objects.filter(client_key="same-key").count() == 1
    assert len({pk for pk, _created in results}) == 1
    assert sorted(created for _pk, created in results) == [False, True]
    assert Conversation.objects.get(pk=bunsho_channel.pk).last_seq == 1
    assert [event["op"] for event in published if event["op"] == "message"] == ["message"]


@pytest.mark.parametrize(
    ("text", "key", "code", "field"),
    [
        ("   \n ", "ok-1", "empty", "text"),
        ("x" * 101, "ok-2", "too_long", "text"),
        ("ベル\x07が鳴る", "ok-3", "control_characters", "text"),
        ("本文", "空白 入り", "bad_client_key", "client_key"),
        ("本文", "k" * 65, "bad_client_key", "client_key"),
        ("本文", "", "bad_client_key", "client_key"),
    ],
)
def test_it_refuses_bad_input_with_a_japanese_message(
    bunsho_channel: Conversation,
    alice: User,
    settings: SettingsWrapper,
    text: str,
    key: str,
    code: str,
    field: str,
) -> None:
    settings.CHAT_MESSAGE_MAX_CHARS = 100
    with pytest.raises(ChatError) as refused:
        send(alice, bunsho_channel, text, client_key=key)
    assert (refused.value.code, refused.value.field) == (code, field)
    assert refused.value.status == 400
    assert any("\u3040" <= c <= "\u30ff" for c in refused.value.message)
    assert not Message.objects.exists()


def test_it_keeps_tabs_and_line_breaks(bunsho_channel: Conversation, alice: User) -> None:
    message = send(alice, bunsho_channel, "一行目\n\t二行目\r\n三行目  ")
    assert message.text == "一行目\n\t二行目\n三行目"


def test_it_refuses_a_thread_root_elsewhere_or_a_reply_as_root(
    bunsho_channel: Conversation, project: Conversation, alice: User
) -> None:
    elsewhere = send(alice, project, "プロジェクト側")
    root = send(alice, bunsho_channel, "親")
    reply = send(alice, bunsho_channel, "返信", thread_root_id=root.pk)
    for bad in (elsewhere.pk, reply.pk, 999999):
        with pytest.raises(ChatError) as refused:
            send(alice, bunsho_channel, "孫返信", thread_root_id=bad)
        assert refused.value.code == "bad_thread"


def test_it_counts_replies_on_the_root_and_tells_both(
    bunsho_channel: Conversation, alice: User, bob: User, sent: Sent
) -> None:
    root = send(alice, bunsho_channel, "会議室の予約について")
    sent.clear()
    reply = send(bob, bunsho_channel, "3階を押さえました", thread_root_id=root.pk)
    root.refresh_from_db()
    assert (root.reply_count, root.last_reply_seq) == (1, reply.seq)
    assert root.changed_seq == reply.seq + 1
    assert root.seq == 1
    changed = [payload["message"]["id"] for payload, _ids in chat_events(sent, "message")]
    assert changed == [reply.pk, root.pk]
    # A reply is not in the timeline: it does not move the conversation's read pointer.
    bob_membership = Membership.objects.get(conversation=bunsho_channel, user=bob)
    assert bob_membership.last_read_seq == 0
    # Threads have their own unread state.
    assert queries.thread_unread(alice, root) == 1
    assert queries.thread_unread(bob, root) == 0
    assert do_mark_thread_read(alice, root, up_to_seq=reply.seq)
    assert not do_mark_thread_read(alice, root, up_to_seq=reply.seq)
    assert queries.thread_unread(alice, root) == 0
    assert [m.pk for m in queries.thread(root)] == [reply.pk]


def test_it_parses_mentions_of_people_departments_and_everyone(
    channels: dict[str, Conversation], alice: User, bob: User, charlie: User, dora: User
) -> None:
    bunsho = channels["bunsho"]
    named = send(alice, bunsho, "@bobさん、確認お願いします。@charlie も")
    assert named.mentions == [bob.pk]
    assert not named.mentions_channel
    spaced = send(alice, bunsho, "＠bob さん 全角の＠も")
    assert spaced.mentions == [bob.pk]
    not_prefix = send(alice, bunsho, "@bobby は誰？ @bob.smith も")
    assert not_prefix.mentions == []
    sentence_end = send(alice, bunsho, "Thanks, @bob.")
    assert sentence_end.mentions == [bob.pk]
    department = send(alice, channels["somu_ka"], "@文書係の皆さん 回覧です")
    assert department.mentions == sorted([bob.pk, dora.pk])
    by_code = send(alice, channels["somu_ka"], "@111 宛て")
    assert by_code.mentions == sorted([bob.pk, dora.pk])
    everyone = send(alice, bunsho, "@全員 本日は定時退庁日です")
    assert everyone.mentions_channel


def test_it_asks_to_confirm_a_mention_of_many_people(
    bunsho_channel: Conversation,
    alice: User,
    bob: User,
    dora: User,
    settings: SettingsWrapper,
) -> None:
    settings.CHAT_MENTION_CONFIRM_OVER = 1
    with pytest.raises(ChatError) as refused:
        send(alice, bunsho_channel, "@channel 避難訓練のお知らせ", client_key="mass-1")
    assert (refused.value.code, refused.value.status) == ("confirm_mentions", 409)
    assert refused.value.details == {"count": 2}
    assert not Message.objects.exists()
    confirmed = send(
        alice,
        bunsho_channel,
        "@channel 避難訓練のお知らせ",
        client_key="mass-1",
        confirm_mass_mention=True,
    )
    assert confirmed.mentions_channel
    one = send(alice, bunsho_channel, "@bob だけ")
    assert one.mentions == [bob.pk]


def test_it_edits_keeping_the_old_text_for_auditors(
    bunsho_channel: Conversation, alice: User, sent: Sent
) -> None:
    message = send(alice, bunsho_channel, "会議は10時からです")
    send(alice, bunsho_channel, "次の話題")
    sent.clear()
    assert do_edit_message(message, text="会議は11時からです", acting_user=alice)
    message.refresh_from_db()
    assert message.text == "会議は11時からです"
    assert message.edited_at is not None
    assert (message.seq, message.changed_seq) == (1, 3)
    revision = MessageRevision.objects.get(message=message)
    assert (revision.text, revision.change, revision.replaced_by) == (
        "会議は10時からです",
        "edit",
        alice,
    )
    entry = AuditEntry.objects.get(action="chat.message_edited")
    assert entry.target_id == str(message.pk)
    assert "10時" not in str(entry.details)
    assert "11時" not in str(entry.details)
    payload = chat_events(sent, "message")[0][0]["message"]
    assert payload["edited"]
    assert payload["text"] == "会議は11時からです"
    assert not do_edit_message(message, text="会議は11時からです", acting_user=alice)


def test_it_deletes_keeping_its_place_and_the_text_for_auditors(
    bunsho_channel: Conversation, alice: User, sent: Sent
) -> None:
    message = send(alice, bunsho_channel, "誤って送った個人情報")
    do_pin(message, acting_user=alice)
    sent.clear()
    assert do_delete_message(message, acting_user=alice)
    message.refresh_from_db()
    assert message.text == ""
    assert message.deleted_at is not None
    assert message.deleted_by == alice
    assert message.pinned_at is None
    assert (
        MessageRevision.objects.get(message=message, change="delete").text == "誤って送った個人情報"
    )
    entry = AuditEntry.objects.get(action="chat.message_deleted")
    assert "個人情報" not in str(entry.details)
    payload = chat_events(sent, "message")[0][0]["message"]
    assert payload["deleted"]
    assert payload["text"] == ""
    assert payload["html"] == ""
    assert not do_delete_message(message, acting_user=alice)
    with pytest.raises(ChatError):
        do_toggle_reaction(message, emoji="👍", add=True, acting_user=alice)


def test_it_toggles_reactions_idempotently(
    bunsho_channel: Conversation, alice: User, bob: User, sent: Sent
) -> None:
    message = send(alice, bunsho_channel, "資料を共有フォルダに置きました")
    sent.clear()
    assert do_toggle_reaction(message, emoji="👍", add=True, acting_user=bob)
    assert not do_toggle_reaction(message, emoji="👍", add=True, acting_user=bob)
    assert do_toggle_reaction(message, emoji="了解", add=True, acting_user=alice)
    assert Reaction.objects.filter(message=message).count() == 2
    payload = chat_events(sent, "message")[-1][0]["message"]
    assert payload["reactions"] == [
        {"emoji": "👍", "users": [bob.pk]},
        {"emoji": "了解", "users": [alice.pk]},
    ]
    assert do_toggle_reaction(message, emoji="👍", add=False, acting_user=bob)
    assert not do_toggle_reaction(message, emoji="👍", add=False, acting_user=bob)
    message.refresh_from_db()
    assert message.changed_seq == 4
    for bad in ("", "x" * 33, "a b"):
        with pytest.raises(ChatError):
            do_toggle_reaction(message, emoji=bad, add=True, acting_user=bob)


def test_it_pins_and_unpins_with_an_audit_entry(
    bunsho_channel: Conversation, alice: User, bob: User
) -> None:
    message = send(alice, bunsho_channel, "書庫の鍵は総務課にあります")
    assert do_pin(message, acting_user=bob)
    assert not do_pin(message, acting_user=bob)
    assert [m.pk for m in queries.pins(bunsho_channel)] == [message.pk]
    assert do_unpin(message, acting_user=bob)
    assert queries.pins(bunsho_channel) == []
    actions = list(AuditEntry.objects.order_by("pk").values_list("action", flat=True))
    assert actions[-2:] == ["chat.message_pinned", "chat.message_unpinned"]


def test_it_forwards_a_message_with_a_link_back(
    bunsho_channel: Conversation, project: Conversation, alice: User, bob: User
) -> None:
    original = send(bob, bunsho_channel, "引越し業者の見積りが届きました\n3社です")
    target = access.access_conversation_for_post(alice, project.pk)
    forwarded, created = check_forward_message(
        original, target, comment="共有します", client_key="fwd-1", acting_user=alice
    )
    assert created
    assert forwarded.conversation_id == project.pk
    assert forwarded.forwarded_from_id == original.pk
    assert forwarded.text == "共有します\n> 引越し業者の見積りが届きました\n> 3社です"
    again, created_again = check_forward_message(
        original, target, comment="共有します", client_key="fwd-1", acting_user=alice
    )
    assert (again.pk, created_again) == (forwarded.pk, False)


def test_it_refuses_to_forward_what_the_forwarder_cannot_read(
    bunsho_channel: Conversation, alice: User, charlie: User
) -> None:
    secret = send(alice, bunsho_channel, "文書係だけの話")
    charlies_channel = Membership.objects.filter(user=charlie).select_related("conversation")[0]
    with pytest.raises(ChatError) as refused:
        check_forward_message(
            secret, charlies_channel, comment="", client_key="leak-1", acting_user=charlie
        )
    assert refused.value.status == 403
    assert not Message.objects.filter(forwarded_from=secret).exists()


def test_it_posts_a_notice_without_a_sender(
    bunsho_channel: Conversation, alice: User, sent: Sent
) -> None:
    send(alice, bunsho_channel, "前のメッセージ")
    notice = do_post_notice(bunsho_channel, "震度5弱の地震が発生しました", label="防災システム")
    assert notice.sender_id is None
    assert (notice.seq, notice.kind, notice.sender_label) == (2, "system", "防災システム")
    payload = chat_events(sent, "message")[-1][0]["message"]
    assert payload["sender_name"] == "防災システム"


def test_it_attaches_files_uploaded_by_the_sender_in_the_conversation(
    bunsho_channel: Conversation, project: Conversation, alice: User, bob: User
) -> None:
    # Made directly: the upload action (and the file on disk) is another part's business.
    def upload(user: User, conversation: Conversation, name: str) -> Attachment:
        return Attachment.objects.create(
            conversation=conversation,
            uploaded_by=user,
            name=name,
            content_type="application/pdf",
            size=1234,
            sha256="0" * 64,
            path=f"x/{name}",
        )

    mine = upload(alice, bunsho_channel, "配席図.pdf")
    message = send(alice, bunsho_channel, "", attachment_ids=[mine.pk])
    mine.refresh_from_db()
    assert mine.message_id == message.pk
    assert message.has_file
    payload = queries.message_payloads([queries.message_with_parts(message.pk)])[0]
    assert [a["name"] for a in payload["attachments"]] == ["配席図.pdf"]
    for other in (
        upload(bob, bunsho_channel, "bobの.pdf"),
        upload(alice, project, "別会話.pdf"),
        mine,
    ):
        with pytest.raises(ChatError) as refused:
            send(alice, bunsho_channel, "添付", attachment_ids=[other.pk])
        assert refused.value.code == "bad_attachment"


def test_it_sends_within_a_query_budget(
    bunsho_channel: Conversation,
    alice: User,
    bob: User,
    django_assert_num_queries: Any,
    sent: Sent,
) -> None:
    send(alice, bunsho_channel, "一通目")
    membership = access.access_conversation_for_post(alice, bunsho_channel.pk)
    # 1 SAVEPOINT; 2 seq and last_message_at (UPDATE … RETURNING); 3 INSERT the message
    # (no client-key look-up first: the constraint answers a repeat); 4 the members
    # (recipients); 5 the sender's pointer (one conditional UPDATE); 6 RELEASE.
    with django_assert_num_queries(6):
        result = message_actions.check_send(
            membership, text="二通目", client_key="budget-2", acting_user=alice
        )
    assert ReadMark.objects.filter(user=alice).count() == 0
    assert result.created
    assert result.payload == chat_events(sent, "message")[-1][0]["message"]
    assert result.payload["sender_name"] == "青木 愛"
    # The same when the pointer stays (Bob wrote meanwhile): nothing more is written.
    send(bob, bunsho_channel, "ボブから")
    with django_assert_num_queries(6):
        check_send_message(membership, text="三通目", client_key="budget-3", acting_user=alice)
    assert ReadMark.objects.filter(user=alice).count() == 0


def test_it_keeps_every_replaced_text_when_edits_cross(
    bunsho_channel: Conversation, alice: User
) -> None:
    """Two tabs change the same message: each revision holds the text really replaced,
    and a change to what is gone meanwhile changes nothing (and takes no seq)."""
    message = send(alice, bunsho_channel, "版1")
    tab_a, tab_b, tab_c = (Message.objects.get(pk=message.pk) for _ in range(3))
    assert do_edit_message(tab_a, text="版2", acting_user=alice)
    assert do_edit_message(tab_b, text="版3", acting_user=alice)
    revisions = list(MessageRevision.objects.order_by("pk").values_list("text", flat=True))
    assert revisions == ["版1", "版2"]
    assert do_delete_message(tab_a, acting_user=alice)
    assert MessageRevision.objects.get(change="delete").text == "版3"
    assert not do_delete_message(tab_b, acting_user=alice)
    assert not do_pin(tab_c, acting_user=alice)
    assert not do_edit_message(tab_c, text="版4", acting_user=alice)
    assert Conversation.objects.get(pk=bunsho_channel.pk).last_seq == 4
    assert AuditEntry.objects.filter(action="chat.message_deleted").count() == 1


def test_it_mentions_the_people_of_a_department_without_a_channel(
    channels: dict[str, Conversation], ward: dict[str, Department], alice: User, bob: User
) -> None:
    shomu = make_department("112", "庶務係", "kakari", ward["somu_ka"])
    fumi = make_staff("fumi", "福田", "文", shomu, number="10020")
    membership.sync_users([fumi.pk], ensure=False)
    assert not Conversation.objects.filter(department=shomu).exists()
    message = send(alice, channels["somu_ka"], "@庶務係 と @文書係 と自分 @alice へ")
    assert message.mentions == sorted([bob.pk, fumi.pk])


def test_it_mentions_guests_and_bots_by_name_in_their_channels(
    project: Conversation, alice: User, guest: User
) -> None:
    do_add_members(project, [guest], acting_user=alice)
    message = send(alice, project, "@gina様 ご確認ください。連絡先 info@gina.example.jp")
    assert message.mentions == [guest.pk]


def test_it_refuses_a_client_key_used_in_another_conversation(
    bunsho_channel: Conversation, project: Conversation, alice: User
) -> None:
    send(alice, bunsho_channel, "文書係へ", client_key="uuid-1")
    with pytest.raises(ChatError) as refused:
        send(alice, project, "プロジェクトへ", client_key="uuid-1")
    assert (refused.value.code, refused.value.status) == ("client_key_reused", 409)
    assert not Message.objects.filter(conversation=project).exists()


@pytest.mark.parametrize("text", ["壊れた\ud800文字", "改行\x85コード"])
def test_it_refuses_lone_surrogates_and_c1_controls(
    bunsho_channel: Conversation, alice: User, text: str
) -> None:
    """JSON can carry a lone surrogate; storing it failed with a 500 on both databases."""
    with pytest.raises(ChatError) as refused:
        send(alice, bunsho_channel, text)
    assert (refused.value.code, refused.value.field) == ("control_characters", "text")
    assert not Message.objects.exists()


@pytest.mark.parametrize(
    "emoji", ["👍🏽", "❤️", "👨\u200d💻", "1️⃣", "🇯🇵", "了解", "🏴\U000e0067\U000e0062\U000e007f"]
)
def test_it_takes_emoji_sequences_as_reactions(
    bunsho_channel: Conversation, alice: User, bob: User, emoji: str
) -> None:
    message = send(alice, bunsho_channel, "確認お願いします")
    assert do_toggle_reaction(message, emoji=emoji, add=True, acting_user=bob)
    assert Reaction.objects.get(message=message).emoji == emoji


@pytest.mark.parametrize(
    "emoji", ["\u202e", "👍\u200b", "\ud83d", "a\u3000b", "\u2028", "\U000f0000", "\x85\u202e"]
)
def test_it_refuses_invisible_or_broken_reactions(
    bunsho_channel: Conversation, alice: User, bob: User, emoji: str
) -> None:
    """A bidirectional override or a zero-width space makes a reaction look like another
    one (or like nothing); a lone surrogate cannot be stored."""
    message = send(alice, bunsho_channel, "確認お願いします")
    with pytest.raises(ChatError) as refused:
        do_toggle_reaction(message, emoji=emoji, add=True, acting_user=bob)
    assert refused.value.code == "bad_emoji"
    assert not Reaction.objects.exists()


def test_it_forwards_a_message_as_long_as_a_message_may_be(
    bunsho_channel: Conversation,
    project: Conversation,
    alice: User,
    bob: User,
    settings: SettingsWrapper,
) -> None:
    """The quote marks made the forward longer than the limit: it was refused."""
    settings.CHAT_MESSAGE_MAX_CHARS = 100
    original = send(bob, bunsho_channel, "\n".join(["議事"] * 33))  # 98 characters
    target = access.access_conversation_for_post(alice, project.pk)
    forwarded, created = check_forward_message(
        original, target, comment="共有します", client_key="fwd-long", acting_user=alice
    )
    assert created
    assert len(forwarded.text) <= 100
    assert forwarded.text.startswith("共有します\n> 議事\n> 議事")
    assert forwarded.text.endswith("…")
    assert forwarded.forwarded_from_id == original.pk


def test_it_reads_mentions_of_many_departments_in_a_few_queries(
    channels: dict[str, Conversation],
    ward: dict[str, Department],
    alice: User,
    bob: User,
    charlie: User,
    django_assert_num_queries: Any,
) -> None:
    """One query per 所属 named made a message naming every 所属 cost hundreds."""
    shomu = make_department("112", "庶務係", "kakari", ward["somu_ka"])
    fumi = make_staff("fumi", "福田", "文", shomu, number="10020")
    membership.sync_users([fumi.pk], ensure=False)
    somu_bu = channels["somu_bu"]
    text = "@文書係 @総務課 @総務部 @戸籍住民課 @区民部 @庶務係 @111 @110 各位"
    # 1 the members' usernames, 2 the 所属, 3 the members of their channels, 4 which
    # 所属 without members have a channel, 5 the people posted where there is none.
    with django_assert_num_queries(5):
        mentions = parse_mentions(text, somu_bu, sender_id=alice.pk)
    assert mentions.user_ids == sorted([bob.pk, fumi.pk])
