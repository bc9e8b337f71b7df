"""The ward tier: worker processes sharing Redis, restarts, and the bus's health."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import redis
from django.db import transaction
from pytest_django.fixtures import Settings as SettingsWrapper

from tests.realtime.conftest import (
    ServerProcess,
    open_socket,
    process_env,
    send_from_another_process,
    server_processes,
    session_cookie,
)
from yakuba.directory.models import User
from yakuba.realtime import bus, metrics
from yakuba.realtime.send import send_event_on_commit


def note(n: int) -> dict[str, Any]:
    return {"type": "test", "op": "note", "n": n}


def send(event: dict[str, Any], *users: User) -> None:
    with transaction.atomic():
        send_event_on_commit(event, [u.pk for u in users])


class ChannelSpy:
    """Counts the messages published on the bus channel."""

    def __init__(self, url: str, prefix: str) -> None:
        self.pubsub = redis.Redis.from_url(url).pubsub(ignore_subscribe_messages=True)
        self.pubsub.subscribe(f"{prefix}:realtime:events")
        self.pubsub.get_message(timeout=2)  # the subscribe confirmation

    def messages(self, wait: float = 1.0) -> list[dict[str, Any]]:
        found = []
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            message = self.pubsub.get_message(timeout=0.1)
            if message is not None:
                found.append(json.loads(message["data"]))
        self.pubsub.close()
        return found


def test_it_delivers_between_two_worker_processes_sharing_redis(
    transactional_db: None, alice: User, bob: User, redis_url: str, redis_prefix: str
) -> None:
    env = process_env(redis_url, redis_prefix)
    with server_processes(2, env) as (first, second):
        alice_ws = open_socket(first.url, cookie=session_cookie(alice))
        alice_ws.hello()
        bob_ws = open_socket(second.url, cookie=session_cookie(bob))
        bob_ws.hello()
        alice_too = open_socket(second.url, cookie=session_cookie(alice))
        alice_too.hello()
        # One subscription per worker process, however many sockets it holds.
        channel = f"{redis_prefix}:realtime:events"
        counter = redis.Redis.from_url(redis_url, decode_responses=True)
        assert counter.pubsub_numsub(channel) == [(channel, 2)]
        spy = ChannelSpy(redis_url, redis_prefix)
        # From a third process, as a task worker or another web worker would send.
        send_from_another_process(env, note(1), alice, bob)
        assert alice_ws.next() == {"id": 1, "event": note(1)}
        assert alice_too.next() == {"id": 1, "event": note(1)}
        assert bob_ws.next() == {"id": 1, "event": note(1)}
        # One message for the event, naming both deliveries: not one per recipient.
        # (Messages for every process, such as chat's presence batches, ride along.)
        stream_messages = [m for m in spy.messages() if "kind" not in m]
        assert stream_messages == [{"event": note(1), "deliveries": [[alice.pk, 1], [bob.pk, 1]]}]
        send_from_another_process(env, note(2), bob)
        assert bob_ws.next() == {"id": 2, "event": note(2)}
        alice_ws.assert_nothing_pending()
        alice_too.assert_nothing_pending()


def test_it_closes_a_socket_on_one_worker_when_the_session_ends_on_another(
    transactional_db: None, alice: User, redis_url: str, redis_prefix: str
) -> None:
    """Sign-out is an action run by worker 2; the socket of that session is on worker 1."""
    cookie = session_cookie(alice)
    with server_processes(2, process_env(redis_url, redis_prefix)) as (first, second):
        ws = open_socket(first.url, cookie=cookie)
        ws.hello()
        other_session = open_socket(first.url, cookie=session_cookie(alice))
        other_session.hello()
        site = f"http://127.0.0.1:{second.port}"
        with httpx.Client(base_url=site) as browser:
            csrf = browser.get("/login/").cookies["csrftoken"]
            signed_out = browser.post(
                "/logout/",
                data={"csrfmiddlewaretoken": csrf},
                headers={"Cookie": f"{cookie}; csrftoken={csrf}", "Origin": site},
            )
        assert signed_out.status_code == 302
        assert ws.next()["event"]["op"] == "ended"
        assert ws.close_code() == 4401
        assert other_session.next()["event"]["op"] == "ended"
        other_session.assert_nothing_pending()


def test_it_replays_every_event_missed_while_the_server_was_down_once(
    transactional_db: None,
    alice: User,
    redis_url: str,
    redis_prefix: str,
    redis_bus: None,
) -> None:
    server = ServerProcess(process_env(redis_url, redis_prefix))
    try:
        server.start()
        server.wait_ready()
        ws = open_socket(server.url, cookie=session_cookie(alice))
        ws.hello()
        send(note(1), alice)
        assert ws.next() == {"id": 1, "event": note(1)}
        server.kill()
        ws.close_code()  # the connection drops
        for n in (2, 3, 4):
            send(note(n), alice)
        server.start()
        server.wait_ready()
        again = open_socket(server.url, cookie=session_cookie(alice))
        assert again.hello(last_event_id=1) == {"op": "ready", "last_event_id": 4}
        assert again.replayed == [{"id": n, "event": note(n)} for n in (2, 3, 4)]
        send(note(5), alice)
        assert again.next() == {"id": 5, "event": note(5)}
        again.assert_nothing_pending()
    finally:
        server.kill()


def test_it_replays_after_a_restart_in_the_embedded_tier(
    transactional_db: None, alice: User, settings: SettingsWrapper
) -> None:
    settings.REDIS_URL = ""
    server = ServerProcess(process_env())
    try:
        server.start()
        server.wait_ready()
        open_socket(server.url, cookie=session_cookie(alice)).hello()
        server.kill()
        for n in (1, 2):
            send(note(n), alice)
        server.start()
        server.wait_ready()
        again = open_socket(server.url, cookie=session_cookie(alice))
        assert again.hello(last_event_id=0) == {"op": "ready", "last_event_id": 2}
        assert again.replayed == [{"id": 1, "event": note(1)}, {"id": 2, "event": note(2)}]
        # Sent by this (other) process: the server's poller finds it in the stream.
        send(note(3), alice)
        assert again.next() == {"id": 3, "event": note(3)}
        again.assert_nothing_pending()
    finally:
        server.kill()


def test_it_reports_the_health_of_the_bus(
    settings: SettingsWrapper, redis_url: str, redis_prefix: str
) -> None:
    settings.REDIS_URL = ""
    assert bus.healthy()
    settings.REDIS_URL = redis_url
    settings.REDIS_PREFIX = redis_prefix
    assert bus.healthy()
    assert metrics.snapshot()["yakuba_realtime_bus_connected"] == 1
    with socket_nobody_listens_on() as port:
        settings.REDIS_URL = f"redis://127.0.0.1:{port}/0"
        assert not bus.healthy(timeout=0.5)
    settings.REDIS_URL = ""
    assert bus.healthy()


class socket_nobody_listens_on:  # lower case: read as a context manager
    """A local port with no server behind it."""

    def __enter__(self) -> int:
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        return int(self.sock.getsockname()[1])

    def __exit__(self, *exc: object) -> None:
        self.sock.close()


def test_it_publishes_without_blocking_while_redis_is_down(
    transactional_db: None, alice: User, settings: SettingsWrapper
) -> None:
    with socket_nobody_listens_on() as port:
        settings.REDIS_URL = f"redis://127.0.0.1:{port}/0"
        started = time.monotonic()
        for n in range(20):
            send(note(n), alice)
        assert time.monotonic() - started < 5
        assert metrics.snapshot()["yakuba_realtime_publish_queue"] >= 1
        time.sleep(0.3)
        assert metrics.snapshot()["yakuba_realtime_publish_errors_total"] >= 1
        assert not bus.get_bus().flush(0.1)
    settings.REDIS_URL = ""
    bus.get_bus()  # closes the Redis bus with what it still holds
    # Nothing is lost for good: the events are in the stream for the next resume.
    assert alice_events(alice) == list(range(1, 21))


def alice_events(user: User) -> list[int]:
    from yakuba.realtime.models import UserEvent

    return list(
        UserEvent.objects.filter(user=user).order_by("event_id").values_list("event_id", flat=True)
    )


def test_it_catches_up_a_socket_when_a_publish_overtakes_an_earlier_one(
    transactional_db: None, alice: User, redis_url: str, redis_prefix: str, memory_bus: None
) -> None:
    """Events 1 and 2 commit in order, but only 2's message reaches the worker: it
    reads 1 from the database first."""
    env = process_env(redis_url, redis_prefix)
    with server_processes(1, env) as (server,):
        ws = open_socket(server.url, cookie=session_cookie(alice))
        ws.hello()
        send(note(1), alice)  # the test process's in-process bus: reaches no worker
        send(note(2), alice)
        publisher = redis.Redis.from_url(redis_url)
        channel = f"{redis_prefix}:realtime:events"
        publisher.publish(channel, json.dumps({"event": note(2), "deliveries": [[alice.pk, 2]]}))
        assert [ws.next(), ws.next()] == [
            {"id": 1, "event": note(1)},
            {"id": 2, "event": note(2)},
        ]
        # The same message again (a retried publish) is not delivered twice.
        publisher.publish(channel, json.dumps({"event": note(2), "deliveries": [[alice.pk, 2]]}))
        ws.assert_nothing_pending()
