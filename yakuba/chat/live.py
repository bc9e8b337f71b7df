"""Chat's WebSocket ops: small, ephemeral input that needs no answer and is not kept.

``{"op": "chat.typing", "conversation": id, "thread": root_id | null}``: the sender is
typing.  The other members' sockets receive the live event
``{"type": "chat", "op": "typing", "conversation", "user", "name", "thread"}``.  A client
sends it at most every few seconds while the person types and shows someone else's
indicator for about ``TYPING_SHOW_SECONDS`` after the last one; nothing says "stopped"
(a sent message, or silence, ends it).  Throttled on the server too: one per
``TYPING_THROTTLE`` per person per conversation; more are dropped.

Membership is checked against a short in-memory cache of each conversation's members
(``MEMBERS_TTL``), so a burst of typing costs no query per frame.  A person removed from a
conversation may therefore still see, or cause, typing indicators there for that long;
they carry no content.  Presence ops live in ``chat.presence``.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from yakuba.chat.models import Conversation, Membership
from yakuba.directory.models import User
from yakuba.realtime import ops
from yakuba.realtime.send import send_live_on_commit

TYPING_THROTTLE = 3.0  # seconds
TYPING_SHOW_SECONDS = 6
MEMBERS_TTL = 10.0  # seconds
# Cache entries kept at most (conversations, and typing timestamps).
CACHE_LIMIT = 20_000

_lock = threading.Lock()
# conversation id -> (member ids, or None when typing is not allowed there; expiry).
_members: dict[int, tuple[frozenset[int] | None, float]] = {}
# (user id, conversation id) -> when their last typing event went out.
_last_typing: dict[tuple[int, int], float] = {}
# user id -> (display name, expiry).
_names: dict[int, tuple[str, float]] = {}


def _members_of(conversation_id: int) -> frozenset[int] | None:
    """The members of a conversation that exists and is not archived, cached briefly."""
    now = time.monotonic()
    with _lock:
        cached = _members.get(conversation_id)
    if cached is not None and cached[1] > now:
        return cached[0]
    open_conversation = Conversation.objects.filter(
        pk=conversation_id, archived_at__isnull=True
    ).exists()
    members = (
        frozenset(
            Membership.objects.filter(conversation_id=conversation_id).values_list(
                "user_id", flat=True
            )
        )
        if open_conversation
        else None
    )
    with _lock:
        if len(_members) >= CACHE_LIMIT:
            _members.clear()
        _members[conversation_id] = (members, now + MEMBERS_TTL)
    return members


def _name_of(user_id: int) -> str:
    now = time.monotonic()
    with _lock:
        cached = _names.get(user_id)
    if cached is not None and cached[1] > now:
        return cached[0]
    user = User.objects.filter(pk=user_id).only("display_name", "username").first()
    name = str(user) if user is not None else ""
    with _lock:
        if len(_names) >= CACHE_LIMIT:
            _names.clear()
        _names[user_id] = (name, now + 60 * MEMBERS_TTL)
    return name


def forget_members(conversation_id: int) -> None:
    """Drop the cached members of a conversation (membership actions may call it; the
    cache expires by itself within ``MEMBERS_TTL``)."""
    with _lock:
        _members.pop(conversation_id, None)


def clear_caches() -> None:
    """Forget cached members, names and throttles (tests only)."""
    with _lock:
        _members.clear()
        _last_typing.clear()
        _names.clear()


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def on_typing(user_id: int, frame: dict[str, Any]) -> dict[str, Any] | None:
    """The ``chat.typing`` op.  Answers an error frame for a malformed frame or a
    conversation the user may not post in; nothing otherwise."""
    conversation_id, thread = frame.get("conversation"), frame.get("thread")
    if not isinstance(conversation_id, int) or not _positive_int(conversation_id):
        return {"op": "error", "code": "invalid", "got": "chat.typing"}
    if not (thread is None or _positive_int(thread)):
        return {"op": "error", "code": "invalid", "got": "chat.typing"}
    members = _members_of(conversation_id)
    if members is None or user_id not in members:
        return {"op": "error", "code": "forbidden", "got": "chat.typing"}
    now = time.monotonic()
    key = (user_id, conversation_id)
    with _lock:
        last = _last_typing.get(key)
        if last is not None and now - last < TYPING_THROTTLE:
            return None
        if len(_last_typing) >= CACHE_LIMIT:
            _last_typing.clear()
        _last_typing[key] = now
    others = [member for member in members if member != user_id]
    # Outside a transaction (ops run in autocommit) this publishes at once.
    send_live_on_commit(
        {
            "type": "chat",
            "op": "typing",
            "conversation": conversation_id,
            "user": user_id,
            "name": _name_of(user_id),
            "thread": thread,
        },
        others,
    )
    return None


def register() -> None:
    ops.register_op("chat.typing", on_typing)


register()
