"""Real servers for the real-time tests: uvicorn in a thread (embedded tier) or as
subprocesses sharing the test database and Redis (ward tier), and a WebSocket client.

Servers read the test database, so tests that use them take ``transactional_db``
(data committed, visible to other threads and processes).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import uvicorn
from django.conf import settings
from django.db import connection
from django.test import Client
from pytest_django.fixtures import Settings as SettingsWrapper
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tests.conftest import PASSWORD
from yakuba.directory.models import User
from yakuba.realtime import bus

ROOT = Path(__file__).resolve().parents[2]
# Sends one event from a process of its own, the way a task worker or another web
# worker would; the process exits right after commit, so this also proves that the
# outbox is flushed at exit.
SENDER = """
import json, sys
import django
django.setup()
from django.db import transaction
from yakuba.realtime.send import send_event_on_commit
with transaction.atomic():
    send_event_on_commit(json.loads(sys.argv[1]), [int(u) for u in sys.argv[2:]])
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ThreadServer:
    """uvicorn serving ``yakuba.asgi:application`` in a thread of the test process."""

    def __init__(self) -> None:
        from yakuba.asgi import application

        self.port = free_port()
        config = uvicorn.Config(
            application,
            host="127.0.0.1",
            port=self.port,
            lifespan="off",
            ws="websockets-sansio",
            ws_ping_interval=None,
            log_level="warning",
            timeout_graceful_shutdown=2,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def database_url() -> str:
    """The URL of the test database, for servers in other processes."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    user = quote(db["USER"] or "")
    password = f":{quote(db['PASSWORD'])}" if db.get("PASSWORD") else ""
    host = f"{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}"
    return f"postgresql://{user}{password}@{host}/{db['NAME']}"


def process_env(redis_url: str = "", prefix: str = "yakuba") -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="yakuba.settings",
        DATABASE_URL=database_url(),
        REDIS_URL=redis_url,
        YAKUBA_REDIS_PREFIX=prefix,
        PYTHONPATH=str(ROOT),
    )
    return env


class ServerProcess:
    """uvicorn as a worker process of its own; ``kill`` and ``start`` again to restart
    it on the same port."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "yakuba.asgi:application",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--lifespan",
                "off",
                "--ws",
                "websockets-sansio",
                "--log-level",
                "warning",
            ],
            env=self.env,
            cwd=ROOT,
        )

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            assert self.process is not None
            assert self.process.poll() is None, "the server process died"
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/login/", timeout=2).close()
                return
            except urllib.error.HTTPError:
                return  # it answered
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)


@contextlib.contextmanager
def server_processes(count: int, env: dict[str, str]) -> Iterator[list[ServerProcess]]:
    servers = [ServerProcess(env) for _ in range(count)]
    try:
        for server in servers:
            server.start()
        for server in servers:
            server.wait_ready()
        yield servers
    finally:
        for server in servers:
            server.kill()


def send_from_another_process(env: dict[str, str], event: dict[str, Any], *users: User) -> None:
    subprocess.run(
        [sys.executable, "-c", SENDER, json.dumps(event), *(str(u.pk) for u in users)],
        env=env,
        cwd=ROOT,
        check=True,
        timeout=60,
    )


@pytest.fixture
def memory_bus(settings: SettingsWrapper) -> None:
    """The embedded tier's bus, whatever the developer's environment says."""
    settings.REDIS_URL = ""


@pytest.fixture
def server(transactional_db: None, memory_bus: None) -> Iterator[ThreadServer]:
    running = ThreadServer()
    running.start()
    yield running
    running.stop()


@pytest.fixture
def redis_prefix(redis_url: str) -> str:
    """A channel prefix of this test's own: other test runs share the Redis database."""
    return f"test-{os.getpid()}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def redis_bus(settings: SettingsWrapper, redis_url: str, redis_prefix: str) -> Iterator[None]:
    """This test process publishes through Redis too (as a ward-tier worker would)."""
    settings.REDIS_URL = redis_url
    settings.REDIS_PREFIX = redis_prefix
    yield
    used = bus.get_bus()
    used.flush(5)
    used.close()


def session_cookie(user: User) -> str:
    """Sign ``user`` in through the sign-in page; the Cookie header of that session."""
    client = Client()
    response = client.post("/login/", {"username": user.username, "password": PASSWORD})
    assert response.status_code == 302, response.content.decode()[:500]
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"


class Socket:
    """A WebSocket client that answers the server's pings and reads frames."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws

    def send(self, frame: dict[str, Any]) -> None:
        self.ws.send(json.dumps(frame))

    def hello(self, last_event_id: int | None = None) -> dict[str, Any]:
        """Say hello; returns the ``ready`` frame after the replayed frames (kept in
        ``self.replayed``)."""
        self.send({"op": "hello", "last_event_id": last_event_id})
        return self.until_ready()

    def until_ready(self, timeout: float = 10) -> dict[str, Any]:
        self.replayed: list[dict[str, Any]] = []
        while True:
            frame = self.next(timeout)
            if frame.get("op") == "ready":
                return frame
            self.replayed.append(frame)

    def next(self, timeout: float = 10, *, answer_pings: bool = True) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            frame: dict[str, Any] = json.loads(self.ws.recv(max(0.01, deadline - time.monotonic())))
            if answer_pings and frame == {"op": "ping"}:
                self.send({"op": "pong"})
                continue
            return frame

    def assert_nothing_pending(self) -> None:
        """Nothing but our pong comes back: no event is queued for this socket."""
        self.send({"op": "ping"})
        assert self.next(5) == {"op": "pong"}

    def close_code(self, timeout: float = 10) -> int | None:
        """Read until the server closes; its close code."""
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                self.ws.recv(max(0.01, deadline - time.monotonic()))
        except ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd else None
        raise AssertionError("the server did not close the socket")

    def close(self) -> None:
        self.ws.close()


def open_socket(
    url: str,
    *,
    cookie: str | None = None,
    headers: dict[str, str] | None = None,
    origin: str | None = None,
    query: str = "",
) -> Socket:
    extra = dict(headers or {})
    if cookie:
        extra["Cookie"] = cookie
    ws = _opened.enter_context(
        connect(
            url + query,
            additional_headers=extra,
            origin=origin,  # type: ignore[arg-type]  # websockets' Origin is a NewType of str
            open_timeout=10,
            close_timeout=2,
        )
    )
    return Socket(ws)


_opened = contextlib.ExitStack()


@pytest.fixture(autouse=True)
def _close_sockets() -> Iterator[None]:
    """Every socket a test opened is closed after it, before its server stops."""
    yield
    _opened.close()
