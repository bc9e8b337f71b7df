"""The worker job that makes the occurrences of recurring bookings as the advance-booking
horizon moves (one more day each day).  ``yakuba.rooms.tasks`` imports this module so
that the job registers."""

from __future__ import annotations

import datetime as dt
import logging

from django.db import DatabaseError
from django.db.models import F, Q

from yakuba.rooms.actions.booking import BookingError
from yakuba.rooms.actions.series import extend_series, horizon
from yakuba.rooms.models import BookingSeries
from yakuba.tasks.registry import periodic

log = logging.getLogger(__name__)


@periodic("rooms.extend_series", every=dt.timedelta(hours=1))
def extend_all_series() -> None:
    """Extend every active series not yet made up to today's horizon.  Safe to run in
    several workers at once: ``extend_series`` locks the series and re-reads how far it
    was made.  One series failing does not hold up the others."""
    through = horizon()
    due = (
        BookingSeries.objects.filter(status=BookingSeries.Status.ACTIVE)
        .filter(Q(generated_through__isnull=True) | Q(generated_through__lt=through))
        .filter(
            Q(until_date__isnull=True)
            | Q(generated_through__isnull=True)
            | Q(until_date__gt=F("generated_through"))
        )
        .select_related("room")
        .order_by("pk")
    )
    for series in due:
        try:
            extend_series(series)
        except (BookingError, DatabaseError):
            log.exception("extending booking series %s failed", series.pk)
