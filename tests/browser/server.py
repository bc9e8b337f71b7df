"""A real Yakuba server for tests: uvicorn serving ``yakuba.asgi:application`` in a
background thread on a free 127.0.0.1 port.

It shares the test database (SQLite in a file under var/, PostgreSQL by name), so data a
test commits (``transactional_db``) is what the server sees.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn


@contextmanager
def running_server(*, startup_timeout: float = 20.0) -> Iterator[str]:
    """Start the server, yield its base URL (``http://127.0.0.1:PORT``), stop it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        "yakuba.asgi:application",
        log_level="warning",
        lifespan="off",
        # The sans-I/O implementation avoids websockets' deprecated legacy module, whose
        # DeprecationWarning would be an error under the suite's filterwarnings.
        ws="websockets-sansio",
        ws_ping_interval=None,
        access_log=False,
        # Open WebSockets (every signed-in page has one) must not hold up the stop.
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="uvicorn-test", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
