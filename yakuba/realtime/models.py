"""Per-user event streams.  Every event a user is sent is persisted with an id that
increases within that user's stream, so a client that reconnects can ask for
everything after the last id it saw."""

from __future__ import annotations

from typing import ClassVar

from django.conf import settings
from django.db import models

from yakuba.lib import clock


class EventStream(models.Model):
    """The head of one user's stream.  The row is locked while ids are allocated, so ids
    commit in order within a stream even when transactions commit out of order."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, primary_key=True, related_name="+"
    )
    last_event_id = models.BigIntegerField(default=0)
    # Events up to this id were deleted by retention; a client behind it must refetch.
    pruned_through = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"stream of user {self.user_id} at {self.last_event_id}"


class UserEvent(models.Model):
    """One event in one user's stream.  ``event_id`` increases by one per event within the
    stream (ids are allocated under the stream head's lock), so a gap means a missed event."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    event_id = models.BigIntegerField()
    payload = models.JSONField()
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["user", "event_id"], name="user_event_id_once")
        ]
        # Retention deletes by age across all streams.
        indexes: ClassVar = [models.Index(fields=["created_at"], name="user_event_created")]

    def __str__(self) -> str:
        return f"event {self.event_id} for user {self.user_id}"
