"""The event bus (filled in by the real-time work): in-process or Redis pub/sub."""

from __future__ import annotations

from typing import Any


def publish(event: dict[str, Any], deliveries: list[tuple[int, int]]) -> None:
    """Deliver ``event`` to the local sockets of the given (user id, event id) pairs."""
