"""Live events (``send_live_on_commit``): not persisted, published after commit, one
serialisation per process, in order with stream events, ``live_gap`` when dropped; and
process messages (``publish_to_processes``)."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import transaction

from tests.realtime.conftest import Socket, ThreadServer, open_socket, session_cookie
from yakuba.directory.models import User
from yakuba.realtime import bus, gateway
from yakuba.realtime.models import UserEvent
from yakuba.realtime.send import send_event_on_commit, send_live_on_commit


def signed_in(server: ThreadServer, user: User) -> Socket:
    sock = open_socket(server.url, cookie=session_cookie(user))
    sock.hello()
    return sock


def live(n: int) -> dict[str, Any]:
    return {"type": "test", "op": "live", "n": n}


def note(n: int) -> dict[str, Any]:
    return {"type": "test", "op": "note", "n": n}


def failing_action(user: User) -> None:
    with transaction.atomic():
        send_live_on_commit(live(2), [user.pk])
        raise RuntimeError("the action failed")


def test_it_publishes_a_live_event_after_commit_and_never_on_rollback(
    server: ThreadServer, alice: User, bob: User
) -> None:
    alice_ws, bob_ws = signed_in(server, alice), signed_in(server, bob)
    with transaction.atomic():
        send_live_on_commit(live(1), [alice.pk])
        alice_ws.assert_nothing_pending()  # not before the commit
    assert alice_ws.next() == {"op": "live", "event": live(1)}
    with pytest.raises(RuntimeError, match="the action failed"):
        failing_action(alice)
    alice_ws.assert_nothing_pending()
    bob_ws.assert_nothing_pending()
    assert not UserEvent.objects.exists()  # nothing persisted


def test_it_publishes_at_once_outside_a_transaction(
    server: ThreadServer, alice: User, bob: User
) -> None:
    alice_ws, bob_ws = signed_in(server, alice), signed_in(server, bob)
    send_live_on_commit(live(1), [alice.pk, alice.pk, bob.pk])
    assert alice_ws.next() == {"op": "live", "event": live(1)}  # once, however named
    assert bob_ws.next() == {"op": "live", "event": live(1)}
    alice_ws.assert_nothing_pending()


def test_it_refuses_an_event_that_is_not_a_serialisable_dict(db: None, alice: User) -> None:
    with pytest.raises(ValueError, match="a dict with 'type' and 'op'"):
        send_live_on_commit({"type": "test"}, [alice.pk])
    with pytest.raises(ValueError, match="JSON-serialisable"):
        send_live_on_commit({"type": "test", "op": "x", "when": object()}, [alice.pk])


def test_it_keeps_live_frames_in_order_with_stream_events(
    server: ThreadServer, alice: User
) -> None:
    ws = signed_in(server, alice)
    for n in (1, 2, 3):
        with transaction.atomic():
            send_event_on_commit(note(n), [alice.pk])
        with transaction.atomic():
            send_live_on_commit(live(n), [alice.pk])
    assert [ws.next() for _ in range(6)] == [
        {"id": 1, "event": note(1)},
        {"op": "live", "event": live(1)},
        {"id": 2, "event": note(2)},
        {"op": "live", "event": live(2)},
        {"id": 3, "event": note(3)},
        {"op": "live", "event": live(3)},
    ]
    ws.assert_nothing_pending()


def test_it_tells_a_socket_whose_live_frames_were_dropped_to_resync(
    server: ThreadServer, alice: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gateway, "QUEUE_LIMIT", 3)
    ws = signed_in(server, alice)
    with transaction.atomic():
        send_event_on_commit(note(1), [alice.pk])
        for n in range(50):
            send_live_on_commit(live(n), [alice.pk])
    # The gap is told after the stream is re-read, so it may come after a pong: read
    # until it comes (a timeout fails the test).
    frames = []
    while (frame := ws.next()) != {"op": "live_gap"}:
        frames.append(frame)
    assert len([f for f in frames if f.get("op") == "live"]) < 50
    # The stream event is not lost with the live frames: it is re-read from the stream.
    assert frames.count({"id": 1, "event": note(1)}) == 1


class Recorder:
    """A bus subscriber without a network."""

    def __init__(self, user_id: int) -> None:
        self.user_id = user_id
        self.last_sent = 0
        self.frames: list[str] = []

    def deliver(self, event_id: int, event: dict[str, Any]) -> None:
        raise AssertionError("no stream event expected")

    def catch_up(self) -> None:
        pass

    def deliver_topic(self, topic: str, event: dict[str, Any]) -> None:
        raise AssertionError("no topic event expected")

    def deliver_live(self, frame: str) -> None:
        self.frames.append(frame)


def test_it_serialises_a_live_event_once_for_every_local_socket(
    memory_bus: None, alice: User, bob: User, charlie: User
) -> None:
    sockets = [Recorder(alice.pk), Recorder(alice.pk), Recorder(bob.pk), Recorder(charlie.pk)]
    for sock in sockets:
        bus.local_sockets.add(sock)
    try:
        bus.local_sockets.dispatch_live(
            {"type": "chat", "op": "x", "text": "全庁"}, [alice.pk, bob.pk]
        )
    finally:
        for sock in sockets:
            bus.local_sockets.remove(sock)
    first, second, third, fourth = (sock.frames for sock in sockets)
    assert (
        first
        == second
        == third
        == ['{"op": "live", "event": {"type": "chat", "op": "x", "text": "全庁"}}']
    )
    assert first[0] is second[0] is third[0]  # one string for all of them
    assert fourth == []


def test_it_hands_a_process_message_to_its_handler(
    memory_bus: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bus, "_process_handlers", {})
    received: list[dict[str, Any]] = []
    bus.on_process_message("test.kind", received.append)
    bus.publish_to_processes("test.kind", {"n": 1})
    bus.publish_to_processes("test.unknown", {"n": 2})  # logged, not raised

    def failing(data: dict[str, Any]) -> None:
        raise RuntimeError("a broken handler")

    bus.on_process_message("test.failing", failing)
    bus.publish_to_processes("test.failing", {"n": 3})  # logged, not raised
    assert received == [{"n": 1}]
