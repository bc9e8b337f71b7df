"""Background work of the audit log: sealing (every few seconds) and checkpoints."""

from __future__ import annotations

import datetime as dt

from django.conf import settings

from yakuba.audit.actions import do_make_checkpoint
from yakuba.audit.record import Actor
from yakuba.audit.sealer import seal_pending
from yakuba.tasks.registry import periodic


@periodic("audit.seal", every=dt.timedelta(seconds=settings.AUDIT_SEAL_INTERVAL_SECONDS))
def seal() -> None:
    """Chain the entries committed since the last pass (safe in several workers)."""
    seal_pending()


@periodic("audit.checkpoint", every=dt.timedelta(minutes=1))
def checkpoint() -> None:
    """Sign the chain head when the last checkpoint is older than the configured period
    (decided under the chain lock, so several workers make one checkpoint)."""
    do_make_checkpoint(
        actor=Actor.system("監査ログ定期チェックポイント"),
        if_older_than=dt.timedelta(minutes=settings.AUDIT_CHECKPOINT_MINUTES),
    )
