"""``send_event_on_commit``: the only way to send a real-time event."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from django.db import connection, transaction

from yakuba.lib import clock
from yakuba.realtime.models import UserEvent

# Rows per INSERT; keeps SQLite under its bound-variable limit for a ward-wide fan-out.
INSERT_BATCH = 500


def send_event_on_commit(event: dict[str, Any], user_ids: Iterable[int]) -> None:
    """Persist ``event`` in each user's stream now; publish it after the caller commits.

    ``event`` is a JSON-serialisable dict with ``type`` and ``op`` (it is checked here, so a
    bad event fails the action, not the publish).  The caller chooses the recipients
    explicitly: sending to the wrong users leaks data.  Call it inside the action's
    ``transaction.atomic()``; outside one it makes its own.

    Locking: the recipients' stream heads (``EventStream`` rows) are locked until the
    caller's transaction ends, in ascending user id so that two senders never deadlock;
    that is what makes ids commit in order within a stream.  On SQLite the IMMEDIATE
    transaction already holds the database's one write lock.  Keep the action short after
    calling this.  Queries, whatever the number of recipients: one UPSERT of the heads and
    one INSERT of the events per ``INSERT_BATCH`` recipients.
    """
    if not isinstance(event, dict) or "type" not in event or "op" not in event:
        raise ValueError("an event is a dict with 'type' and 'op'")
    try:
        payload = json.loads(json.dumps(event))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"an event must be JSON-serialisable: {exc}") from exc
    recipients = sorted({int(uid) for uid in user_ids})
    if not recipients:
        return
    # No savepoint inside the caller's transaction: two round trips saved per
    # write, and an error here fails the whole action anyway.
    with transaction.atomic(savepoint=False):
        heads: list[tuple[int, int]] = []
        for start in range(0, len(recipients), INSERT_BATCH):
            heads += _advance_heads(recipients[start : start + INSERT_BATCH])
        now = clock.now()
        deliveries = sorted(heads)
        UserEvent.objects.bulk_create(
            [
                UserEvent(user_id=user_id, event_id=event_id, payload=payload, created_at=now)
                for user_id, event_id in deliveries
            ],
            batch_size=INSERT_BATCH,
        )
        transaction.on_commit(lambda: _publish(payload, deliveries))


# One statement creates missing heads and advances the others, locking each row until the
# transaction ends (PostgreSQL's ON CONFLICT DO UPDATE locks the row it updates; rows are
# visited in VALUES order, which is ascending, so two senders never deadlock).  SQLite
# (3.35+) has the same UPSERT … RETURNING.
_ADVANCE = (
    "INSERT INTO realtime_eventstream (user_id, last_event_id, pruned_through) VALUES {rows} "
    "ON CONFLICT (user_id) DO UPDATE SET last_event_id = realtime_eventstream.last_event_id + 1 "
    "RETURNING user_id, last_event_id"
)


def _advance_heads(user_ids: list[int]) -> list[tuple[int, int]]:
    """Allocate the next event id in each stream: ``(user id, new id)`` pairs."""
    with connection.cursor() as cursor:
        cursor.execute(_ADVANCE.format(rows=", ".join(["(%s, 1, 0)"] * len(user_ids))), user_ids)
        return [(int(user_id), int(event_id)) for user_id, event_id in cursor.fetchall()]


def _publish(event: dict[str, Any], deliveries: list[tuple[int, int]]) -> None:
    from yakuba.realtime import bus

    bus.publish(event, deliveries)


def send_live_on_commit(event: dict[str, Any], user_ids: Iterable[int]) -> None:
    """Publish ``event`` after the caller commits to the open sockets of ``user_ids``,
    without persisting it in their streams.

    For high-volume events whose state the owning app keeps and can replay itself: a chat
    message lives in ``chat_message`` with its conversation's seq, so a client that was
    away (or whose socket dropped live frames, told by ``{"op": "live_gap"}``) resyncs
    from there.  Writing a stream row per member for every chat message would cost ten
    thousand rows a second at the ward's load (docs/realtime.md).  Outside a transaction
    it publishes at once.  Sockets receive ``{"op": "live", "event": event}``."""
    if not isinstance(event, dict) or "type" not in event or "op" not in event:
        raise ValueError("an event is a dict with 'type' and 'op'")
    try:
        payload = json.loads(json.dumps(event))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"an event must be JSON-serialisable: {exc}") from exc
    recipients = sorted({int(uid) for uid in user_ids})
    if recipients:
        transaction.on_commit(lambda: _publish_live(payload, recipients))


def _publish_live(event: dict[str, Any], user_ids: list[int]) -> None:
    from yakuba.realtime import bus

    bus.publish_live(event, user_ids)
