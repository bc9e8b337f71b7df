"""``send_event_on_commit``: the only way to send a real-time event."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from django.db import transaction
from django.db.models import F

from yakuba.lib import clock
from yakuba.realtime.models import EventStream, UserEvent

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
    calling this.  Queries, whatever the number of recipients: one INSERT of missing heads,
    one SELECT … FOR UPDATE, one UPDATE, and one INSERT per ``INSERT_BATCH`` events.
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
    with transaction.atomic():
        EventStream.objects.bulk_create(
            [EventStream(user_id=uid) for uid in recipients],
            ignore_conflicts=True,
            batch_size=INSERT_BATCH,
        )
        # Lock before updating: an UPDATE … WHERE user_id IN (…) would lock rows in
        # whatever order the plan visits them, and two senders could deadlock.
        heads = list(
            EventStream.objects.select_for_update()
            .filter(user_id__in=recipients)
            .order_by("user_id")
            .values_list("user_id", "last_event_id")
        )
        EventStream.objects.filter(user_id__in=recipients).update(
            last_event_id=F("last_event_id") + 1
        )
        now = clock.now()
        deliveries = [(user_id, last + 1) for user_id, last in heads]
        UserEvent.objects.bulk_create(
            [
                UserEvent(user_id=user_id, event_id=event_id, payload=payload, created_at=now)
                for user_id, event_id in deliveries
            ],
            batch_size=INSERT_BATCH,
        )
        transaction.on_commit(lambda: _publish(payload, deliveries))


def _publish(event: dict[str, Any], deliveries: list[tuple[int, int]]) -> None:
    from yakuba.realtime import bus

    bus.publish(event, deliveries)
