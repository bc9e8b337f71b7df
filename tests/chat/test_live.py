"""Chat in real time over real WebSockets: messages reach the members' sockets and no
one else's, a reconnect or a server restart resyncs through ``changes`` with nothing
lost and nothing twice, a socket that fell behind is told ``live_gap``, and typing
indicators are throttled and reach members only."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from django.db import transaction
from django.test import Client

from tests.realtime import conftest as realtime_fixtures
from tests.realtime.conftest import (
    ServerProcess,
    Socket,
    ThreadServer,
    open_socket,
    process_env,
    session_cookie,
)
from yakuba.chat import live, presence
from yakuba.chat.access import access_conversation_for_post
from yakuba.chat.actions.messages import check_send_message
from yakuba.chat.models import Conversation, Message
from yakuba.directory.models import User
from yakuba.realtime import gateway

# The real-time tests' servers and sockets (fixtures).
_close_sockets = realtime_fixtures._close_sockets
memory_bus = realtime_fixtures.memory_bus
server = realtime_fixtures.server


@pytest.fixture(autouse=True)
def _fresh_caches() -> Iterator[None]:
    live.clear_caches()
    presence.reset_state()
    yield
    presence.reset_state()


def connect(url: str, user: User) -> Socket:
    ws = open_socket(url, cookie=session_cookie(user))
    ws.hello()
    return ws


def drain(ws: Socket) -> list[dict[str, Any]]:
    """Every frame queued for ``ws`` now, pings answered, up to our ping's pong."""
    ws.send({"op": "ping"})
    found = []
    while (frame := ws.next()) != {"op": "pong"}:
        found.append(frame)
    return found


def chat_events(frames: list[dict[str, Any]], op: str = "message") -> list[dict[str, Any]]:
    return [
        f["event"]
        for f in frames
        if f.get("op") == "live" and f["event"]["type"] == "chat" and f["event"]["op"] == op
    ]


def api_client(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def post_message(client: Client, conversation: Conversation, text: str, key: str) -> Any:
    return client.post(
        f"/api/chat/conversations/{conversation.pk}/messages",
        data={"text": text, "client_key": key},
        content_type="application/json",
    )


def send_directly(user: User, conversation: Conversation, text: str, key: str) -> Message:
    membership = access_conversation_for_post(user, conversation.pk)
    message, _created = check_send_message(membership, text=text, client_key=key, acting_user=user)
    return message


# --- messages ----------------------------------------------------------------------------


def test_it_delivers_a_message_sent_over_the_api_to_members_only(
    server: ThreadServer, alice: User, bob: User, charlie: User, project: Conversation
) -> None:
    alice_ws, bob_ws, charlie_ws = (connect(server.url, u) for u in (alice, bob, charlie))
    sent = post_message(api_client(alice), project, "移転日程の案を共有します", "k-1")
    assert sent.status_code == 201, sent.content
    for ws in (alice_ws, bob_ws):
        [event] = chat_events(drain(ws))
        assert event["conversation"] == project.pk
        assert event["seq"] == 1
        assert event["message"]["text"] == "移転日程の案を共有します"
        assert event["message"]["id"] == sent.json()["id"]
    assert drain(charlie_ws) == []


def test_it_resyncs_a_reconnected_socket_with_each_message_once(
    server: ThreadServer, alice: User, bob: User, project: Conversation
) -> None:
    bob_ws = connect(server.url, bob)
    alice_api, bob_api = api_client(alice), api_client(bob)
    first = post_message(alice_api, project, "第1報", "k-1").json()
    [event] = chat_events(drain(bob_ws))
    known = event["seq"]
    bob_ws.close()
    second = post_message(alice_api, project, "第2報", "k-2").json()
    third = post_message(alice_api, project, "第3報", "k-3").json()
    edited = alice_api.patch(
        f"/api/chat/messages/{first['id']}",
        data={"text": "第1報（訂正）"},
        content_type="application/json",
    )
    assert edited.status_code == 200, edited.content
    again = connect(server.url, bob)
    changes = bob_api.get(f"/api/chat/conversations/{project.pk}/changes?after={known}").json()
    items = changes["items"]
    assert [m["id"] for m in items] == [second["id"], third["id"], first["id"]]
    assert [m["text"] for m in items] == ["第2報", "第3報", "第1報（訂正）"]
    assert changes["head"] == max(m["changed_seq"] for m in items)
    assert not changes["more"]
    fourth = post_message(alice_api, project, "第4報", "k-4").json()
    [live_event] = chat_events(drain(again))
    assert live_event["seq"] == changes["head"] + 1
    assert live_event["message"]["id"] == fourth["id"]


def test_it_tells_a_socket_that_fell_behind_to_resync(
    server: ThreadServer,
    alice: User,
    bob: User,
    project: Conversation,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(gateway, "QUEUE_LIMIT", 3)
    bob_ws = connect(server.url, bob)
    count = 40
    # One transaction: the 40 live events are published together at commit, faster
    # than the socket's writer takes them.
    with transaction.atomic():
        for n in range(count):
            send_directly(alice, project, f"一斉連絡{n}", f"k-{n}")
    # Read until the gap is told (it may come after a pong: it follows a re-read of the
    # stream); a timeout fails the test.
    frames = []
    while (frame := bob_ws.next()) != {"op": "live_gap"}:
        frames.append(frame)
    seen = [e["seq"] for e in chat_events(frames)]
    assert len(seen) < count
    # The client knows up to the last contiguous seq and asks for the rest.
    known = 0
    while known + 1 in seen:
        known += 1
    changes = api_client(bob).get(f"/api/chat/conversations/{project.pk}/changes?after={known}")
    rest = [m["seq"] for m in changes.json()["items"]]
    assert sorted({*range(1, known + 1), *rest}) == list(range(1, count + 1))
    assert len(rest) == len(set(rest)) == count - known


# --- typing ------------------------------------------------------------------------------


def test_it_sends_typing_to_the_other_members_once_per_throttle(
    server: ThreadServer,
    alice: User,
    bob: User,
    charlie: User,
    project: Conversation,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    alice_ws, bob_ws, charlie_ws = (connect(server.url, u) for u in (alice, bob, charlie))
    for _ in range(3):
        alice_ws.send({"op": "chat.typing", "conversation": project.pk, "thread": None})
    drain(alice_ws)  # the three ops were handled
    assert chat_events(drain(bob_ws), "typing") == [
        {
            "type": "chat",
            "op": "typing",
            "conversation": project.pk,
            "user": alice.pk,
            "name": str(alice),
            "thread": None,
        }
    ]
    assert drain(charlie_ws) == []
    assert chat_events(drain(alice_ws), "typing") == []  # not to oneself
    # Bob's throttle is his own; typing in a thread names its root.
    root = send_directly(bob, project, "議題はこちら", "root")
    drain(alice_ws), drain(bob_ws)
    bob_ws.send({"op": "chat.typing", "conversation": project.pk, "thread": root.pk})
    drain(bob_ws)  # his op was handled (ops and pings of one socket are taken in order)
    [typing] = chat_events(drain(alice_ws), "typing")
    assert (typing["user"], typing["thread"]) == (bob.pk, root.pk)
    # After the throttle window (made zero here), Alice's next one goes out again.
    monkeypatch.setattr(live, "TYPING_THROTTLE", 0.0)
    alice_ws.send({"op": "chat.typing", "conversation": project.pk, "thread": None})
    drain(alice_ws)
    assert len(chat_events(drain(bob_ws), "typing")) == 1


def test_it_refuses_typing_from_a_non_member_and_a_malformed_frame(
    server: ThreadServer, alice: User, bob: User, charlie: User, project: Conversation
) -> None:
    bob_ws, charlie_ws = connect(server.url, bob), connect(server.url, charlie)
    charlie_ws.send({"op": "chat.typing", "conversation": project.pk, "thread": None})
    assert charlie_ws.next() == {"op": "error", "code": "forbidden", "got": "chat.typing"}
    for frame in (
        {"conversation": "1"},
        {"conversation": project.pk, "thread": "x"},
        {"conversation": True},
        {},
    ):
        charlie_ws.send({"op": "chat.typing", **frame})
        assert charlie_ws.next() == {"op": "error", "code": "invalid", "got": "chat.typing"}
    charlie_ws.send({"op": "chat.typing", "conversation": 999_999, "thread": None})
    assert charlie_ws.next()["code"] == "forbidden"
    assert drain(bob_ws) == []


# --- a server restart --------------------------------------------------------------------


class Browser:
    """A signed-in person talking HTTP to a server process (session cookie, CSRF)."""

    def __init__(self, port: int, user: User) -> None:
        self.site = f"http://127.0.0.1:{port}"
        self.cookie = session_cookie(user)

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        with httpx.Client(base_url=self.site, timeout=30) as client:
            csrf = client.get("/login/").cookies["csrftoken"]
            return client.request(
                method,
                path,
                json=body,
                headers={
                    "Cookie": f"{self.cookie}; csrftoken={csrf}",
                    "X-CSRFToken": csrf,
                    "Origin": self.site,
                },
            )


def test_it_loses_nothing_and_duplicates_nothing_across_a_server_restart(
    transactional_db: None,
    memory_bus: None,
    alice: User,
    bob: User,
    project: Conversation,
) -> None:
    worker = ServerProcess(process_env())
    try:
        worker.start()
        worker.wait_ready()
        alice_http, bob_http = Browser(worker.port, alice), Browser(worker.port, bob)
        messages = f"/api/chat/conversations/{project.pk}/messages"
        bob_ws = connect(worker.url, bob)
        first = alice_http.request(
            "POST", messages, {"text": "避難所の開設状況", "client_key": "a"}
        )
        assert first.status_code == 201, first.text
        [event] = chat_events(drain(bob_ws))
        known = event["seq"]
        worker.kill()
        bob_ws.close_code()  # the connection drops with the server
        # While it is down, another worker takes a message.
        while_down = send_directly(alice, project, "第2避難所も開設", "b")
        worker.start()
        worker.wait_ready()
        # Alice's client retries the first send it never saw answered: the same message.
        retried = alice_http.request(
            "POST", messages, {"text": "避難所の開設状況", "client_key": "a"}
        )
        assert retried.status_code == 200
        assert retried.json()["id"] == first.json()["id"]
        again = connect(worker.url, bob)
        changes = bob_http.request(
            "GET", f"/api/chat/conversations/{project.pk}/changes?after={known}"
        ).json()
        assert [m["id"] for m in changes["items"]] == [while_down.pk]
        third = alice_http.request("POST", messages, {"text": "物資の配送予定", "client_key": "c"})
        assert third.status_code == 201
        [live_event] = chat_events(drain(again))
        assert live_event["seq"] == changes["head"] + 1
        assert live_event["message"]["id"] == third.json()["id"]
        texts = list(Message.objects.filter(conversation=project).values_list("text", flat=True))
        assert sorted(texts) == sorted(["避難所の開設状況", "第2避難所も開設", "物資の配送予定"])
    finally:
        worker.kill()
