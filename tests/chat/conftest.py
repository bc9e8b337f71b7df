"""Chat fixtures.

- ``channels``: the ward's 所属 channels (``{"somu_bu": …, "bunsho": …, …}``, keyed like
  ``ward``) with their members synced from the directory: Alice and Bob (文書係) are in
  文書係, 総務課 and 総務部; Charlie in 戸籍住民課 and 区民部;
- ``bunsho_channel``: 文書係's channel;
- ``project``: 「新庁舎移転プロジェクト」, a public project channel Alice owns, Bob a member;
- ``dora`` (所属長 of 文書係), ``erin`` (auditor, 総務部), ``ida`` (IT administrator,
  情報政策課), ``guest`` (Gina from the bus company): made after ``channels`` or not,
  they are in their 所属 channels;
- ``sent``: every chat event sent during the test, ``[(payload, [user ids]), …]``
  (persisted stream events and live ones alike; they are still sent).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

import pytest

from yakuba.audit.record import Actor
from yakuba.chat import membership
from yakuba.chat.actions.conversations import do_create_project_channel
from yakuba.chat.models import Conversation
from yakuba.directory.actions.staff import do_grant_role, do_invite_guest
from yakuba.directory.models import Department, Role, User
from yakuba.lib import clock
from yakuba.realtime import send

from ..conftest import make_department, make_staff

Sent = list[tuple[dict[str, Any], list[int]]]


def synced(user: User) -> User:
    """``user`` (made with ``make_staff``, which sends no directory signal) put into the
    所属 channels of their posts."""
    membership.sync_users([user.pk])
    return user


@pytest.fixture
def channels(
    ward: dict[str, Department], alice: User, bob: User, charlie: User
) -> dict[str, Conversation]:
    membership.ensure_department_channels()
    membership.sync_all()
    by_department = {
        c.department_id: c for c in Conversation.objects.filter(kind=Conversation.Kind.DEPARTMENT)
    }
    return {key: by_department[department.pk] for key, department in ward.items()}


@pytest.fixture
def bunsho_channel(channels: dict[str, Conversation]) -> Conversation:
    return channels["bunsho"]


@pytest.fixture
def project(alice: User, bob: User) -> Conversation:
    return do_create_project_channel(
        name="新庁舎移転プロジェクト",
        description="新庁舎への移転準備（レイアウト、引越し日程、書庫の整理）",
        is_private=False,
        owners=[alice],
        members=[bob],
        acting_user=alice,
    )


@pytest.fixture
def dora(ward: dict[str, Department]) -> User:
    """Dora is the 所属長 of 文書係."""
    user = make_staff("dora", "土田", "乃", ward["bunsho"], number="10010", kana=("つちだ", "の"))
    do_grant_role(
        user, Role.SECTION_HEAD, department=ward["bunsho"], acting_user=Actor.system("test")
    )
    return synced(user)


@pytest.fixture
def erin(ward: dict[str, Department]) -> User:
    """Erin is an auditor (監査) in 総務部."""
    user = make_staff(
        "erin", "遠藤", "恵", ward["somu_bu"], number="10011", kana=("えんどう", "めぐみ")
    )
    do_grant_role(user, Role.AUDITOR, acting_user=Actor.system("test"))
    return synced(user)


@pytest.fixture
def joho(ward: dict[str, Department]) -> Department:
    """情報政策課 under 総務部."""
    return make_department("120", "情報政策課", "ka", ward["somu_bu"])


@pytest.fixture
def ida(joho: Department) -> User:
    """Ida is an IT administrator in 情報政策課."""
    user = make_staff("ida", "井田", "一郎", joho, number="30001", kana=("いだ", "いちろう"))
    do_grant_role(user, Role.IT_ADMIN, acting_user=Actor.system("test"))
    user.refresh_from_db()
    return synced(user)


@pytest.fixture
def guest(db: None) -> User:
    """Gina is a guest from the bus company, invited for a month."""
    return do_invite_guest(
        name="五味 ジーナ",
        organisation="みどり交通株式会社",
        email="gina@bus.example.jp",
        expires_at=clock.now() + dt.timedelta(days=30),
        username="gina",
        password="not-used-here-1234",
        acting_user=Actor.system("test"),
    )


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> Sent:
    """The chat events sent during the test (still sent for real)."""
    captured: Sent = []
    original_event = send.send_event_on_commit
    original_live = send.send_live_on_commit

    def event(payload: dict[str, Any], user_ids: Iterable[int]) -> None:
        ids = sorted(set(user_ids))
        captured.append((payload, ids))
        original_event(payload, ids)

    def live(payload: dict[str, Any], user_ids: Iterable[int]) -> None:
        ids = sorted(set(user_ids))
        captured.append((payload, ids))
        original_live(payload, ids)

    monkeypatch.setattr("yakuba.chat.events.send_event_on_commit", event)
    monkeypatch.setattr("yakuba.chat.events.send_live_on_commit", live)
    return captured
