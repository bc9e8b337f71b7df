"""Every write the audit log makes about itself: checkpoints, pruning, and the entries
that record searches and exports.  Each is audited like any other action."""

from __future__ import annotations

import datetime as dt
import getpass
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.db import connection, transaction

from yakuba.audit import keys
from yakuba.audit.chain import format_time
from yakuba.audit.models import AuditAction, AuditCheckpoint, AuditPruneAnchor
from yakuba.audit.record import Actor, record
from yakuba.audit.sealer import chain_head, lock_chain, seal_pending
from yakuba.lib import clock

if TYPE_CHECKING:
    from yakuba.directory.models import User

# SQLite allows 32,766 bound parameters per statement; stay well below.
DELETE_CHUNK = 5000


def command_actor() -> Actor:
    """The actor for `yakuba audit …` run from a shell: the operating-system user."""
    try:
        who = getpass.getuser()
    except (KeyError, OSError):
        who = "?"
    return Actor.system(f"コマンド ({who})")


def do_make_checkpoint(
    *, actor: Actor | User | None, if_older_than: dt.timedelta | None = None
) -> AuditCheckpoint | None:
    """Seal what is pending, then sign the chain head.  With ``if_older_than`` (the
    periodic job), does nothing and returns None unless some seal not yet covered by a
    checkpoint (other than the last checkpoint's own entry) is older than that: an
    idle log is not re-signed, and nothing waits longer than that to be signed.

    Holds the chain lock for the whole transaction, so the signed head is the head.
    """
    with transaction.atomic(), connection.cursor() as cursor:
        lock_chain(cursor)
        seal_pending()
        if if_older_than is not None and not _unsigned_since(cursor, clock.now() - if_older_than):
            return None
        key = keys.signing_key()
        public = keys.public_hex(key)
        seq, head = chain_head(cursor)
        now = clock.now()
        fingerprint = keys.fingerprint(public)
        fields = keys.checkpoint_fields(seq, head, format_time(now), fingerprint)
        checkpoint = AuditCheckpoint.objects.create(
            seq=seq,
            hash=head,
            created_at=now,
            key_fingerprint=fingerprint,
            public_key=public,
            signature=keys.sign(key, fields),
        )
        record(
            AuditAction.AUDIT_CHECKPOINT,
            actor=actor,
            target=("audit.auditcheckpoint", str(checkpoint.pk), f"seq {seq}"),
            details={"seq": seq, "hash": head, "key_fingerprint": fingerprint},
        )
    return checkpoint


def _unsigned_since(cursor: Any, moment: dt.datetime) -> bool:
    """Whether a seal after the last checkpoint, other than that checkpoint's own
    entry, was made at or before ``moment``."""
    latest = AuditCheckpoint.objects.order_by("-seq", "-id").first()
    cursor.execute(
        "SELECT s.sealed_at, e.action, e.target_id FROM audit_auditseal s "
        "JOIN audit_auditentry e ON e.id = s.entry_id WHERE s.seq > %s ORDER BY s.seq LIMIT 2",
        [latest.seq if latest else 0],
    )
    for sealed_at, action, target_id in cursor.fetchall():
        own_entry = (
            latest is not None
            and action == AuditAction.AUDIT_CHECKPOINT
            and target_id == str(latest.pk)
        )
        if not own_entry:
            return bool(_as_aware(sealed_at) <= moment)
    return False


def _as_aware(value: Any) -> dt.datetime:
    """A raw cursor's datetime (aware on PostgreSQL, naive UTC or text on SQLite)."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value  # type: ignore[no-any-return]


@dataclass(frozen=True)
class PruneResult:
    anchor: AuditPruneAnchor | None
    entries_deleted: int


def do_prune(*, before: dt.datetime, actor: Actor | User | None) -> PruneResult:
    """Delete the oldest part of the chain: every sealed entry up to the last seal whose
    entries all happened before ``before``.  First records a signed prune anchor (the
    seq and hash where the remaining chain starts), which is what lets the database
    triggers allow these deletes; then writes an ``audit.pruned`` entry.

    Holds the chain lock, so no seal is added while the anchor is chosen.
    """
    key = keys.signing_key()
    public = keys.public_hex(key)
    with transaction.atomic(), connection.cursor() as cursor:
        lock_chain(cursor)
        seal_pending()
        floor = _anchor_seq(cursor)
        head_seq, _ = chain_head(cursor)
        cursor.execute(
            "SELECT min(s.seq) FROM audit_auditseal s JOIN audit_auditentry e "
            "ON e.id = s.entry_id WHERE s.seq > %s AND e.occurred_at >= %s",
            [floor, connection.ops.adapt_datetimefield_value(before)],
        )
        first_kept = cursor.fetchone()[0]
        last_pruned = head_seq if first_kept is None else int(first_kept) - 1
        anchor = None
        deleted = 0
        if last_pruned > floor:
            anchor, deleted = _prune_to(cursor, key, public, floor, last_pruned, before)
        record(
            AuditAction.AUDIT_PRUNED,
            actor=actor,
            target=("audit.auditpruneanchor", str(anchor.pk), f"seq {anchor.seq}")
            if anchor
            else None,
            details={
                "before": format_time(before),
                "entries_deleted": deleted,
                "anchor_seq": anchor.seq if anchor else None,
                "anchor_hash": anchor.hash if anchor else None,
            },
        )
    return PruneResult(anchor=anchor, entries_deleted=deleted)


def _anchor_seq(cursor: Any) -> int:
    cursor.execute("SELECT COALESCE(max(seq), 0) FROM audit_auditpruneanchor")
    return int(cursor.fetchone()[0])


def _prune_to(
    cursor: Any, key: Any, public: str, floor: int, last: int, before: dt.datetime
) -> tuple[AuditPruneAnchor, int]:
    cursor.execute("SELECT hash FROM audit_auditseal WHERE seq = %s", [last])
    last_hash = str(cursor.fetchone()[0])
    cursor.execute(
        "SELECT entry_id FROM audit_auditseal WHERE seq > %s AND seq <= %s", [floor, last]
    )
    entry_ids = [int(row[0]) for row in cursor.fetchall()]
    now = clock.now()
    fingerprint = keys.fingerprint(public)
    max_entry_id = max(entry_ids)
    fields = keys.anchor_fields(
        last,
        last_hash,
        format_time(now),
        fingerprint,
        before=format_time(before),
        max_entry_id=max_entry_id,
    )
    anchor = AuditPruneAnchor.objects.create(
        seq=last,
        hash=last_hash,
        max_entry_id=max_entry_id,
        before=before,
        created_at=now,
        key_fingerprint=fingerprint,
        public_key=public,
        signature=keys.sign(key, fields),
    )
    # Seals first (the anchor now covers them), then their entries (no seal left).
    cursor.execute("DELETE FROM audit_auditseal WHERE seq > %s AND seq <= %s", [floor, last])
    for start in range(0, len(entry_ids), DELETE_CHUNK):
        chunk = entry_ids[start : start + DELETE_CHUNK]
        marks = ", ".join(["%s"] * len(chunk))
        cursor.execute(
            f"DELETE FROM audit_auditentry WHERE id IN ({marks})",  # noqa: S608 - fixed SQL
            chunk,
        )
    return anchor, len(entry_ids)


def do_record_export(*, actor: Actor | User | None, details: dict[str, Any]) -> None:
    """Audit an export of the log (CLI JSON Lines or the page's CSV)."""
    with transaction.atomic():
        record(AuditAction.AUDIT_EXPORTED, actor=actor, details=details)


def do_record_search(*, actor: Actor | User | None, filters: dict[str, Any]) -> None:
    """Audit a search on the auditor's page."""
    with transaction.atomic():
        record(AuditAction.AUDIT_SEARCHED, actor=actor, details={"filters": filters})


def seal_now() -> int:
    """Seal what is pending (the ``seal`` command; also used before verify/export)."""
    return seal_pending()
