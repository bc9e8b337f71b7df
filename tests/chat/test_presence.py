"""Presence (在席): connections, idle, statuses set by other features, message expiry,
batched fan-out by interest, and the API.  Real sockets on uvicorn in a thread."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from tests.realtime import conftest as realtime_fixtures
from tests.realtime.conftest import (
    Socket,
    ThreadServer,
    open_socket,
    process_env,
    server_processes,
    session_cookie,
)
from yakuba.chat import live, presence
from yakuba.chat.models import Conversation, Presence
from yakuba.directory.models import User
from yakuba.lib import clock
from yakuba.realtime import bus
from yakuba.tasks.registry import PERIODIC

Status = Presence.Status


# The real-time tests' servers and sockets (fixtures).
_close_sockets = realtime_fixtures._close_sockets
memory_bus = realtime_fixtures.memory_bus
redis_prefix = realtime_fixtures.redis_prefix
server = realtime_fixtures.server


@pytest.fixture(autouse=True)
def _fresh_process() -> Iterator[None]:
    """Each test starts with a process that holds no socket, interest or change, and
    its batches go out when the test says (``flush``/``tick``), not on the timer."""
    presence.reset_state()
    live.clear_caches()
    with presence.paused():
        yield
    presence.reset_state()


def eventually(predicate: Callable[[], bool], timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("the condition did not become true in time")
        time.sleep(0.02)


def row(user: User) -> Presence:
    return Presence.objects.get(user=user)


GUEST_PASSWORD = "not-used-here-1234"  # tests/chat/conftest.py's guest


def cookie_of(user: User) -> str:
    if user.kind != User.Kind.GUEST:
        return session_cookie(user)
    client = Client()
    signed_in = client.post("/login/", {"username": user.username, "password": GUEST_PASSWORD})
    assert signed_in.status_code == 302
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"


def connect_to(url: str, user: User) -> Socket:
    ws = open_socket(url, cookie=cookie_of(user))
    ws.hello()
    return ws


def connect(server: ThreadServer, user: User) -> Socket:
    return connect_to(server.url, user)


def watch(ws: Socket, *users: User) -> list[dict[str, Any]]:
    ws.send({"op": "chat.presence_watch", "users": [u.pk for u in users]})
    frame = ws.next()
    assert frame["op"] == "chat.presence_watching", frame
    return list(frame["presence"])


def presence_frames(ws: Socket) -> list[dict[str, Any]]:
    """The presence frames queued for ``ws`` now (ends with our ping's pong)."""
    ws.send({"op": "ping"})
    found = []
    while (frame := ws.next()) != {"op": "pong"}:
        assert frame["op"] == "live", frame
        assert frame["event"]["op"] == "presence", frame
        found.append(frame["event"])
    return found


def statuses(events: list[dict[str, Any]]) -> list[dict[int, str]]:
    return [{c["user"]: c["status"] for c in event["changes"]} for event in events]


# --- connections -------------------------------------------------------------------------


def test_it_marks_a_person_online_when_they_connect_and_watchers_see_it(
    server: ThreadServer, alice: User, bob: User
) -> None:
    bob_ws = connect(server, bob)
    assert watch(bob_ws, alice) == [presence.offline_dict(alice.pk)]
    alice_ws = connect(server, alice)
    # The hook ran before "ready": the row is there as soon as the socket is.
    assert row(alice).online
    presence.flush()
    assert statuses(presence_frames(bob_ws)) == [{alice.pk: Status.AVAILABLE}]
    # A second socket of Alice's changes nothing and sends nothing.
    connect(server, alice)
    assert presence.flush() == 0
    assert presence_frames(bob_ws) == []
    alice_ws.assert_nothing_pending()


def test_it_marks_a_person_offline_after_the_grace_and_a_reconnect_cancels_it(
    server: ThreadServer, alice: User, bob: User
) -> None:
    bob_ws = connect(server, bob)
    alice_ws = connect(server, alice)
    watch(bob_ws, alice)
    presence.flush()
    assert statuses(presence_frames(bob_ws)) == [{alice.pk: Status.AVAILABLE}]
    alice_ws.close()
    eventually(lambda: presence.stats()["connected"] == 1)  # Bob only
    clock.advance(dt.timedelta(seconds=10))
    presence.tick()
    assert row(alice).online  # within the grace: a page load
    again = connect(server, alice)
    clock.advance(dt.timedelta(seconds=60))
    presence.tick()
    assert row(alice).online  # the reconnect cancelled it
    assert presence_frames(bob_ws) == []
    again.close()
    eventually(lambda: presence.stats()["connected"] == 1)
    clock.advance(presence.OFFLINE_GRACE + dt.timedelta(seconds=1))
    presence.tick()
    assert not row(alice).online
    assert statuses(presence_frames(bob_ws)) == [{alice.pk: Status.OFFLINE}]


def test_it_sweeps_people_whose_process_died_and_keeps_those_renewed(
    db: None, alice: User, bob: User
) -> None:
    # Two people connected in this process; then the process "dies" for Alice only:
    # it forgets her socket without closing it, as a killed worker would.
    presence.socket_ready(alice.pk)
    presence.socket_ready(bob.pk)
    presence.reset_state()
    presence.socket_ready(bob.pk)  # Bob is on a process that lives on
    clock.advance(dt.timedelta(minutes=2))
    presence.tick()  # renews seen_at of Bob (connected here)
    clock.advance(dt.timedelta(minutes=2))
    PERIODIC["chat.presence_sweep"].function()
    assert not row(alice).online
    assert row(bob).online
    # Safe to run twice.
    PERIODIC["chat.presence_sweep"].function()
    assert not row(alice).online


def test_it_writes_only_when_a_person_comes_online(
    db: None, alice: User, django_assert_num_queries: Any
) -> None:
    presence.socket_ready(alice.pk)  # the first time ever: the row is made
    presence.socket_closed(alice.pk)
    clock.advance(presence.OFFLINE_GRACE)
    presence.tick()
    assert not row(alice).online
    with django_assert_num_queries(1):  # UPDATE … WHERE online = false
        presence.socket_ready(alice.pk)
    with django_assert_num_queries(0):  # a second tab
        presence.socket_ready(alice.pk)
    with django_assert_num_queries(0):  # both closed, and a page load within the grace
        presence.socket_closed(alice.pk)
        presence.socket_closed(alice.pk)
        presence.socket_ready(alice.pk)
    assert row(alice).online


def test_it_renews_every_connected_person_in_one_update(db: None, alice: User) -> None:
    users = User.objects.bulk_create(
        [User(username=f"staff{n}", display_name=f"職員{n}") for n in range(200)]
    )
    for user in users:
        presence.socket_ready(user.pk)
    later = clock.now() + presence.RENEW_EVERY
    with (
        clock.frozen_at(later),
        presence.paused(),
        CaptureQueriesContext(connection) as queries,
    ):
        presence.tick()
    updates = [q["sql"] for q in queries if q["sql"].startswith("UPDATE")]
    assert len(updates) == 1, updates
    # One UPDATE; then the batch of what changed on connecting (one SELECT).
    assert len(queries) <= 3, [q["sql"][:80] for q in queries]
    assert Presence.objects.filter(seen_at=later).count() == 200


# --- idle and statuses -------------------------------------------------------------------


def test_it_shows_an_idle_person_away_but_not_over_a_meeting(
    server: ThreadServer, alice: User, bob: User
) -> None:
    bob_ws = connect(server, bob)
    alice_ws = connect(server, alice)
    watch(bob_ws, alice)
    presence.flush()
    presence_frames(bob_ws)
    alice_ws.send({"op": "chat.activity", "idle": True})
    eventually(lambda: row(alice).idle)
    presence.flush()
    assert statuses(presence_frames(bob_ws)) == [{alice.pk: Status.AWAY}]
    # A meeting starts: 会議中 is not hidden by automatic 離席.
    presence.do_set_presence(alice, status=Status.IN_MEETING, set_by="meeting")
    presence.flush()
    assert statuses(presence_frames(bob_ws)) == [{alice.pk: Status.IN_MEETING}]
    assert row(alice).idle
    # The meeting ends: back to 在席, shown 離席 while she is still idle.
    assert presence.do_release_presence(alice, set_by="meeting")
    presence.flush()
    assert statuses(presence_frames(bob_ws)) == [{alice.pk: Status.AWAY}]
    # A release by a feature that did not set the status changes nothing.
    presence.do_set_presence(alice, status=Status.TELEWORK, set_by="user")
    assert not presence.do_release_presence(alice, set_by="meeting")
    assert row(alice).status == Status.TELEWORK


def test_it_throttles_idle_changes_and_applies_the_last_one_later(
    server: ThreadServer, alice: User
) -> None:
    alice_ws = connect(server, alice)
    alice_ws.send({"op": "chat.activity", "idle": True})
    eventually(lambda: row(alice).idle)
    changed_at = row(alice).changed_at
    alice_ws.send({"op": "chat.activity", "idle": False})
    alice_ws.send({"op": "chat.activity", "idle": True})
    alice_ws.send({"op": "chat.activity", "idle": False})
    alice_ws.assert_nothing_pending()  # the ops were handled (they answer nothing)
    assert row(alice).idle  # no write within 5 s
    assert row(alice).changed_at == changed_at
    clock.advance(presence.IDLE_THROTTLE)
    presence.tick()
    assert not row(alice).idle  # the last wish, once the window passed
    alice_ws.send({"op": "chat.activity", "idle": "yes"})
    assert alice_ws.next() == {"op": "error", "code": "invalid", "got": "chat.activity"}


def test_it_drops_an_expired_status_message(server: ThreadServer, alice: User, bob: User) -> None:
    bob_ws = connect(server, bob)
    connect(server, alice)
    watch(bob_ws, alice)
    presence.check_set_presence(
        alice,
        status=Status.AVAILABLE,
        message="午後は窓口応援",
        expires_at=clock.now() + dt.timedelta(hours=1),
    )
    presence.flush()
    [event] = presence_frames(bob_ws)
    assert event["changes"][0]["message"] == "午後は窓口応援"
    clock.advance(dt.timedelta(hours=1, seconds=1))
    presence.tick()  # this process renews its connected people (nothing else changed)
    assert presence_frames(bob_ws) == []
    # Already hidden before the sweep...
    assert presence.read_presence(bob.pk, [alice.pk])[0]["message"] == ""
    # ...and the sweep clears it and tells the watchers.
    PERIODIC["chat.presence_sweep"].function()
    assert row(alice).message == ""
    assert row(alice).message_expires_at is None
    [event] = presence_frames(bob_ws)
    assert event["changes"] == [
        {"user": alice.pk, "status": Status.AVAILABLE, "message": "", "message_expires_at": None}
    ]


# --- fan-out -----------------------------------------------------------------------------


def test_it_sends_each_watcher_one_frame_per_batch_with_only_whom_they_watch(
    server: ThreadServer, alice: User, bob: User, charlie: User
) -> None:
    alice_ws, bob_ws, charlie_ws = (connect(server, u) for u in (alice, bob, charlie))
    watch(alice_ws, bob)
    watch(bob_ws, alice, charlie)
    presence.flush()
    presence_frames(alice_ws), presence_frames(bob_ws)
    charlie_ws.assert_nothing_pending()  # watches nobody: never a frame
    with presence.paused():
        for status in (Status.IN_MEETING, Status.LEAVE, Status.TELEWORK):
            presence.do_set_presence(alice, status=status)
        presence.do_set_presence(charlie, status=Status.AWAY)
        presence.do_set_presence(bob, status=Status.IN_MEETING)
        assert presence.flush() == 3  # three people changed: one batch
    assert statuses(presence_frames(bob_ws)) == [
        {alice.pk: Status.TELEWORK, charlie.pk: Status.AWAY}
    ]
    assert statuses(presence_frames(alice_ws)) == [{bob.pk: Status.IN_MEETING}]
    charlie_ws.assert_nothing_pending()
    assert presence.flush() == 0  # nothing changed: nothing sent


def test_it_lets_a_guest_watch_only_people_it_shares_a_conversation_with(
    server: ThreadServer, alice: User, bob: User, charlie: User, guest: User
) -> None:
    from yakuba.chat.actions.conversations import do_create_project_channel

    do_create_project_channel(
        name="災害時輸送協定", owners=[alice], members=[guest], acting_user=alice
    )
    guest_ws = connect(server, guest)
    assert [p["user"] for p in watch(guest_ws, alice, bob, charlie)] == [alice.pk]
    connect(server, bob)
    connect(server, alice)
    presence.flush()
    assert statuses(presence_frames(guest_ws)) == [{alice.pk: Status.AVAILABLE}]


def test_it_refuses_a_malformed_or_too_long_watch_list(server: ThreadServer, alice: User) -> None:
    ws = connect(server, alice)
    error = {"op": "error", "code": "invalid", "got": "chat.presence_watch"}
    for users in ("1,2", [1, "2"], [True], list(range(1, presence.MAX_WATCH + 2))):
        ws.send({"op": "chat.presence_watch", "users": users})
        assert ws.next() == error


class CountingSocket:
    """A socket of the bus without a network: counts the frames it is handed."""

    def __init__(self, user_id: int) -> None:
        self.user_id = user_id
        self.last_sent = 0
        self.frames: list[str] = []

    def deliver(self, event_id: int, event: dict[str, Any]) -> None:
        raise AssertionError("presence sends no stream events")

    def catch_up(self) -> None:
        pass

    def deliver_topic(self, topic: str, event: dict[str, Any]) -> None:
        raise AssertionError("presence sends no topic events")

    def deliver_live(self, frame: str) -> None:
        self.frames.append(frame)


def test_it_does_work_proportional_to_the_users_not_their_square(
    db: None, memory_bus: None, django_capture_on_commit_callbacks: Any
) -> None:
    """3,000 people connect, each watching 20 others: one batch gives each one frame
    with their 20; then one person's change reaches exactly their 20 watchers."""
    count, watched = 3000, 20
    users = User.objects.bulk_create(
        [User(username=f"staff{n}", display_name=f"職員{n}") for n in range(count)]
    )
    ids = [u.pk for u in users]
    # People who used chat before (a row each, offline): connecting is one UPDATE.
    Presence.objects.bulk_create([Presence(user_id=i) for i in ids])
    sockets = [CountingSocket(i) for i in ids]
    cpu_before = presence.cpu_seconds()
    try:
        with presence.paused():
            for sock in sockets:
                bus.local_sockets.add(sock)
                presence.socket_ready(sock.user_id)
            for n, sock in enumerate(sockets):
                wanted = [ids[(n + k) % count] for k in range(1, watched + 1)]
                reply = presence.on_watch(sock.user_id, {"users": wanted})
                assert reply is not None
                assert len(reply["presence"]) == watched
            with CaptureQueriesContext(connection) as queries:
                assert presence.flush() == count
            assert len(queries) == 1  # their current rows, whatever their number
        assert [len(s.frames) for s in sockets] == [1] * count
        assert all(len(json.loads(s.frames[0])["event"]["changes"]) == watched for s in sockets)
        for sock in sockets:
            sock.frames.clear()
        changed = users[0]
        with django_capture_on_commit_callbacks(execute=True):
            presence.do_set_presence(changed, status=Status.IN_MEETING, set_by="meeting")
        presence.flush()
        receivers = [s.user_id for s in sockets if s.frames]
        assert sorted(receivers) == sorted(ids[-watched:])  # whoever watches user 0
        assert sum(len(s.frames) for s in sockets) == watched
    finally:
        for sock in sockets:
            bus.local_sockets.remove(sock)
    assert presence.cpu_seconds() > cpu_before


def test_it_sends_presence_between_worker_processes_sharing_redis(
    transactional_db: None, alice: User, bob: User, redis_url: str, redis_prefix: str
) -> None:
    """Alice's socket is on worker 1, Bob's on worker 2: worker 2's batch reaches her
    through Redis, filtered by worker 1's interest table."""
    env = process_env(redis_url, redis_prefix)
    env["YAKUBA_CHAT_PRESENCE_BATCH_SECONDS"] = "1"
    with server_processes(2, env) as (first, second):
        alice_ws = connect_to(first.url, alice)
        assert watch(alice_ws, bob) == [presence.offline_dict(bob.pk)]
        connect_to(second.url, bob)
        frame = alice_ws.next(15)
        assert frame["op"] == "live", frame
        assert statuses([frame["event"]]) == [{bob.pk: Status.AVAILABLE}]
        alice_ws.assert_nothing_pending()


# --- the API -----------------------------------------------------------------------------


def client_of(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def put(client: Client, body: dict[str, Any]) -> Any:
    return client.put("/api/chat/presence", data=body, content_type="application/json")


def test_it_sets_and_reads_presence_over_the_api(db: None, alice: User, bob: User) -> None:
    presence.socket_ready(alice.pk)
    until = clock.now() + dt.timedelta(hours=2)
    answer = put(
        client_of(alice),
        {"status": "meeting", "message": "庁議に出席中", "expires_at": until.isoformat()},
    )
    assert answer.status_code == 200, answer.content
    assert answer.json() == {
        "user": alice.pk,
        "status": "meeting",
        "message": "庁議に出席中",
        "message_expires_at": until.isoformat(),
    }
    assert row(alice).status_set_by == "user"
    read = client_of(bob).get(f"/api/chat/presence?users={alice.pk},{bob.pk}")
    assert read.status_code == 200
    assert [(p["user"], p["status"]) for p in read.json()] == [
        (alice.pk, "meeting"),
        (bob.pk, "offline"),
    ]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"status": "busy"}, "status"),
        ({"status": "available", "message": "あ" * 101}, "message"),
        (
            {"status": "available", "message": "外出", "expires_at": "2000-01-01T00:00:00+09:00"},
            "expires_at",
        ),
        (
            {"status": "available", "message": "外出", "expires_at": "2999-01-01T00:00:00"},
            "expires_at",
        ),
        ({"status": "available", "expires_at": "2999-01-01T00:00:00+09:00"}, "expires_at"),
    ],
)
def test_it_answers_a_bad_presence_with_a_clear_400(
    db: None, alice: User, body: dict[str, Any], field: str
) -> None:
    answer = put(client_of(alice), body)
    assert answer.status_code == 400, answer.content
    error = answer.json()["error"]
    assert error["code"] == "invalid"
    assert list(error["fields"]) == [field]
    assert error["message"]
    assert error["message"] != error["message_en"]
    assert not Presence.objects.filter(user=alice).exists()


@pytest.mark.parametrize("users", ["", "1,x", "0", ",".join(str(n) for n in range(1, 502))])
def test_it_answers_a_bad_user_list_with_a_400(db: None, alice: User, users: str) -> None:
    answer = client_of(alice).get(f"/api/chat/presence?users={users}")
    assert answer.status_code == 400, answer.content
    assert list(answer.json()["error"]["fields"]) == ["users"]


def test_it_refuses_presence_to_a_caller_who_is_not_signed_in(db: None, alice: User) -> None:
    assert Client().get(f"/api/chat/presence?users={alice.pk}").status_code == 401
    assert put(Client(), {"status": "available"}).status_code == 401


def test_it_shows_a_guest_only_the_people_of_its_conversations(
    db: None, alice: User, bob: User, guest: User
) -> None:
    conversation: Conversation
    from yakuba.chat.actions.conversations import do_create_project_channel

    conversation = do_create_project_channel(
        name="災害時輸送協定", owners=[alice], members=[guest], acting_user=alice
    )
    assert conversation.memberships.count() == 2
    read = client_of(guest).get(f"/api/chat/presence?users={alice.pk},{bob.pk}")
    assert [p["user"] for p in read.json()] == [alice.pk]
