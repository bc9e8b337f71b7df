"""Client operations that apps add to the WebSocket, and hooks on sockets coming and going.

The gateway itself speaks only its protocol (hello, ping, watch).  An app that takes
small, frequent, ephemeral input over the socket (chat's typing indicator, presence
activity) registers an op: ``{"op": "chat.typing", ...}`` from a ready socket is handed
to the handler registered for ``"chat.typing"``.  Writes that must be acknowledged and
kept (sending a message) go through the HTTP API instead, where they have an answer, a
status code and an idempotency key.

A handler runs in a database thread with the socket's user id and the frame, and
returns a dict to send back to that socket, or None.  Connection hooks run in a database
thread too, when a user's socket in this process becomes ready and when it closes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

OpHandler = Callable[[int, dict[str, Any]], dict[str, Any] | None]
ConnectionHook = Callable[[int], None]

OP_PATTERN_SEPARATOR = "."

_ops: dict[str, OpHandler] = {}
_on_ready: list[ConnectionHook] = []
_on_close: list[ConnectionHook] = []


def register_op(name: str, handler: OpHandler) -> None:
    """Route frames ``{"op": name}`` to ``handler``.  Names are ``app.verb``."""
    if OP_PATTERN_SEPARATOR not in name:
        raise ValueError(f"an app's op is named 'app.verb', not {name!r}")
    _ops[name] = handler


def handler_for(op: str) -> OpHandler | None:
    return _ops.get(op)


def on_socket_ready(hook: ConnectionHook) -> None:
    _on_ready.append(hook)


def on_socket_closed(hook: ConnectionHook) -> None:
    _on_close.append(hook)


def socket_ready(user_id: int) -> None:
    for hook in _on_ready:
        hook(user_id)


def socket_closed(user_id: int) -> None:
    for hook in _on_close:
        hook(user_id)
