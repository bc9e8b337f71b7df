"""The sealer: chains committed audit entries, in the order it finds them.

Writers never wait for each other on the chain: ``record`` only inserts the entry (and
a trigger queues it in ``AuditPending``) inside the action's own transaction.  After
commit, the sealer takes the chain lock, reads the queue, and appends one ``AuditSeal``
per entry.  The chain order is the seal order (``seq``), not the entry id: on
PostgreSQL ids are taken before commit, so entry 11 may commit, and be sealed, before
entry 10.  Nothing is ever updated.

Lock: ``pg_advisory_xact_lock`` on PostgreSQL (held to the end of the sealing
transaction), the database write lock on SQLite (every transaction begins IMMEDIATE).
Two sealers at once therefore queue behind each other and never fork the chain.

The window between commit and seal is at most one pass of the periodic job (every
``YAKUBA_AUDIT_SEAL_INTERVAL_SECONDS``, default 1 s, plus the worker's poll) when the
sealer runs in another process; ``wake()`` lets a sealer in the same process
(``run_prompt_sealer``) seal within milliseconds.  Correctness never depends on it.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from django.db import close_old_connections, connection, transaction

from yakuba.audit import store
from yakuba.audit.chain import GENESIS_HASH, entry_hash
from yakuba.lib import clock

log = logging.getLogger(__name__)

BATCH = 2000
# Any constant works; it names the chain lock among PostgreSQL advisory locks.
ADVISORY_LOCK_KEY = 0x59414B55424141  # "YAKUBAA"

_wakeup = threading.Event()


def wake() -> None:
    """Hint that new entries were committed (called by ``record`` on commit)."""
    _wakeup.set()


def lock_chain(cursor: Any) -> None:
    """Take the chain lock for the rest of the current transaction."""
    if connection.vendor == "postgresql":
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [ADVISORY_LOCK_KEY])
    # SQLite: the transaction already holds the database write lock (BEGIN IMMEDIATE).


def chain_head(cursor: Any) -> tuple[int, str]:
    """(seq, hash) of the last seal, or of the latest prune anchor, or the genesis."""
    cursor.execute("SELECT seq, hash FROM audit_auditseal ORDER BY seq DESC LIMIT 1")
    row = cursor.fetchone()
    cursor.execute("SELECT seq, hash FROM audit_auditpruneanchor ORDER BY seq DESC LIMIT 1")
    anchor = cursor.fetchone()
    candidates = [r for r in (row, anchor) if r is not None]
    if not candidates:
        return 0, GENESIS_HASH
    seq, head = max(candidates, key=lambda r: int(r[0]))
    return int(seq), str(head)


def seal_pending(*, batch: int = BATCH) -> int:
    """Seal every committed, unsealed entry; returns how many were sealed.

    Takes the chain lock, one short transaction per batch.  Safe to run in several
    processes at once.  Inside an outer transaction, seals as part of it.
    """
    total = 0
    while True:
        count = _seal_batch(batch)
        total += count
        if count < batch:
            return total


def _seal_batch(limit: int) -> int:
    vendor = connection.vendor
    with transaction.atomic(), connection.cursor() as cursor:
        lock_chain(cursor)
        cursor.execute(
            "SELECT entry_id FROM audit_auditpending ORDER BY entry_id LIMIT %s", [limit]
        )
        pending = [int(row[0]) for row in cursor.fetchall()]
        if not pending:
            return 0
        seq, head = chain_head(cursor)
        # Naive UTC, as Django itself writes datetimes to SQLite.
        now = connection.ops.adapt_datetimefield_value(clock.now())
        seals = []
        for fields in store.fetch_entries(cursor, vendor, pending):
            head_before, head = head, entry_hash(head, store.canonical_of(fields))
            seq += 1
            seals.append((seq, fields[0], head_before, head, now))
        cursor.executemany(
            "INSERT INTO audit_auditseal (seq, entry_id, prev_hash, hash, sealed_at) "
            "VALUES (%s, %s, %s, %s, %s)",
            seals,
        )
        if len(seals) != len(pending):
            log.error(
                "audit entries %s were queued but are missing", set(pending) - {s[1] for s in seals}
            )
        marks = ", ".join(["%s"] * len(pending))
        cursor.execute(
            f"DELETE FROM audit_auditpending WHERE entry_id IN ({marks})",  # noqa: S608
            pending,
        )
        return len(pending)


def run_prompt_sealer(stop: threading.Event, *, interval: float = 1.0) -> None:
    """Seal as soon as ``wake()`` is called in this process (or every ``interval``)
    until ``stop`` is set.  Meant for a daemon thread beside the worker."""
    while not stop.is_set():
        _wakeup.wait(interval)
        _wakeup.clear()
        if stop.is_set():
            break
        try:
            close_old_connections()
            seal_pending()
        except Exception:
            log.exception("audit sealing failed; retrying")
            stop.wait(interval)
    connection.close()


_prompt_thread: threading.Thread | None = None
_prompt_lock = threading.Lock()


def start_prompt_sealer(stop: threading.Event, *, interval: float = 1.0) -> None:
    """Start ``run_prompt_sealer`` in a daemon thread once per process."""
    global _prompt_thread
    with _prompt_lock:
        if _prompt_thread is not None and _prompt_thread.is_alive():
            return
        _prompt_thread = threading.Thread(
            target=run_prompt_sealer,
            args=(stop,),
            kwargs={"interval": interval},
            name="audit-sealer",
            daemon=True,
        )
        _prompt_thread.start()
