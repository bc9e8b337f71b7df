"""``send_event_on_commit``: the only way to send a real-time event."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import transaction

from yakuba.lib import clock
from yakuba.realtime.models import EventStream, UserEvent


def send_event_on_commit(event: dict[str, Any], user_ids: Iterable[int]) -> None:
    """Persist ``event`` in each user's stream now, publish it after commit.

    ``event`` is a JSON-serialisable dict with ``type`` and ``op``.  The caller chooses the
    recipients: sending to the wrong users leaks data.  Must run inside the action's
    transaction (it locks the recipients' stream heads, in id order to avoid deadlocks).
    """
    if "type" not in event or "op" not in event:
        raise ValueError("an event needs 'type' and 'op'")
    recipients = sorted(set(user_ids))
    if not recipients:
        return
    with transaction.atomic():
        EventStream.objects.bulk_create(
            [EventStream(user_id=uid) for uid in recipients], ignore_conflicts=True
        )
        heads = list(
            EventStream.objects.select_for_update()
            .filter(user_id__in=recipients)
            .order_by("user_id")
        )
        now = clock.now()
        rows = []
        for head in heads:
            head.last_event_id += 1
            rows.append(
                UserEvent(
                    user_id=head.user_id, event_id=head.last_event_id, payload=event, created_at=now
                )
            )
        EventStream.objects.bulk_update(heads, ["last_event_id"])
        UserEvent.objects.bulk_create(rows)
        deliveries = [(row.user_id, row.event_id) for row in rows]
        transaction.on_commit(lambda: _publish(event, deliveries))


def _publish(event: dict[str, Any], deliveries: list[tuple[int, int]]) -> None:
    from yakuba.realtime import bus

    bus.publish(event, deliveries)
