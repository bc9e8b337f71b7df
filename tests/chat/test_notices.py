"""Other features tell people things through chat: a person's お知らせ conversation and
a 所属's channel.  The notice commits with the action that caused it, or not at all."""

from __future__ import annotations

import pytest
from django.db import transaction
from django.test import Client

from yakuba.chat.access import may_manage
from yakuba.chat.models import Conversation, Membership, Message
from yakuba.chat.notices import notify_department, notify_person
from yakuba.directory.models import User

pytestmark = pytest.mark.django_db


def test_it_posts_a_notice_to_the_persons_own_conversation(alice: User, bob: User) -> None:
    first = notify_person(alice, "会議室の予約が解放されました。")
    second = notify_person(alice, "もう一件のお知らせです。")

    assert first is not None
    assert second is not None
    assert first.conversation_id == second.conversation_id
    conversation = Conversation.objects.get(pk=first.conversation_id)
    assert conversation.kind == Conversation.Kind.NOTICES
    assert list(
        Membership.objects.filter(conversation=conversation).values_list("user_id", flat=True)
    ) == [alice.pk]
    assert [m.text for m in Message.objects.filter(conversation=conversation).order_by("seq")] == [
        "会議室の予約が解放されました。",
        "もう一件のお知らせです。",
    ]
    assert first.sender_id is None
    assert first.sender_label == "役場システム"
    # Bob's notices are his own.
    bobs = notify_person(bob, "あなた宛てです。")
    assert bobs is not None
    assert bobs.conversation_id != conversation.pk


def test_it_rolls_the_notice_back_with_the_action(alice: User) -> None:
    def failing_action() -> None:
        with transaction.atomic():
            notify_person(alice, "取り消される処理のお知らせ")
            raise RuntimeError("the action failed")

    with pytest.raises(RuntimeError):
        failing_action()

    assert not Message.objects.filter(text="取り消される処理のお知らせ").exists()


def test_it_skips_people_who_cannot_use_chat(alice: User) -> None:
    alice.is_active = False
    alice.save(update_fields=["is_active"])

    assert notify_person(alice, "届かないお知らせ") is None
    assert not Message.objects.exists()


def test_it_posts_to_a_department_channel(channels: dict[str, Conversation], alice: User) -> None:
    department = channels["bunsho"].department
    assert department is not None

    message = notify_department(department, "議事録が承認されました。")

    assert message is not None
    assert message.conversation_id == channels["bunsho"].pk
    assert message.kind == Message.Kind.SYSTEM


def test_nobody_posts_into_or_manages_a_persons_notices(alice: User, client: Client) -> None:
    notice = notify_person(alice, "お知らせです。")
    assert notice is not None
    client.force_login(alice)

    response = client.post(
        f"/api/chat/conversations/{notice.conversation_id}/messages",
        {"text": "返信できる？", "client_key": "k-1"},
        content_type="application/json",
    )

    assert response.status_code == 403
    assert Message.objects.filter(conversation_id=notice.conversation_id).count() == 1
    conversation = Conversation.objects.get(pk=notice.conversation_id)
    assert not may_manage(alice, conversation)
    # She reads it, though.
    listed = client.get(f"/api/chat/conversations/{notice.conversation_id}/messages")
    assert listed.status_code == 200
    assert [item["text"] for item in listed.json()["items"]] == ["お知らせです。"]


def test_it_makes_one_notices_conversation_when_two_first_notices_arrive_at_once(
    transactional_db: None, alice: User
) -> None:
    import threading

    from django.db import connection

    barrier = threading.Barrier(3)
    errors: list[BaseException] = []

    def notify(n: int) -> None:
        try:
            barrier.wait(timeout=10)
            with transaction.atomic():
                notify_person(alice, f"同時のお知らせ{n}")
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=notify, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    [conversation] = Conversation.objects.filter(kind=Conversation.Kind.NOTICES)
    assert conversation.direct_key == f"notices:{alice.pk}"
    assert list(
        Membership.objects.filter(conversation=conversation).values_list("user_id", flat=True)
    ) == [alice.pk]
    texts = sorted(Message.objects.filter(conversation=conversation).values_list("text", flat=True))
    assert texts == ["同時のお知らせ0", "同時のお知らせ1", "同時のお知らせ2"]
    assert sorted(
        Message.objects.filter(conversation=conversation).values_list("seq", flat=True)
    ) == [1, 2, 3]


def test_it_tells_the_persons_open_clients_about_a_new_notices_conversation(
    alice: User, sent: list[tuple[dict[str, object], list[int]]]
) -> None:
    first = notify_person(alice, "一件目")
    notify_person(alice, "二件目")
    assert first is not None

    added = [
        (payload, ids)
        for payload, ids in sent
        if payload.get("op") == "conversation" and payload.get("change") == "added"
    ]
    # Once, when it was made: clients add it to their list without a reload.
    assert added == [
        (
            {
                "type": "chat",
                "op": "conversation",
                "conversation": first.conversation_id,
                "change": "added",
            },
            [alice.pk],
        )
    ]
