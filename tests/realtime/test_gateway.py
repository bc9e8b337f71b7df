"""The WebSocket gateway in the embedded tier: uvicorn in a thread, the in-process bus."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pytest
from django.db import connection, transaction
from pytest_django.fixtures import Settings as SettingsWrapper
from websockets.exceptions import InvalidStatus

from tests.conftest import PASSWORD
from tests.realtime.conftest import Socket, ThreadServer, open_socket, session_cookie
from yakuba.directory.actions import auth as auth_actions
from yakuba.directory.actions.staff import do_invite_guest
from yakuba.directory.models import User
from yakuba.lib import clock
from yakuba.realtime import bus, metrics
from yakuba.realtime.gateway import ConnectionState, InvalidTransition, State
from yakuba.realtime.models import EventStream, UserEvent
from yakuba.realtime.send import send_event_on_commit
from yakuba.tasks.registry import PERIODIC


def send(event: dict[str, Any], *users: User) -> None:
    with transaction.atomic():
        send_event_on_commit(event, [u.pk for u in users])


def note(n: int) -> dict[str, Any]:
    return {"type": "test", "op": "note", "n": n}


def signed_in(server: ThreadServer, user: User, last_event_id: int | None = None) -> Socket:
    sock = open_socket(server.url, cookie=session_cookie(user))
    sock.hello(last_event_id)
    return sock


def test_it_delivers_an_event_to_its_recipient_only(
    server: ThreadServer, alice: User, bob: User
) -> None:
    before = metrics.snapshot()
    alice_ws, bob_ws = signed_in(server, alice), signed_in(server, bob)
    send({"type": "test", "op": "hello", "text": "こんにちは"}, alice)
    assert alice_ws.next() == {
        "id": 1,
        "event": {"type": "test", "op": "hello", "text": "こんにちは"},
    }
    bob_ws.assert_nothing_pending()
    alice_ws.assert_nothing_pending()
    assert list(UserEvent.objects.values_list("user_id", "event_id")) == [(alice.pk, 1)]
    after = metrics.snapshot()
    assert after["yakuba_realtime_events_published_total"] == (
        before["yakuba_realtime_events_published_total"] + 1
    )
    assert after["yakuba_realtime_events_delivered_total"] == (
        before["yakuba_realtime_events_delivered_total"] + 1
    )
    assert after["yakuba_realtime_connections"] == before["yakuba_realtime_connections"] + 2


def failing_action(user: User) -> None:
    with transaction.atomic():
        send_event_on_commit(note(1), [user.pk])
        raise RuntimeError("the action failed")


def test_it_sends_nothing_when_the_transaction_rolls_back(
    server: ThreadServer, alice: User
) -> None:
    ws = signed_in(server, alice)
    with pytest.raises(RuntimeError):
        failing_action(alice)
    ws.assert_nothing_pending()
    assert not UserEvent.objects.exists()
    send(note(2), alice)
    assert ws.next() == {"id": 1, "event": note(2)}  # the rolled-back id is reused


def test_it_replays_exactly_the_missed_events_after_a_reconnect(
    server: ThreadServer, alice: User
) -> None:
    ws = signed_in(server, alice)
    send(note(1), alice)
    assert ws.next()["id"] == 1
    ws.close()
    for n in (2, 3, 4):
        send(note(n), alice)
    again = open_socket(server.url, cookie=session_cookie(alice))
    ready = again.hello(last_event_id=1)
    assert again.replayed == [{"id": n, "event": note(n)} for n in (2, 3, 4)]
    assert ready == {"op": "ready", "last_event_id": 4}
    send(note(5), alice)
    assert again.next() == {"id": 5, "event": note(5)}
    again.assert_nothing_pending()


def test_it_resumes_from_the_query_parameter(server: ThreadServer, alice: User) -> None:
    for n in (1, 2):
        send(note(n), alice)
    ws = open_socket(server.url, cookie=session_cookie(alice), query="?last_event_id=1")
    assert ws.until_ready() == {"op": "ready", "last_event_id": 2}
    assert ws.replayed == [{"id": 2, "event": note(2)}]


def test_it_starts_at_the_head_without_a_last_event_id(server: ThreadServer, alice: User) -> None:
    send(note(1), alice)
    ws = open_socket(server.url, cookie=session_cookie(alice))
    assert ws.hello() == {"op": "ready", "last_event_id": 1}
    assert ws.replayed == []


def test_it_tells_a_client_too_far_behind_to_refetch(
    server: ThreadServer, alice: User, settings: SettingsWrapper
) -> None:
    settings.REALTIME_MAX_REPLAY = 3
    for n in range(1, 6):
        send(note(n), alice)
    ws = open_socket(server.url, cookie=session_cookie(alice))
    assert ws.hello(last_event_id=1) == {"op": "ready", "last_event_id": 5}
    assert ws.replayed == [{"op": "refetch", "last_event_id": 5}]
    send(note(6), alice)
    assert ws.next() == {"id": 6, "event": note(6)}
    # Three behind is still a replay.
    near = open_socket(server.url, cookie=session_cookie(alice))
    near.hello(last_event_id=3)
    assert [frame["id"] for frame in near.replayed] == [4, 5, 6]


def test_it_refetches_a_client_from_before_the_retention_period(
    server: ThreadServer, alice: User, bob: User, settings: SettingsWrapper
) -> None:
    settings.REALTIME_EVENT_RETENTION_DAYS = 7
    send(note(1), alice, bob)
    send(note(2), alice)
    clock.advance(dt.timedelta(days=8))
    send(note(3), alice)
    # The registered job, as ``yakuba worker`` runs it.
    PERIODIC["realtime.prune_events"].function()
    stream = EventStream.objects.get(user=alice)
    assert stream.pruned_through == 2
    assert list(UserEvent.objects.filter(user=alice).values_list("event_id", flat=True)) == [3]
    assert EventStream.objects.get(user=bob).pruned_through == 1
    ws = open_socket(server.url, cookie=session_cookie(alice))
    assert ws.hello(last_event_id=1) == {"op": "ready", "last_event_id": 3}
    assert ws.replayed == [{"op": "refetch", "last_event_id": 3}]
    current = open_socket(server.url, cookie=session_cookie(alice))
    current.hello(last_event_id=2)
    assert current.replayed == [{"id": 3, "event": note(3)}]


def test_it_closes_a_connection_that_misses_two_heartbeats(
    server: ThreadServer, alice: User, settings: SettingsWrapper
) -> None:
    settings.REALTIME_HEARTBEAT_SECONDS = 0.2
    dead = signed_in(server, alice)
    assert dead.next(answer_pings=False) == {"op": "ping"}
    assert dead.next(answer_pings=False) == {"op": "ping"}
    assert dead.close_code(5) == 4408
    assert metrics.snapshot()["yakuba_realtime_heartbeat_timeouts_total"] >= 1
    # A client that answers stays, for longer than that.
    alive = signed_in(server, alice)
    for _ in range(5):
        assert alive.next(2, answer_pings=False) == {"op": "ping"}
        alive.send({"op": "pong"})
    alive.assert_nothing_pending()


def test_it_closes_a_socket_that_never_says_hello(
    server: ThreadServer, alice: User, settings: SettingsWrapper
) -> None:
    settings.REALTIME_HEARTBEAT_SECONDS = 0.2
    ws = open_socket(server.url, cookie=session_cookie(alice))
    assert ws.next(answer_pings=False) == {"op": "ping"}
    ws.send({"op": "pong"})
    assert ws.close_code(5) == 4400


def test_it_answers_a_client_ping(server: ThreadServer, alice: User) -> None:
    ws = signed_in(server, alice)
    ws.send({"op": "ping"})
    assert ws.next() == {"op": "pong"}


def test_it_refuses_an_unauthenticated_socket(server: ThreadServer, alice: User) -> None:
    before = metrics.snapshot()["yakuba_realtime_connections_refused_total"]
    assert open_socket(server.url).close_code() == 4401
    assert open_socket(server.url, cookie="yakuba_session=forged").close_code() == 4401
    bad_token = {"Authorization": "Bearer ykb_00000000_nottherealsecret"}
    assert open_socket(server.url, headers=bad_token).close_code() == 4401
    assert open_socket(server.url, query="?token=ykb_00000000_x").close_code() == 4401
    assert metrics.snapshot()["yakuba_realtime_connections_refused_total"] == before + 4


def test_it_refuses_a_handshake_from_another_site(server: ThreadServer, alice: User) -> None:
    with pytest.raises(InvalidStatus) as refused:
        open_socket(server.url, cookie=session_cookie(alice), origin="http://evil.example")
    assert refused.value.response.status_code == 403
    same_site = open_socket(
        server.url, cookie=session_cookie(alice), origin=f"http://127.0.0.1:{server.port}"
    )
    assert same_site.hello()["op"] == "ready"


def test_it_refuses_a_deactivated_user(server: ThreadServer, alice: User, bob: User) -> None:
    cookie = session_cookie(alice)
    User.objects.filter(pk=alice.pk).update(is_active=False)
    assert open_socket(server.url, cookie=cookie).close_code() == 4401


def test_it_closes_the_socket_when_the_user_signs_out_everywhere(
    server: ThreadServer, alice: User, bob: User
) -> None:
    first, second = signed_in(server, alice), signed_in(server, alice)
    bob_ws = signed_in(server, bob)
    auth_actions.do_logout_everywhere(alice, acting_user=alice)
    assert first.next()["event"]["op"] == "ended"
    assert first.close_code() == 4401
    assert second.close_code() == 4401
    bob_ws.assert_nothing_pending()
    assert metrics.snapshot()["yakuba_realtime_session_closes_total"] >= 2


def test_it_closes_only_the_ended_session(server: ThreadServer, alice: User) -> None:
    kept_cookie, ended_cookie = session_cookie(alice), session_cookie(alice)
    kept = open_socket(server.url, cookie=kept_cookie)
    kept.hello()
    ended = open_socket(server.url, cookie=ended_cookie)
    ended.hello()
    ended_key = ended_cookie.partition("=")[2]
    send({"type": "session", "op": "ended", "session_keys": [ended_key]}, alice)
    assert ended.next()["event"]["session_keys"] == [ended_key]
    assert ended.close_code() == 4401
    assert kept.next()["event"]["session_keys"] == [ended_key]
    kept.assert_nothing_pending()


def test_it_closes_the_socket_when_the_user_is_deactivated(
    server: ThreadServer, alice: User, bob: User
) -> None:
    ws = signed_in(server, alice)
    auth_actions.do_deactivate_user(alice, acting_user=bob)
    frame = ws.next()
    assert frame["event"] == {
        "type": "session",
        "op": "ended",
        "session_keys": frame["event"]["session_keys"],
        "all": True,
    }
    assert ws.close_code() == 4401


def test_it_keeps_a_new_session_open_when_an_old_end_is_replayed(
    server: ThreadServer, alice: User
) -> None:
    auth_actions.do_logout_everywhere(alice, acting_user=alice)  # event 1
    ws = open_socket(server.url, cookie=session_cookie(alice))
    ws.hello(last_event_id=0)
    assert ws.replayed[0]["event"]["op"] == "ended"
    ws.assert_nothing_pending()


def test_it_accepts_a_token_with_the_realtime_scope(
    server: ThreadServer, alice: User, bob: User
) -> None:
    _, raw = auth_actions.do_create_token(
        alice, name="掲示板端末", scopes=["realtime"], expires_at=None, acting_user=alice
    )
    _, other_raw = auth_actions.do_create_token(
        alice, name="API", scopes=["api:read"], expires_at=None, acting_user=alice
    )
    by_header = open_socket(server.url, headers={"Authorization": f"Bearer {raw}"})
    by_header.hello()
    by_query = open_socket(server.url, query=f"?token={raw}&last_event_id=0")
    by_query.until_ready()
    send(note(1), alice)
    assert by_header.next() == {"id": 1, "event": note(1)}
    assert by_query.next() == {"id": 1, "event": note(1)}
    wrong_scope = {"Authorization": f"Bearer {other_raw}"}
    assert open_socket(server.url, headers=wrong_scope).close_code() == 4401
    # Revoking the token closes the sockets opened with it.
    realtime_token = alice.api_tokens.get(scopes=["realtime"])
    auth_actions.do_revoke_token(realtime_token, acting_user=alice)
    assert by_header.next()["event"]["op"] == "revoked"
    assert by_header.close_code() == 4401


def test_it_rejects_a_second_hello_and_malformed_frames(server: ThreadServer, alice: User) -> None:
    ws = signed_in(server, alice)
    ws.send({"op": "hello", "last_event_id": 0})
    assert ws.next() == {"op": "error", "code": "unexpected", "got": "hello"}
    ws.ws.send("not json")
    assert ws.close_code() == 4400


def test_it_allows_only_forward_state_transitions() -> None:
    state = ConnectionState()
    state.advance(State.READY)
    with pytest.raises(InvalidTransition):
        state.advance(State.CONNECTING)
    state.advance(State.CLOSED)
    with pytest.raises(InvalidTransition):
        state.advance(State.READY)


def test_it_closes_a_token_socket_when_the_token_expires(
    server: ThreadServer, alice: User, settings: SettingsWrapper
) -> None:
    """No event says a token ran out: the heartbeat notices its expiry."""
    settings.REALTIME_HEARTBEAT_SECONDS = 0.2
    with clock.frozen_at(clock.now()):
        _, raw = auth_actions.do_create_token(
            alice,
            name="掲示板端末",
            scopes=["realtime"],
            expires_at=clock.now() + dt.timedelta(hours=1),
            acting_user=alice,
        )
        ws = open_socket(server.url, headers={"Authorization": f"Bearer {raw}"})
        ws.hello()
        for _ in range(3):
            assert ws.next(2, answer_pings=False) == {"op": "ping"}
            ws.send({"op": "pong"})
        clock.advance(dt.timedelta(hours=1, seconds=1))
        assert ws.close_code(5) == 4401


def test_it_closes_a_session_socket_at_the_sessions_absolute_limit(
    server: ThreadServer, alice: User, settings: SettingsWrapper
) -> None:
    settings.REALTIME_HEARTBEAT_SECONDS = 0.2
    settings.SESSION_ABSOLUTE_TIMEOUT_HOURS = 10
    settings.SESSION_IDLE_TIMEOUT_MINUTES = 24 * 60
    with clock.frozen_at(clock.now()):
        ws = signed_in(server, alice)
        clock.advance(dt.timedelta(hours=9))
        for _ in range(3):
            assert ws.next(2, answer_pings=False) == {"op": "ping"}
            ws.send({"op": "pong"})
        clock.advance(dt.timedelta(hours=1, seconds=1))
        assert ws.close_code(5) == 4401


def test_it_closes_a_guests_socket_when_the_invitation_runs_out(
    server: ThreadServer, alice: User, settings: SettingsWrapper
) -> None:
    """The job that deactivates expired guests runs every few minutes; the socket does
    not wait for it."""
    settings.REALTIME_HEARTBEAT_SECONDS = 0.2
    with clock.frozen_at(clock.now()):
        guest = do_invite_guest(
            name="山田 花子",
            organisation="○○交通株式会社",
            email="hanako@example.jp",
            expires_at=clock.now() + dt.timedelta(hours=2),
            username="hanako",
            password=PASSWORD,
            acting_user=alice,
        )
        ws = signed_in(server, guest)
        for _ in range(3):
            assert ws.next(2, answer_pings=False) == {"op": "ping"}
            ws.send({"op": "pong"})
        cookie = session_cookie(guest)
        clock.advance(dt.timedelta(hours=2))
        assert ws.close_code(5) == 4401
        # Nor can the same, still stored, session open a new one.
        assert open_socket(server.url, cookie=cookie).close_code() == 4401


def test_it_finds_events_another_process_sent_by_polling(
    server: ThreadServer, alice: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A CLI command or a separate worker writes events without reaching this process's
    sockets: the poller finds them, and only reads the heads when something was sent."""
    ws = signed_in(server, alice)
    # As if sent by another process: persisted, never published here.
    monkeypatch.setattr("yakuba.realtime.send._publish", lambda event, deliveries: None)
    heads_read: list[list[int]] = []
    real_read_heads = bus.read_heads

    def counting_read_heads(user_ids: list[int]) -> dict[int, int]:
        heads_read.append(user_ids)
        return real_read_heads(user_ids)

    monkeypatch.setattr(bus, "read_heads", counting_read_heads)

    send(note(1), alice)
    assert ws.next(5) == {"id": 1, "event": note(1)}
    send(note(2), alice)
    assert ws.next(5) == {"id": 2, "event": note(2)}
    reads_while_busy = len(heads_read)
    time.sleep(3 * bus.POLL_SECONDS)

    if connection.vendor == "sqlite":
        assert len(heads_read) == reads_while_busy  # nothing new: the heads were not read
    ws.assert_nothing_pending()
