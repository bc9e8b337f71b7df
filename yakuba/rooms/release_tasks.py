"""The worker's side of the automatic release of no-shows (未使用予約の自動解放).

Every ``ROOMS_RELEASE_INTERVAL_SECONDS`` (15 s by default, 60 s at most) each worker
releases every confirmed booking whose ``release_due_at`` has passed and that nobody
checked in to.  The query is ``release_due_at <= now``, not "due since the last run", so a
deadline that passed while no worker was running (a restart, an outage) is released on the
first run after start: the worker runs every periodic job at once when it starts.  Several
workers may run it at once: each booking is released by one conditional UPDATE.
"""

from __future__ import annotations

import datetime as dt
import logging

from django.conf import settings

from yakuba.lib import clock
from yakuba.rooms.actions.door import release_due
from yakuba.tasks.registry import periodic

log = logging.getLogger(__name__)


@periodic(
    "rooms.release_no_shows", every=dt.timedelta(seconds=settings.ROOMS_RELEASE_INTERVAL_SECONDS)
)
def release_no_shows() -> None:
    released = release_due(clock.now())
    if released:
        log.info("released %d no-show booking(s)", released)
