"""``yakuba audit verify``: check the chain in the database, and name the first break.

Reads the database only (it never seals, signs or writes).  Seals are streamed with a
plain DB-API cursor in seq order; with ``jobs > 1`` the seq range is split and checked
in worker processes, each with its own read connection, and the pieces are linked by
their boundary hashes (each seal stores the hash it follows).
"""

from __future__ import annotations

import multiprocessing
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import connection

from yakuba.audit import keys, store
from yakuba.audit.chain import GENESIS_HASH, Problem, Segment, check_segment, link_segments
from yakuba.audit.chain import format_time as fmt
from yakuba.audit.models import AuditCheckpoint, AuditPruneAnchor

# Below this many seals, starting processes costs more than it saves.
PARALLEL_MINIMUM = 200_000


@dataclass
class Report:
    problem: Problem | None = None
    checked: int = 0
    first_seq: int = 0
    last_seq: int = 0
    head_hash: str = GENESIS_HASH
    checkpoints: int = 0
    last_checkpoint_seq: int | None = None
    anchor_seq: int = 0
    pending: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.problem is None


def configured_public_key() -> str | None:
    """The public half of the signing key in use, without creating one."""
    if settings.AUDIT_SIGNING_KEY:
        return keys.public_hex(keys.parse_private_key(settings.AUDIT_SIGNING_KEY))
    path = keys.generated_key_path()
    if path.exists():
        return keys.public_hex(keys.parse_private_key(path.read_text(encoding="utf-8")))
    return None


def verify_database(*, extra_keys: Iterable[str] = (), jobs: int = 1) -> Report:
    """Check every seal above the latest prune anchor, every checkpoint and anchor
    signature, and that no checkpoint lies beyond the end of the chain."""
    started = time.perf_counter()
    trusted = {k for k in (configured_public_key(), *extra_keys) if k}
    report = Report()
    anchors = list(AuditPruneAnchor.objects.order_by("seq", "id"))
    checkpoints = list(AuditCheckpoint.objects.order_by("seq", "id"))
    # Reported in this order: a bad prune anchor (it moves where the chain starts), then
    # the lowest seq among chain and checkpoint problems, then unsealed entries.
    anchor_problems, problems = _signature_problems(anchors, checkpoints, trusted)
    start_seq, start_hash = (anchors[-1].seq, anchors[-1].hash) if anchors else (0, GENESIS_HASH)
    report.anchor_seq = start_seq
    with connection.cursor() as cursor:
        _, high = store.seq_bounds(cursor)
        cursor.execute("SELECT count(*) FROM audit_auditpending")
        report.pending = int(cursor.fetchone()[0])
        orphans = _orphan_problems(cursor, report.pending)
    wanted = {c.seq for c in checkpoints if c.seq > start_seq}
    segments = _check_chain(start_seq + 1, max(high, start_seq), start_hash, wanted, jobs)
    chain_problem = link_segments(segments)
    last = segments[-1]
    report.checked = sum(s.count for s in segments)
    report.first_seq, report.last_seq = start_seq + 1, last.last_seq
    report.head_hash = last.last_hash or start_hash
    hashes = {seq: h for s in segments for seq, h in s.hashes_at.items()}
    if chain_problem is not None:
        problems.append(chain_problem)
    else:
        problems += _checkpoint_problems(checkpoints, anchors, hashes, last.last_seq, start_seq)
    report.checkpoints = len(checkpoints)
    report.last_checkpoint_seq = checkpoints[-1].seq if checkpoints else None
    ranked = anchor_problems + sorted(problems, key=lambda p: p.seq) + orphans
    report.problem = ranked[0] if ranked else None
    if not trusted:
        report.notes.append("no signing key is configured here: signatures were not trusted")
    report.seconds = time.perf_counter() - started
    return report


def _signature_problems(
    anchors: list[AuditPruneAnchor], checkpoints: list[AuditCheckpoint], trusted: set[str]
) -> tuple[list[Problem], list[Problem]]:
    """(problems with prune anchors, problems with checkpoints)."""
    anchor_problems = []
    for anchor in anchors:
        fields = keys.anchor_fields(
            anchor.seq,
            anchor.hash,
            fmt(anchor.created_at),
            anchor.key_fingerprint,
            before=fmt(anchor.before),
            max_entry_id=anchor.max_entry_id,
        )
        what = _signature_fault(
            anchor.public_key, anchor.key_fingerprint, fields, anchor.signature, trusted
        )
        if what:
            anchor_problems.append(Problem(anchor.seq, None, f"prune anchor #{anchor.pk}: {what}"))
    problems = []
    for checkpoint in checkpoints:
        fields = keys.checkpoint_fields(
            checkpoint.seq, checkpoint.hash, fmt(checkpoint.created_at), checkpoint.key_fingerprint
        )
        what = _signature_fault(
            checkpoint.public_key, checkpoint.key_fingerprint, fields, checkpoint.signature, trusted
        )
        if what:
            problems.append(Problem(checkpoint.seq, None, f"checkpoint #{checkpoint.pk}: {what}"))
    return anchor_problems, problems


def _signature_fault(
    public: str, fingerprint: str, fields: dict[str, Any], signature: str, trusted: set[str]
) -> str | None:
    if trusted and public not in trusted:
        return (
            f"signed by an unknown key (fingerprint {fingerprint[:16]}…); pass the old "
            "public key with --public-key if the signing key was changed"
        )
    if keys.fingerprint(public) != fingerprint or not keys.signature_valid(
        public, fields, signature
    ):
        return "the signature is not valid (forged or altered)"
    return None


def _orphan_problems(cursor: Any, pending: int) -> list[Problem]:
    cursor.execute("SELECT count(*) FROM audit_auditentry")
    entries = int(cursor.fetchone()[0])
    cursor.execute("SELECT count(*) FROM audit_auditseal")
    seals = int(cursor.fetchone()[0])
    if entries <= seals + pending:
        return []
    cursor.execute(
        "SELECT min(e.id) FROM audit_auditentry e WHERE NOT EXISTS "
        "(SELECT 1 FROM audit_auditseal s WHERE s.entry_id = e.id) AND NOT EXISTS "
        "(SELECT 1 FROM audit_auditpending p WHERE p.entry_id = e.id)"
    )
    orphan = cursor.fetchone()[0]
    if orphan is None:
        return []
    return [
        Problem(
            0,
            int(orphan),
            "this entry is neither sealed nor queued for sealing (the sealer's queue "
            "was tampered with, or the entry was inserted bypassing the trigger)",
        )
    ]


def _checkpoint_problems(
    checkpoints: list[AuditCheckpoint],
    anchors: list[AuditPruneAnchor],
    hashes: dict[int, str],
    chain_end: int,
    start_seq: int,
) -> list[Problem]:
    problems = []
    for checkpoint in checkpoints:
        if checkpoint.seq <= start_seq:
            if checkpoint.seq == start_seq and anchors and anchors[-1].hash != checkpoint.hash:
                problems.append(
                    Problem(checkpoint.seq, None, "the prune anchor contradicts a checkpoint")
                )
            continue
        if checkpoint.seq > chain_end:
            problems.append(
                Problem(
                    chain_end + 1,
                    None,
                    f"the log was truncated: checkpoint #{checkpoint.pk} signed the chain up "
                    f"to seq {checkpoint.seq}, but it ends at seq {chain_end}",
                )
            )
            break
        if hashes.get(checkpoint.seq) != checkpoint.hash:
            problems.append(
                Problem(
                    checkpoint.seq,
                    None,
                    f"checkpoint #{checkpoint.pk} signed a different hash for this seq: "
                    "entries up to here were changed and the chain recomputed",
                )
            )
    return problems


def _check_chain(low: int, high: int, prev: str, wanted: set[int], jobs: int) -> list[Segment]:
    vendor = connection.vendor
    if jobs <= 1 or high - low + 1 < max(PARALLEL_MINIMUM, 2):
        connection.ensure_connection()
        raw = connection.connection
        return [_check_range(raw, vendor, low, high, prev, wanted, raw_sqlite=vendor == "sqlite")]
    step = (high - low + 1 + jobs - 1) // jobs
    ranges = [(start, min(high, start + step - 1)) for start in range(low, high + 1, step)]
    params = dict(connection.settings_dict)
    context = multiprocessing.get_context("fork")
    # Forked children check every range but the first, which this process checks
    # meanwhile: n jobs use n processes, and the children start without re-importing
    # anything (fork).
    with context.Pool(len(ranges) - 1) as pool:
        later = pool.starmap_async(
            _check_range_in_child,
            [(vendor, params, lo, hi, None, wanted) for lo, hi in ranges[1:]],
        )
        connection.ensure_connection()
        raw = connection.connection
        first_low, first_high = ranges[0]
        first = _check_range(
            raw, vendor, first_low, first_high, prev, wanted, raw_sqlite=vendor == "sqlite"
        )
        return [first, *later.get()]


def _check_range(
    raw: Any,
    vendor: str,
    low: int,
    high: int,
    prev: str | None,
    wanted: set[int],
    *,
    raw_sqlite: bool,
) -> Segment:
    def recheck(entry_id: int) -> str | None:
        return store.recheck_entry(raw, vendor, entry_id, raw_sqlite=raw_sqlite)

    def check(fast: bool) -> Segment:
        rows = store.stream_seals(raw, vendor, low, high, raw_sqlite=raw_sqlite, fast=fast)
        return check_segment(rows, first_seq=low, prev_hash=prev, wanted=wanted, recheck=recheck)

    try:
        return check(fast=True)
    except sqlite3.Error:
        # SQLite's json() refuses details that are not JSON at all (a row changed by
        # someone who also dropped the column's CHECK): the exact path reports it.
        return check(fast=False)


def _check_range_in_child(
    vendor: str, params: dict[str, Any], low: int, high: int, prev: str | None, wanted: set[int]
) -> Segment:
    """Runs in a forked process: opens its own read connection (never the parent's)."""
    raw = open_raw_connection(vendor, params)
    try:
        return _check_range(raw, vendor, low, high, prev, wanted, raw_sqlite=vendor == "sqlite")
    finally:
        raw.close()


def open_raw_connection(vendor: str, params: dict[str, Any]) -> Any:
    if vendor == "sqlite":
        return sqlite3.connect(f"file:{params['NAME']}?mode=ro", uri=True)
    import psycopg

    return psycopg.connect(
        dbname=params["NAME"],
        user=params.get("USER") or None,
        password=params.get("PASSWORD") or None,
        host=params.get("HOST") or None,
        port=params.get("PORT") or None,
    )
