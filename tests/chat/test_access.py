"""Who may read, post in and manage which conversation (``yakuba.chat.access``): every
refusal is a 403 with an audited denial; guests see only the project channels they were
invited to; a person transferred out reads nothing of the old 所属 from the date."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.test import Client

from yakuba.audit.models import AuditEntry
from yakuba.audit.record import Actor
from yakuba.chat.access import (
    access_conversation,
    access_conversation_for_manage,
    access_conversation_for_post,
    access_disclosure,
    may_manage,
    readable_conversations,
)
from yakuba.chat.actions.conversations import (
    do_add_members,
    do_archive,
    do_create_group,
    do_create_project_channel,
    do_get_or_create_direct,
)
from yakuba.chat.models import Conversation
from yakuba.directory.actions.staff import do_apply_due_transfers, do_schedule_transfers
from yakuba.directory.csv_io import TransferRecord
from yakuba.directory.models import User
from yakuba.lib import clock

pytestmark = pytest.mark.django_db


def denials(user: User) -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(action="auth.denied", actor_id=user.pk).order_by("pk"))


def readable(user: User) -> set[int]:
    return set(readable_conversations(user).values_list("pk", flat=True))


def test_it_refuses_a_non_member_and_audits_the_refusal(
    alice: User, bob: User, charlie: User
) -> None:
    dm, _ = do_get_or_create_direct(alice, bob, acting_user=alice)

    with pytest.raises(PermissionDenied):
        access_conversation(charlie, dm.pk)

    (entry,) = denials(charlie)
    assert entry.details["what"] == "chat.read"
    assert entry.target_id == str(dm.pk)
    assert access_conversation(bob, dm.pk) == dm
    assert dm.pk not in readable(charlie)


def test_it_answers_404_for_a_conversation_that_does_not_exist(alice: User) -> None:
    with pytest.raises(Http404):
        access_conversation(alice, 999999)
    with pytest.raises(Http404):
        access_conversation_for_post(alice, 999999)
    assert denials(alice) == []


def test_it_checks_a_poster_in_one_query(
    channels: dict[str, Conversation],
    alice: User,
    charlie: User,
    django_assert_num_queries: Any,
) -> None:
    """The send path: the membership with its conversation in one query; the
    conversation alone is read only for a refusal."""
    bunsho = channels["bunsho"]
    with django_assert_num_queries(1):
        membership = access_conversation_for_post(alice, bunsho.pk)
        assert (membership.user_id, membership.conversation.name) == (alice.pk, bunsho.name)
    assert membership.conversation == bunsho
    with pytest.raises(PermissionDenied):
        access_conversation_for_post(charlie, bunsho.pk)
    (entry,) = denials(charlie)
    assert (entry.details["what"], entry.target_id) == ("chat.post", str(bunsho.pk))


def test_it_keeps_department_channels_to_their_members(
    channels: dict[str, Conversation], alice: User, charlie: User
) -> None:
    bunsho = channels["bunsho"]

    assert access_conversation_for_post(alice, bunsho.pk).user_id == alice.pk
    assert access_conversation(alice, channels["somu_bu"].pk) == channels["somu_bu"]
    with pytest.raises(PermissionDenied):
        access_conversation(charlie, bunsho.pk)
    with pytest.raises(PermissionDenied):
        access_conversation_for_post(charlie, bunsho.pk)
    assert [e.details["what"] for e in denials(charlie)] == ["chat.read", "chat.post"]
    assert readable(charlie) == {channels["kumin_bu"].pk, channels["koseki"].pk}


def test_it_shows_a_guest_only_the_project_channel_they_were_invited_to(
    channels: dict[str, Conversation], alice: User, guest: User, project: Conversation
) -> None:
    other = do_create_project_channel(name="防災訓練2025", acting_user=alice)
    do_add_members(project, [guest], acting_user=alice)

    assert readable(guest) == {project.pk}
    assert access_conversation_for_post(guest, project.pk).conversation == project
    for refused in (other, channels["bunsho"]):
        with pytest.raises(PermissionDenied):
            access_conversation(guest, refused.pk)
    assert len(denials(guest)) == 2


def test_it_refuses_an_expired_guest_everything(
    alice: User, guest: User, project: Conversation
) -> None:
    do_add_members(project, [guest], acting_user=alice)
    guest.is_active = False
    guest.save(update_fields=["is_active"])

    assert readable(guest) == set()
    with pytest.raises(PermissionDenied):
        access_conversation(guest, project.pk)


def test_it_refuses_a_transferred_person_from_the_transfer_date(
    channels: dict[str, Conversation], bob: User
) -> None:
    bunsho = channels["bunsho"]
    do_schedule_transfers(
        [TransferRecord(bob.staff.employee_number, "210", "", (), False)],
        name="10月1日付人事異動",
        effective_on=clock.today() + dt.timedelta(days=3),
        acting_user=Actor.system("test"),
    )
    assert access_conversation_for_post(bob, bunsho.pk).conversation == bunsho

    clock.advance(dt.timedelta(days=3))
    do_apply_due_transfers()

    with pytest.raises(PermissionDenied):
        access_conversation(bob, bunsho.pk)
    with pytest.raises(PermissionDenied):
        access_conversation_for_post(bob, bunsho.pk)
    assert bunsho.pk not in readable(bob)
    assert channels["koseki"].pk in readable(bob)


def test_it_hides_a_private_channel_from_non_members(alice: User, bob: User, charlie: User) -> None:
    secret = do_create_project_channel(
        name="人事案件", is_private=True, members=[bob], acting_user=alice
    )

    assert secret.pk in readable(bob)
    assert secret.pk not in readable(charlie)
    with pytest.raises(PermissionDenied):
        access_conversation(charlie, secret.pk)


def test_it_shows_a_public_channel_to_all_staff_but_lets_only_members_post(
    charlie: User, guest: User, project: Conversation
) -> None:
    assert project.pk in readable(charlie)
    assert access_conversation(charlie, project.pk) == project
    with pytest.raises(PermissionDenied):
        access_conversation_for_post(charlie, project.pk)

    assert project.pk not in readable(guest)
    with pytest.raises(PermissionDenied):
        access_conversation(guest, project.pk)


def test_it_refuses_posting_in_an_archived_conversation(
    alice: User, bob: User, project: Conversation
) -> None:
    do_archive(project, acting_user=alice)

    assert access_conversation(bob, project.pk) == project
    with pytest.raises(PermissionDenied):
        access_conversation_for_post(bob, project.pk)


def test_it_lets_owners_section_heads_and_it_admins_manage(
    channels: dict[str, Conversation],
    alice: User,
    bob: User,
    charlie: User,
    dora: User,
    erin: User,
    ida: User,
    guest: User,
    project: Conversation,
) -> None:
    bunsho = channels["bunsho"]
    group = do_create_group([bob, charlie], acting_user=alice)
    do_add_members(project, [guest], acting_user=alice)

    assert access_conversation_for_manage(alice, project.pk) == project
    assert access_conversation_for_manage(alice, group.pk) == group
    assert access_conversation_for_manage(dora, bunsho.pk) == bunsho
    for conversation in (project, group, bunsho):
        assert may_manage(ida, conversation)
    assert not may_manage(dora, channels["somu_ka"])
    assert not may_manage(alice, bunsho)
    for outsider in (bob, charlie, erin, guest):
        with pytest.raises(PermissionDenied):
            access_conversation_for_manage(outsider, project.pk)
        assert denials(outsider)[-1].details["what"] == "chat.manage"


def test_it_stops_a_transferred_section_head_managing_the_old_channel(
    channels: dict[str, Conversation], dora: User
) -> None:
    bunsho = channels["bunsho"]
    assert may_manage(dora, bunsho)
    do_schedule_transfers(
        [TransferRecord(dora.staff.employee_number, "210", "", (), False)],
        name="10月1日付人事異動",
        effective_on=clock.today() + dt.timedelta(days=1),
        acting_user=Actor.system("test"),
    )
    clock.advance(dt.timedelta(days=1))
    do_apply_due_transfers()

    # Her 所属長 grant for 文書係 is still there: the directory did not take it back.
    assert dora.role_grants.filter(role="section_head").exists()
    assert not may_manage(dora, bunsho)
    with pytest.raises(PermissionDenied):
        access_conversation_for_manage(dora, bunsho.pk)


def test_it_lets_only_it_admins_and_auditors_at_disclosure(
    alice: User, erin: User, ida: User, dora: User
) -> None:
    access_disclosure(erin)
    access_disclosure(ida)
    for refused in (alice, dora):
        with pytest.raises(PermissionDenied):
            access_disclosure(refused)
        assert denials(refused)[-1].details["what"] == "chat.disclosure"


# --- The same rules through the JSON API ---------------------------------------------------

API = "/api/chat"


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def call(user: User, method: str, path: str, data: dict[str, Any] | None = None) -> Any:
    client = signed_in(user)
    kwargs: dict[str, Any] = {}
    if data is not None:
        kwargs = {"data": json.dumps(data), "content_type": "application/json"}
    return getattr(client, method)(f"{API}{path}", **kwargs)


def listed(user: User) -> set[int]:
    response = call(user, "get", "/conversations")
    assert response.status_code == 200
    return {item["id"] for item in json.loads(response.content)}


def send(user: User, conversation: Conversation, key: str) -> Any:
    return call(
        user,
        "post",
        f"/conversations/{conversation.pk}/messages",
        {"text": "確認をお願いします。", "client_key": key},
    )


@pytest.fixture(autouse=True)
def _fresh_rate_counters() -> Iterator[None]:
    cache.clear()
    yield
    cache.clear()


def test_the_api_refuses_a_non_member_and_audits_it(alice: User, bob: User, charlie: User) -> None:
    dm, _ = do_get_or_create_direct(alice, bob, acting_user=alice)

    assert call(charlie, "get", f"/conversations/{dm.pk}").status_code == 403
    assert call(charlie, "get", f"/conversations/{dm.pk}/messages").status_code == 403
    assert send(charlie, dm, "k1").status_code == 403
    assert send(bob, dm, "k2").status_code == 201
    assert [e.details["what"] for e in denials(charlie)] == ["chat.read", "chat.read", "chat.post"]
    assert dm.pk not in listed(charlie)


def test_the_api_shows_a_guest_only_the_invited_project_channel(
    channels: dict[str, Conversation], alice: User, guest: User, project: Conversation
) -> None:
    other = do_create_project_channel(name="防災訓練2025", acting_user=alice)
    do_add_members(project, [guest], acting_user=alice)

    assert listed(guest) == {project.pk}
    assert send(guest, project, "g1").status_code == 201
    assert call(guest, "get", f"/conversations/{other.pk}").status_code == 403
    assert call(guest, "post", f"/conversations/{other.pk}/join").status_code == 403
    assert call(guest, "get", f"/conversations/{channels['bunsho'].pk}").status_code == 403
    created = call(guest, "post", "/conversations", {"kind": "project", "name": "ゲストの部屋"})
    assert created.status_code == 403
    assert not Conversation.objects.filter(name="ゲストの部屋").exists()


def test_the_api_refuses_a_transferred_person_from_the_transfer_date(
    channels: dict[str, Conversation], bob: User
) -> None:
    bunsho = channels["bunsho"]
    do_schedule_transfers(
        [TransferRecord(bob.staff.employee_number, "210", "", (), False)],
        name="10月1日付人事異動",
        effective_on=clock.today() + dt.timedelta(days=1),
        acting_user=Actor.system("test"),
    )
    assert send(bob, bunsho, "before").status_code == 201

    clock.advance(dt.timedelta(days=1))
    do_apply_due_transfers()

    assert call(bob, "get", f"/conversations/{bunsho.pk}/messages").status_code == 403
    assert send(bob, bunsho, "after").status_code == 403
    assert bunsho.pk not in listed(bob)
    assert channels["koseki"].pk in listed(bob)


def test_the_api_keeps_private_channels_private_and_public_ones_readable(
    alice: User, bob: User, charlie: User, guest: User, project: Conversation
) -> None:
    secret = do_create_project_channel(
        name="人事案件", is_private=True, members=[bob], acting_user=alice
    )

    assert call(charlie, "get", f"/conversations/{secret.pk}").status_code == 403
    assert call(charlie, "post", f"/conversations/{secret.pk}/join").status_code == 403
    assert secret.pk not in listed(charlie)
    assert call(charlie, "get", f"/conversations/{project.pk}/messages").status_code == 200
    assert send(charlie, project, "c1").status_code == 403
    assert call(charlie, "post", f"/conversations/{project.pk}/join").status_code == 200
    assert send(charlie, project, "c2").status_code == 201
    assert call(guest, "get", f"/conversations/{project.pk}").status_code == 403


def test_the_api_lets_only_managers_change_a_conversation(
    channels: dict[str, Conversation],
    alice: User,
    bob: User,
    dora: User,
    erin: User,
    ida: User,
    guest: User,
    project: Conversation,
) -> None:
    bunsho = channels["bunsho"]
    path = f"/conversations/{project.pk}"

    for refused in (bob, erin):
        assert call(refused, "patch", path, {"description": "x"}).status_code == 403
        assert denials(refused)[-1].details["what"] == "chat.manage"
    assert call(alice, "patch", path, {"description": "所有者"}).status_code == 200
    assert call(ida, "patch", path, {"description": "情報政策"}).status_code == 200
    assert (
        call(alice, "patch", f"/conversations/{bunsho.pk}", {"description": "x"}).status_code == 403
    )
    assert (
        call(dora, "patch", f"/conversations/{bunsho.pk}", {"description": "係"}).status_code == 200
    )
    added = call(bob, "post", f"{path}/members", {"users": [guest.username]})
    assert added.status_code == 403
    assert denials(bob)[-1].details["what"] == "chat.manage"
    assert guest.pk not in set(project.memberships.values_list("user_id", flat=True))
    assert call(bob, "post", f"{path}/archive").status_code == 403
    assert call(alice, "post", f"{path}/archive").status_code == 200
