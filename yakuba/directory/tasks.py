"""Background work of the directory, run by ``yakuba worker``.

- ``directory.apply_due_transfers``: applies each personnel-transfer batch on its date
  (or at the first run after it, when the server was down that day).
- ``directory.expire_guests``: deactivates guests whose invitation has run out.

Both are safe in several workers at once (conditional UPDATE / idempotent writes).
"""

from __future__ import annotations

import datetime as dt
import logging

from yakuba.directory.actions.staff import do_apply_due_transfers, do_deactivate_expired_guests
from yakuba.tasks.registry import periodic

log = logging.getLogger(__name__)


@periodic("directory.apply_due_transfers", every=dt.timedelta(minutes=1))
def apply_due_transfers() -> None:
    applied = do_apply_due_transfers()
    if applied:
        log.info("applied personnel-transfer batches %s", applied)


@periodic("directory.expire_guests", every=dt.timedelta(minutes=5))
def expire_guests() -> None:
    count = do_deactivate_expired_guests()
    if count:
        log.info("deactivated %d expired guest(s)", count)
