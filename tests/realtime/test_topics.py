"""Topics: live, unpersisted broadcasts to the sockets that watch them (floor boards)."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from typing import Any

import pytest
from django.db import transaction

from tests.conftest import PASSWORD
from tests.realtime.conftest import (
    ROOT,
    Socket,
    ThreadServer,
    open_socket,
    process_env,
    server_processes,
    session_cookie,
)
from yakuba.directory.actions.staff import do_invite_guest
from yakuba.directory.models import User
from yakuba.lib import clock
from yakuba.realtime import topics
from yakuba.realtime.models import UserEvent

TOPIC = "rooms.floor.7"
BROADCASTER = """
import json, sys
import django
django.setup()
from django.db import transaction
from yakuba.realtime.topics import broadcast_on_commit
with transaction.atomic():
    broadcast_on_commit(sys.argv[1], json.loads(sys.argv[2]))
"""


def occupancy(room_id: int) -> dict[str, Any]:
    return {"type": "rooms", "op": "occupancy", "room_id": room_id}


def broadcast(topic: str, event: dict[str, Any]) -> None:
    with transaction.atomic():
        topics.broadcast_on_commit(topic, event)


def watching(server_url: str, user: User, *watched: str) -> Socket:
    sock = open_socket(server_url, cookie=session_cookie(user))
    sock.hello()
    for topic in watched:
        sock.send({"op": "watch", "topic": topic})
        assert sock.next() == {"op": "watching", "topic": topic}
    return sock


def test_it_delivers_a_broadcast_to_the_watchers_only(
    server: ThreadServer, alice: User, bob: User
) -> None:
    alice_ws = watching(server.url, alice, TOPIC)
    bob_ws = watching(server.url, bob, "rooms.floor.8")
    broadcast(TOPIC, occupancy(1))
    assert alice_ws.next() == {"op": "topic", "topic": TOPIC, "event": occupancy(1)}
    bob_ws.assert_nothing_pending()
    # Nothing is persisted: a topic is not anybody's stream.
    assert not UserEvent.objects.exists()


def test_it_sends_nothing_when_the_transaction_rolls_back(
    server: ThreadServer, alice: User
) -> None:
    alice_ws = watching(server.url, alice, TOPIC)

    def failing_action() -> None:
        with transaction.atomic():
            topics.broadcast_on_commit(TOPIC, occupancy(1))
            raise RuntimeError("the action failed")

    with pytest.raises(RuntimeError):
        failing_action()
    alice_ws.assert_nothing_pending()


def test_it_stops_after_unwatch(server: ThreadServer, alice: User) -> None:
    alice_ws = watching(server.url, alice, TOPIC)
    alice_ws.send({"op": "unwatch", "topic": TOPIC})
    assert alice_ws.next() == {"op": "unwatched", "topic": TOPIC}
    broadcast(TOPIC, occupancy(2))
    alice_ws.assert_nothing_pending()


def test_it_refuses_guests_unknown_prefixes_and_bad_names(
    server: ThreadServer, alice: User
) -> None:
    guest = do_invite_guest(
        name="外部 太郎",
        organisation="株式会社サンプル",
        email="taro@example.jp",
        expires_at=clock.now() + dt.timedelta(days=1),
        username="guest1",
        password=PASSWORD,
        acting_user=None,
    )
    guest_ws = open_socket(server.url, cookie=session_cookie(guest))
    guest_ws.hello()
    guest_ws.send({"op": "watch", "topic": TOPIC})
    assert guest_ws.next() == {"op": "error", "code": "forbidden", "topic": TOPIC}
    alice_ws = watching(server.url, alice)
    for topic in ("secrets.everything", "rooms", "rooms.floor.7; drop", 42):
        alice_ws.send({"op": "watch", "topic": topic})
        assert alice_ws.next()["code"] == "forbidden"
    broadcast(TOPIC, occupancy(3))
    guest_ws.assert_nothing_pending()
    alice_ws.assert_nothing_pending()


def test_it_refuses_a_watch_before_hello(server: ThreadServer, alice: User) -> None:
    sock = open_socket(server.url, cookie=session_cookie(alice))
    sock.send({"op": "watch", "topic": TOPIC})
    assert sock.next() == {"op": "error", "code": "unexpected", "got": "watch"}


def test_it_checks_events_and_topic_names_when_broadcasting() -> None:
    with pytest.raises(ValueError, match="type"):
        topics.broadcast_on_commit(TOPIC, {"op": "x"})
    with pytest.raises(ValueError, match="bad topic"):
        topics.broadcast_on_commit("Rooms floor", occupancy(1))


@pytest.mark.redis
def test_it_delivers_a_broadcast_from_another_process_through_redis(
    transactional_db: None, alice: User, redis_url: str, redis_prefix: str
) -> None:
    env = process_env(redis_url, redis_prefix)
    with server_processes(2, env) as (first, second):
        on_first = watching(first.url, alice, TOPIC)
        on_second = watching(second.url, alice, TOPIC)
        subprocess.run(
            [sys.executable, "-c", BROADCASTER, TOPIC, '{"type": "rooms", "op": "occupancy"}'],
            env=env,
            cwd=ROOT,
            check=True,
            timeout=60,
        )
        expected = {"op": "topic", "topic": TOPIC, "event": {"type": "rooms", "op": "occupancy"}}
        assert on_first.next() == expected
        assert on_second.next() == expected
