"""Topics: live broadcasts to whoever is watching a page, such as a floor board.

A user's stream (``send_event_on_commit``) is for what a person must not miss; it is
persisted per recipient and replayed after a reconnect.  A topic is for shared views of
state that lives in the database anyway (which rooms are in use right now): writing one
row per staff member for every check-in would cost thousands of rows, for screens nobody
may have open.  So topic events are not persisted: they go over the bus after commit to
the sockets that watch the topic, and a page refetches its state whenever it (re)starts
watching.  A client watches with ``{"op": "watch", "topic": T}``; the app that owns the
topic's prefix decides who may (``register_topic``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from django.db import transaction

# A watcher check: may this active user watch this topic?  Runs in a database thread.
WatchCheck = Callable[[int, str], bool]

TOPIC_PATTERN = re.compile(r"^[a-z][a-z0-9_]*(\.[A-Za-z0-9_-]+){1,4}$")
# Topics one socket may watch at once (a floor board watches one per floor).
MAX_WATCHES_PER_SOCKET = 32

_checks: dict[str, WatchCheck] = {}


def register_topic(prefix: str, may_watch: WatchCheck) -> None:
    """Let ``may_watch(user_id, topic)`` decide who may watch topics ``prefix.…``."""
    if "." in prefix or not TOPIC_PATTERN.match(prefix + ".x"):
        raise ValueError(f"bad topic prefix {prefix!r}")
    _checks[prefix] = may_watch


def may_watch(user_id: int, topic: str) -> bool:
    """Whether ``user_id`` may watch ``topic``: the topic is well formed and the owning
    app's check says yes.  Unknown prefixes are refused."""
    if not isinstance(topic, str) or not TOPIC_PATTERN.match(topic):
        return False
    check = _checks.get(topic.split(".", 1)[0])
    return check is not None and check(user_id, topic)


def broadcast_on_commit(topic: str, event: dict[str, Any]) -> None:
    """Publish ``event`` to the watchers of ``topic`` after the caller commits.

    Only for events that anyone allowed to watch the topic may see: a topic has no
    per-recipient filtering.  Nothing is kept, so the event must describe a change whose
    result a page can refetch."""
    if not TOPIC_PATTERN.match(topic):
        raise ValueError(f"bad topic {topic!r}")
    if not isinstance(event, dict) or "type" not in event or "op" not in event:
        raise ValueError("an event is a dict with 'type' and 'op'")
    payload = json.loads(json.dumps(event))
    transaction.on_commit(lambda: _publish(topic, payload))


def _publish(topic: str, event: dict[str, Any]) -> None:
    from yakuba.realtime import bus

    bus.get_bus().publish({"topic": topic, "event": event})
