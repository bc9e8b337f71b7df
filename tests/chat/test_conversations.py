"""Conversations: project channels, direct and group messages, their members, settings,
archiving, the per-member notification choice, and what each write audits and sends."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from django.db import connection
from django.test import Client
from pytest_django.fixtures import Settings as SettingsWrapper

from tests.conftest import make_staff
from yakuba.audit.models import AuditEntry
from yakuba.audit.record import Actor
from yakuba.chat.actions import ChatError
from yakuba.chat.actions.conversations import (
    do_add_members,
    do_archive,
    do_change_conversation,
    do_create_group,
    do_create_project_channel,
    do_get_or_create_direct,
    do_join,
    do_leave,
    do_remove_member,
    do_set_notify,
    do_set_owner,
    do_unarchive,
)
from yakuba.chat.models import Conversation, Membership
from yakuba.chat.notices import notify_person
from yakuba.directory.models import Department, User
from yakuba.lib import clock
from yakuba.realtime.models import UserEvent

from .conftest import Sent

pytestmark = pytest.mark.django_db


def audited(action: str) -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(action=action).order_by("pk"))


def members(conversation: Conversation) -> dict[int, str]:
    return dict(Membership.objects.filter(conversation=conversation).values_list("user_id", "role"))


def conversation_events(sent: Sent) -> list[tuple[str, list[int]]]:
    return [
        (payload["change"], ids) for payload, ids in sent if payload.get("op") == "conversation"
    ]


def stream_changes(user: User) -> list[str]:
    """The conversation events persisted in ``user``'s stream, oldest first."""
    return [
        event.payload["change"]
        for event in UserEvent.objects.filter(user=user).order_by("event_id")
        if event.payload.get("op") == "conversation"
    ]


def staff_many(ward: dict[str, Department], count: int) -> list[User]:
    return [
        make_staff(f"s{i}", "佐藤", f"{i}号", ward["koseki"], number=f"9{i:04d}")
        for i in range(count)
    ]


# --- Project channels --------------------------------------------------------------------


def test_it_creates_a_project_channel_with_owner_members_audit_and_events(
    alice: User, bob: User, sent: Sent
) -> None:
    channel = do_create_project_channel(
        name="  新庁舎移転プロジェクト ",
        description="移転の準備",
        is_private=True,
        owners=[],
        members=[bob],
        acting_user=alice,
    )

    assert (channel.kind, channel.name, channel.is_private) == (
        Conversation.Kind.PROJECT,
        "新庁舎移転プロジェクト",
        True,
    )
    assert channel.read_receipts is True
    assert members(channel) == {alice.pk: "owner", bob.pk: "member"}
    (entry,) = audited("chat.conversation_created")
    assert entry.actor_id == alice.pk
    assert entry.target_id == str(channel.pk)
    assert entry.details["members"] == [bob.pk]
    assert conversation_events(sent) == [("added", sorted([alice.pk, bob.pk]))]
    assert stream_changes(bob) == ["added"]


@pytest.mark.parametrize(
    ("name", "field_code"),
    [
        ("", "invalid"),
        ("   ", "invalid"),
        ("長" * 81, "invalid"),
        # PostgreSQL refuses NUL in text: without the check, a 500 at the insert.
        ("移転\x00準備", "invalid"),
        ("移転\x1b[31m", "invalid"),
    ],
)
def test_it_refuses_a_project_channel_without_a_usable_name(
    alice: User, name: str, field_code: str
) -> None:
    with pytest.raises(ChatError) as caught:
        do_create_project_channel(name=name, acting_user=alice)

    assert caught.value.field == "name"
    assert caught.value.code == field_code
    assert "名" in caught.value.message
    assert not Conversation.objects.exists()
    assert not audited("chat.conversation_created")


def test_it_answers_400_to_a_description_with_a_nul_character(alice: User) -> None:
    client = Client()
    client.force_login(alice)

    response = client.post(
        "/api/chat/conversations",
        {"kind": "project", "name": "移転準備", "description": "説明\x00です", "members": []},
        content_type="application/json",
    )

    assert response.status_code == 400, response.content
    assert response.json()["error"]["fields"]["description"]
    assert not Conversation.objects.exists()


def test_it_refuses_a_second_open_channel_of_the_same_name_but_not_of_an_archived_one(
    alice: User, project: Conversation
) -> None:
    with pytest.raises(ChatError) as caught:
        do_create_project_channel(name="新庁舎移転プロジェクト", acting_user=alice)
    assert (caught.value.code, caught.value.status) == ("name_taken", 409)
    assert "既にあります" in caught.value.message

    do_archive(project, acting_user=alice)
    again = do_create_project_channel(name="新庁舎移転プロジェクト", acting_user=alice)

    assert again.pk != project.pk
    with pytest.raises(ChatError) as unarchive:
        do_unarchive(project, acting_user=alice)
    assert unarchive.value.code == "name_taken"


def test_it_lets_a_guest_into_a_project_channel_only(
    alice: User, bob: User, guest: User, project: Conversation
) -> None:
    assert do_add_members(project, [guest], acting_user=alice) == [guest]
    assert guest.pk in members(project)

    with pytest.raises(ChatError) as dm:
        do_get_or_create_direct(alice, guest, acting_user=alice)
    assert dm.value.code == "guest_not_allowed"
    assert "プロジェクトチャンネル" in dm.value.message

    group = do_create_group([bob], acting_user=alice)
    with pytest.raises(ChatError) as added:
        do_add_members(group, [guest], acting_user=alice)
    assert added.value.code == "guest_not_allowed"
    assert guest.pk not in members(group)

    with pytest.raises(ChatError) as creating:
        do_create_project_channel(name="x", acting_user=guest)
    assert creating.value.status == 403


def test_it_refuses_an_inactive_person_as_a_member(alice: User, bob: User) -> None:
    bob.is_active = False
    bob.save(update_fields=["is_active"])

    with pytest.raises(ChatError) as caught:
        do_create_project_channel(name="防災訓練2025", members=[bob], acting_user=alice)

    assert caught.value.code == "inactive_user"
    assert caught.value.details == {"users": [bob.pk]}


def test_it_starts_big_conversations_with_read_receipts_off(
    settings: SettingsWrapper, ward: dict[str, Department], alice: User
) -> None:
    settings.CHAT_READ_RECEIPTS_MAX_MEMBERS = 3
    people = staff_many(ward, 3)

    big = do_create_project_channel(name="全庁周知", members=people, acting_user=alice)
    small = do_create_project_channel(name="少人数", members=people[:2], acting_user=alice)

    assert big.read_receipts is False
    assert small.read_receipts is True
    do_add_members(small, people[2:], acting_user=alice)
    assert Conversation.objects.get(pk=small.pk).read_receipts is False
    with pytest.raises(ChatError) as caught:
        do_change_conversation(small, read_receipts=True, acting_user=alice)
    assert caught.value.code == "too_many_members"


# --- Direct and group messages ----------------------------------------------------------


def test_it_keeps_one_direct_message_per_pair(alice: User, bob: User, sent: Sent) -> None:
    first, created = do_get_or_create_direct(alice, bob, acting_user=alice)
    second, again = do_get_or_create_direct(bob, alice, acting_user=bob)

    assert (created, again) == (True, False)
    assert first.pk == second.pk
    assert first.direct_key == f"{min(alice.pk, bob.pk)}:{max(alice.pk, bob.pk)}"
    assert members(first) == {alice.pk: "member", bob.pk: "member"}
    assert len(audited("chat.conversation_created")) == 1
    assert conversation_events(sent) == [("added", sorted([alice.pk, bob.pk]))]


def test_it_refuses_a_direct_message_with_oneself_or_for_others(
    alice: User, bob: User, charlie: User
) -> None:
    with pytest.raises(ChatError) as self_dm:
        do_get_or_create_direct(alice, alice, acting_user=alice)
    assert self_dm.value.field == "user"

    with pytest.raises(ChatError) as others:
        do_get_or_create_direct(alice, bob, acting_user=charlie)
    assert others.value.status == 403
    assert not Conversation.objects.exists()


def test_it_refuses_changing_the_members_of_a_direct_message(
    alice: User, bob: User, charlie: User
) -> None:
    dm, _ = do_get_or_create_direct(alice, bob, acting_user=Actor.system("test"))

    with pytest.raises(ChatError) as added:
        do_add_members(dm, [charlie], acting_user=Actor.system("test"))
    with pytest.raises(ChatError) as left:
        do_leave(dm, acting_user=alice)

    assert added.value.code == left.value.code == "direct_message"
    assert set(members(dm)) == {alice.pk, bob.pk}


def test_it_makes_a_group_of_two_to_fifty_staff(
    ward: dict[str, Department], alice: User, bob: User, charlie: User
) -> None:
    group = do_create_group([bob, charlie, bob], name="引継ぎ", acting_user=alice)

    assert group.kind == Conversation.Kind.GROUP
    assert members(group) == {alice.pk: "owner", bob.pk: "member", charlie.pk: "member"}

    with pytest.raises(ChatError) as alone:
        do_create_group([], acting_user=alice)
    assert alone.value.code == "group_size"

    crowd = staff_many(ward, 50)
    with pytest.raises(ChatError) as too_many:
        do_create_group(crowd, acting_user=alice)
    assert too_many.value.code == "group_size"
    assert "50人" in too_many.value.message

    with pytest.raises(ChatError) as grown:
        do_add_members(group, crowd[:48], acting_user=alice)
    assert grown.value.code == "group_size"
    assert len(members(group)) == 3


# --- Members ------------------------------------------------------------------------------


def test_it_adds_and_removes_members_with_audit_and_events(
    alice: User, bob: User, charlie: User, project: Conversation, sent: Sent
) -> None:
    sent.clear()

    assert do_add_members(project, [charlie, bob], acting_user=alice) == [charlie]
    assert do_add_members(project, [charlie], acting_user=alice) == []
    assert do_remove_member(project, charlie, acting_user=alice) is True
    assert do_remove_member(project, charlie, acting_user=alice) is False

    entries = audited("chat.members_changed")
    assert [e.details.get("added") or e.details.get("removed") for e in entries] == [
        [charlie.pk],
        [charlie.pk],
    ]
    assert conversation_events(sent) == [
        ("added", [charlie.pk]),
        ("changed", sorted([alice.pk, bob.pk])),
        ("removed", [charlie.pk]),
        ("changed", sorted([alice.pk, bob.pk])),
    ]
    assert stream_changes(charlie) == ["added", "removed"]


def test_it_lets_only_managers_remove_others(
    alice: User, bob: User, charlie: User, project: Conversation
) -> None:
    with pytest.raises(ChatError) as caught:
        do_remove_member(project, alice, acting_user=bob)

    assert caught.value.status == 403
    assert alice.pk in members(project)


def test_it_lets_a_member_of_a_public_channel_add_staff_but_not_guests(
    alice: User, bob: User, charlie: User, guest: User, project: Conversation
) -> None:
    assert do_add_members(project, [charlie], acting_user=bob) == [charlie]

    with pytest.raises(ChatError) as caught:
        do_add_members(project, [guest], acting_user=bob)
    assert caught.value.status == 403


def test_it_lets_staff_join_and_leave_a_public_channel_but_not_a_private_one(
    alice: User, bob: User, charlie: User, guest: User, project: Conversation
) -> None:
    joined = do_join(project, acting_user=charlie)
    assert do_join(project, acting_user=charlie).pk == joined.pk
    assert members(project)[charlie.pk] == "member"
    assert do_leave(project, acting_user=charlie) is True
    assert charlie.pk not in members(project)

    secret = do_create_project_channel(name="人事案件", is_private=True, acting_user=alice)
    with pytest.raises(ChatError) as private:
        do_join(secret, acting_user=charlie)
    assert private.value.status == 403
    with pytest.raises(ChatError) as by_guest:
        do_join(project, acting_user=guest)
    assert by_guest.value.status == 403
    assert [e.details["how"] for e in audited("chat.members_changed")] == ["joined", "left"]


def test_it_hands_ownership_on_when_the_last_owner_leaves(
    alice: User, bob: User, project: Conversation
) -> None:
    do_leave(project, acting_user=alice)

    assert members(project) == {bob.pk: "owner"}
    assert audited("chat.members_changed")[-1].details["new_owner"] == bob.pk


def test_it_keeps_the_last_owner_and_promotes_members(
    alice: User, bob: User, project: Conversation
) -> None:
    with pytest.raises(ChatError) as caught:
        do_set_owner(project, alice, owner=False, acting_user=alice)
    assert caught.value.code == "last_owner"

    assert do_set_owner(project, bob, owner=True, acting_user=alice) is True
    assert do_set_owner(project, alice, owner=False, acting_user=alice) is True
    assert members(project) == {alice.pk: "member", bob.pk: "owner"}


def test_it_refuses_hand_changes_to_department_channels(
    alice: User, charlie: User, bunsho_channel: Conversation
) -> None:
    system = Actor.system("test")
    with pytest.raises(ChatError) as added:
        do_add_members(bunsho_channel, [charlie], acting_user=system)
    with pytest.raises(ChatError) as left:
        do_leave(bunsho_channel, acting_user=alice)
    with pytest.raises(ChatError) as archived:
        do_archive(bunsho_channel, acting_user=system)
    with pytest.raises(ChatError) as renamed:
        do_change_conversation(bunsho_channel, name="雑談", acting_user=system)

    assert {added.value.code, left.value.code, archived.value.code} == {"department_channel"}
    assert "職員名簿" in added.value.message
    assert renamed.value.field == "name"
    assert alice.pk in members(bunsho_channel)
    assert charlie.pk not in members(bunsho_channel)


# --- Settings and archive -------------------------------------------------------------


def test_it_refuses_hand_changes_to_a_persons_notices(alice: User, bob: User) -> None:
    notice = notify_person(alice, "会議室の予約が承認されました。")
    assert notice is not None
    conversation = Conversation.objects.get(pk=notice.conversation_id)

    for change in (
        lambda: do_leave(conversation, acting_user=alice),
        lambda: do_remove_member(conversation, alice, acting_user=alice),
        lambda: do_add_members(conversation, [bob], acting_user=Actor.system("test")),
    ):
        with pytest.raises(ChatError) as refused:
            change()
        assert refused.value.code == "notices"
    assert members(conversation) == {alice.pk: "member"}


def test_it_changes_name_description_and_read_receipts(
    alice: User, bob: User, project: Conversation, sent: Sent
) -> None:
    sent.clear()
    changed = do_change_conversation(
        project,
        name="新庁舎移転PJ",
        description="日程と配置",
        read_receipts=False,
        acting_user=alice,
    )

    assert sorted(changed) == ["description", "name", "read_receipts"]
    project.refresh_from_db()
    assert (project.name, project.description, project.read_receipts) == (
        "新庁舎移転PJ",
        "日程と配置",
        False,
    )
    (entry,) = audited("chat.conversation_changed")
    assert entry.details["changes"]["name"] == ["新庁舎移転プロジェクト", "新庁舎移転PJ"]
    assert conversation_events(sent) == [("changed", sorted([alice.pk, bob.pk]))]
    assert do_change_conversation(project, name="新庁舎移転PJ", acting_user=alice) == []


def test_it_refuses_changes_from_a_member_who_does_not_manage(
    bob: User, project: Conversation
) -> None:
    with pytest.raises(ChatError) as caught:
        do_change_conversation(project, name="乗っ取り", acting_user=bob)

    assert caught.value.status == 403
    (denial,) = audited("auth.denied")
    assert (denial.actor_id, denial.details["what"]) == (bob.pk, "chat.manage")
    project.refresh_from_db()
    assert project.name == "新庁舎移転プロジェクト"


def test_it_lets_the_section_head_rename_nothing_but_describe_the_department_channel(
    dora: User, bunsho_channel: Conversation
) -> None:
    assert do_change_conversation(
        bunsho_channel, description="文書係の連絡用", acting_user=dora
    ) == ["description"]


def test_it_archives_and_unarchives_with_audit_and_events(
    alice: User, bob: User, project: Conversation, sent: Sent
) -> None:
    sent.clear()

    assert do_archive(project, acting_user=alice) is True
    assert do_archive(project, acting_user=alice) is False
    project.refresh_from_db()
    assert project.archived_at is not None
    with pytest.raises(ChatError) as closed:
        do_add_members(project, [bob], acting_user=alice)
    assert closed.value.code == "archived"
    assert do_unarchive(project, acting_user=alice) is True

    assert Conversation.objects.get(pk=project.pk).archived_at is None
    assert len(audited("chat.archived")) == len(audited("chat.unarchived")) == 1
    assert conversation_events(sent) == [
        ("archived", sorted([alice.pk, bob.pk])),
        ("unarchived", sorted([alice.pk, bob.pk])),
    ]


def test_it_sets_a_members_notify_level_and_mute_without_audit(
    alice: User, bob: User, project: Conversation, sent: Sent
) -> None:
    membership = Membership.objects.get(conversation=project, user=bob)
    sent.clear()

    assert sorted(do_set_notify(membership, notify="mentions", muted=True)) == ["muted", "notify"]
    assert do_set_notify(membership, notify="mentions") == []
    membership.refresh_from_db()
    assert (membership.notify, membership.muted) == ("mentions", True)
    assert conversation_events(sent) == [("changed", [bob.pk])]
    assert not audited("chat.conversation_changed")

    with pytest.raises(ChatError) as caught:
        do_set_notify(membership, notify="loud")
    assert caught.value.field == "notify"


# --- The admin -----------------------------------------------------------------------------


def test_it_shows_conversations_in_the_admin_to_it_administrators_only(
    client: Client, alice: User, ida: User, project: Conversation, bunsho_channel: Conversation
) -> None:
    client.force_login(alice)
    assert client.get("/admin/chat/conversation/").status_code == 403

    client.force_login(ida)
    listing = client.get("/admin/chat/conversation/", {"kind": "project", "archived": "no"})
    page = client.get(f"/admin/chat/conversation/{project.pk}/change/")

    assert listing.status_code == page.status_code == 200
    assert "新庁舎移転プロジェクト" in listing.content.decode()
    assert "総務部 総務課 文書係" not in listing.content.decode()
    assert client.get("/admin/chat/presence/").status_code == 200
    assert client.get("/admin/chat/incomingwebhook/").status_code == 200
    assert client.get("/admin/chat/conversation/add/").status_code == 403


def test_it_changes_a_conversation_in_the_admin_through_the_action(
    client: Client, alice: User, ida: User, project: Conversation
) -> None:
    do_create_project_channel(name="防災訓練2025", acting_user=alice)
    client.force_login(ida)
    url = f"/admin/chat/conversation/{project.pk}/change/"

    taken = client.post(url, {"name": "防災訓練2025", "description": "", "read_receipts": "on"})
    renamed = client.post(url, {"name": "新庁舎移転PJ", "description": "", "read_receipts": "on"})

    assert taken.status_code == 200
    assert "既にあります" in taken.content.decode()
    assert renamed.status_code == 302
    assert Conversation.objects.get(pk=project.pk).name == "新庁舎移転PJ"
    (entry,) = audited("chat.conversation_changed")
    assert entry.actor_id == ida.pk
    assert entry.details["changes"]["name"] == ["新庁舎移転プロジェクト", "新庁舎移転PJ"]


def test_it_archives_from_the_admin_and_reports_refusals(
    client: Client, ida: User, project: Conversation, bunsho_channel: Conversation
) -> None:
    client.force_login(ida)

    response = client.post(
        "/admin/chat/conversation/",
        {"action": "archive_selected", "_selected_action": [project.pk, bunsho_channel.pk]},
        follow=True,
    )

    assert response.status_code == 200
    assert "所属チャンネルは所属が廃止されたとき" in response.content.decode()
    assert Conversation.objects.get(pk=project.pk).archived_at is not None
    assert Conversation.objects.get(pk=bunsho_channel.pk).archived_at is None
    assert len(audited("chat.archived")) == 1


# --- The demo ------------------------------------------------------------------------------


def test_it_loads_the_demo_chat_once(db: None) -> None:
    from yakuba.chat.demo import DemoChatError, load_demo_chat
    from yakuba.chat.models import Message, Reaction
    from yakuba.directory.demo_data import do_load_demo

    with pytest.raises(DemoChatError):
        load_demo_chat()
    do_load_demo(staff_count=30)

    first = load_demo_chat()
    second = load_demo_chat()

    assert sorted(first.conversations_created) == sorted(
        ["新庁舎移転プロジェクト", "防災訓練2025", "kacho-shokuin", "庁舎レイアウト打合せ"]
    )
    assert first.messages_created == Message.objects.count() >= 30
    assert (second.conversations_created, second.messages_created) == ([], 0)
    assert first.department_channels == second.department_channels > 10
    drill = Conversation.objects.get(name="防災訓練2025")
    guest_user = User.objects.get(username="guest")
    assert drill.is_private
    assert set(
        Membership.objects.filter(user=guest_user).values_list("conversation_id", flat=True)
    ) == {drill.pk}
    moving = Conversation.objects.get(name="新庁舎移転プロジェクト")
    replies = list(Message.objects.filter(conversation=moving, thread_root__isnull=False))
    assert len(replies) == 2
    assert replies[0].thread_root_id == replies[1].thread_root_id
    assert replies[0].thread_root_id is not None
    root = Message.objects.get(pk=replies[0].thread_root_id)
    assert root.reply_count == 2
    assert Reaction.objects.filter(message__conversation=moving).count() == 6
    shokuin = Membership.objects.get(conversation=moving, user__username="shokuin")
    assert (
        shokuin.last_read_seq
        == Message.objects.filter(conversation=moving)
        .order_by("-seq")
        .values_list("seq", flat=True)
        .first()
    )
    kacho = User.objects.get(username="kacho")
    created_at = list(
        Message.objects.filter(conversation=moving)
        .order_by("seq")
        .values_list("created_at", flat=True)
    )
    assert created_at == sorted(created_at)
    assert created_at[-1] < clock.now()
    assert Membership.objects.filter(conversation__kind="department", user=kacho).exists()


# --- Races -----------------------------------------------------------------------------------


def run_threads(
    count: int, work: Callable[[int], object]
) -> tuple[list[object], list[BaseException]]:
    """``work(n)`` in ``count`` threads that start together, each with its own database
    connection; returns what they returned and what they raised."""
    barrier = threading.Barrier(count)
    results: list[object] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def body(n: int) -> None:
        try:
            barrier.wait(timeout=30)
            value = work(n)
        except BaseException as exc:  # every ending is reported to the test
            with lock:
                errors.append(exc)
        else:
            with lock:
                results.append(value)
        finally:
            connection.close()

    threads = [threading.Thread(target=body, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a thread hangs"
    return results, errors


@pytest.mark.django_db(transaction=True)
def test_it_makes_one_channel_of_a_name_when_eight_people_try_at_once(
    ward: dict[str, Department],
) -> None:
    people = staff_many(ward, 8)

    def create(n: int) -> int:
        user = User.objects.get(pk=people[n].pk)
        return do_create_project_channel(name="防災訓練2025", acting_user=user).pk

    made, refused = run_threads(8, create)

    assert len(made) == 1
    assert len(refused) == 7
    assert all(isinstance(e, ChatError) and e.code == "name_taken" for e in refused), refused
    assert Conversation.objects.filter(name="防災訓練2025").count() == 1


@pytest.mark.django_db(transaction=True)
def test_it_makes_one_direct_message_when_both_open_it_at_once(alice: User, bob: User) -> None:
    def open_direct(n: int) -> int:
        me, other = (alice, bob) if n % 2 else (bob, alice)
        conversation, _created = do_get_or_create_direct(
            User.objects.get(pk=me.pk), User.objects.get(pk=other.pk), acting_user=me
        )
        return conversation.pk

    opened, errors = run_threads(6, open_direct)

    assert errors == []
    assert len(set(opened)) == 1
    assert Conversation.objects.filter(kind="direct").count() == 1
    assert len(audited("chat.conversation_created")) == 1
