"""Retention of event streams: events older than ``REALTIME_EVENT_RETENTION_DAYS`` go."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db import transaction
from django.db.models import Max

from yakuba.lib import clock
from yakuba.realtime import metrics
from yakuba.realtime.models import EventStream, UserEvent
from yakuba.tasks.registry import periodic

# Streams pruned per transaction, so the stream heads are locked only briefly.
PRUNE_BATCH = 500


@periodic("realtime.prune_events", every=dt.timedelta(hours=1))
def prune_events() -> None:
    """Delete events older than the retention period and raise each stream's
    ``pruned_through``, so that a client asking to resume from before it is told to
    refetch instead of getting a replay with a hole.  Safe to run twice at once."""
    cutoff = clock.now() - dt.timedelta(days=settings.REALTIME_EVENT_RETENTION_DAYS)
    user_ids = sorted(
        UserEvent.objects.filter(created_at__lt=cutoff).values_list("user_id", flat=True).distinct()
    )
    for start in range(0, len(user_ids), PRUNE_BATCH):
        prune_streams(user_ids[start : start + PRUNE_BATCH], cutoff)


def prune_streams(user_ids: list[int], cutoff: dt.datetime) -> int:
    """Prune the given streams; returns the number of events deleted.

    Locks the stream heads in user id order, as ``send_event_on_commit`` does, so the
    two never deadlock.  Queries: SELECT … FOR UPDATE, one aggregate, the UPDATEs of
    ``bulk_update``, one DELETE."""
    with transaction.atomic():
        heads = list(
            EventStream.objects.select_for_update().filter(user_id__in=user_ids).order_by("user_id")
        )
        through = dict(
            UserEvent.objects.filter(user_id__in=user_ids, created_at__lt=cutoff)
            .values_list("user_id")
            .annotate(last=Max("event_id"))
            .values_list("user_id", "last")
        )
        changed = []
        for head in heads:
            last = through.get(head.user_id)
            if last is not None and last > head.pruned_through:
                head.pruned_through = last
                changed.append(head)
        EventStream.objects.bulk_update(changed, ["pruned_through"], batch_size=PRUNE_BATCH)
        # By time, in one statement.  Were clocks of two servers apart, an event could
        # outlive an older-dated later one: it lies below pruned_through, so no resume
        # reads it, and a later run deletes it.
        deleted, _ = UserEvent.objects.filter(user_id__in=user_ids, created_at__lt=cutoff).delete()
    metrics.inc("yakuba_realtime_events_pruned_total", deleted)
    return deleted
