"""The hash chain, in pure Python: no database, no Django models.

Each seal holds ``hash = SHA-256(prev_hash + canonical JSON of the entry)`` as lowercase
hex, where the canonical JSON has sorted keys, no spaces, non-ASCII characters as UTF-8
(not ``\\u`` escapes), times in UTC as ``YYYY-MM-DDTHH:MM:SS.ffffffZ``, and these keys:
action, actor_id, actor_kind, actor_label, details, id, occurred_at, source_ip,
target_id, target_label, target_type.  The first seal's ``prev_hash`` is
``GENESIS_HASH`` (or, after pruning, the hash in the signed prune anchor).

This module is what offline verification runs, so it must never import the ORM.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable, Container, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

GENESIS_HASH = "0" * 64
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
ENTRY_KEYS = (
    "action",
    "actor_id",
    "actor_kind",
    "actor_label",
    "details",
    "id",
    "occurred_at",
    "source_ip",
    "target_id",
    "target_label",
    "target_type",
)

_encode = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode

# A stored entry as the chain sees it: (id, occurred_at text, actor_kind, actor_id,
# actor_label, action, target_type, target_id, target_label, details JSON text, source_ip).
EntryFields = tuple[int, str, str, int | None, str, str, str, str, str, str, str | None]


def format_time(moment: dt.datetime) -> str:
    """A time in the chain's fixed format (UTC, microseconds, ``Z``)."""
    return moment.astimezone(dt.UTC).strftime(TIME_FORMAT)


def canonical_json(value: Any) -> str:
    """``value`` as canonical JSON text."""
    return _encode(value)


def entry_dict(fields: EntryFields) -> dict[str, Any]:
    """The canonical mapping of a stored entry (what export writes per entry)."""
    (entry_id, occurred_at, actor_kind, actor_id, actor_label, action) = fields[:6]
    (target_type, target_id, target_label, details, source_ip) = fields[6:]
    return {
        "action": action,
        "actor_id": actor_id,
        "actor_kind": actor_kind,
        "actor_label": actor_label,
        "details": json.loads(details),
        "id": entry_id,
        "occurred_at": occurred_at,
        "source_ip": source_ip,
        "target_id": target_id,
        "target_label": target_label,
        "target_type": target_type,
    }


def entry_hash(prev_hash: str, canonical: str) -> str:
    return hashlib.sha256((prev_hash + canonical).encode()).hexdigest()


def hash_entry(prev_hash: str, entry: Mapping[str, Any]) -> str:
    """The seal hash of ``entry`` (a mapping with exactly ``ENTRY_KEYS``)."""
    return entry_hash(prev_hash, canonical_json(entry))


@dataclass(frozen=True)
class Problem:
    """The first thing found wrong: where, and what, in words an operator can act on."""

    seq: int
    entry_id: int | None
    message: str

    def __str__(self) -> str:
        where = f"seq {self.seq}" + (
            f" (entry id {self.entry_id})" if self.entry_id is not None else ""
        )
        return f"{where}: {self.message}"


@dataclass
class Segment:
    """The result of checking a run of consecutive seals."""

    first_seq: int
    last_seq: int = 0
    count: int = 0
    first_prev: str | None = None
    last_hash: str | None = None
    problem: Problem | None = None
    # Hashes at the seqs the caller asked for (checkpoints), to compare with signatures.
    hashes_at: dict[int, str] = field(default_factory=dict)


# One seal as the checker reads it: (seq, prev_hash, hash, entry_id, the UTF-8 bytes
# its hash covers, i.e. prev_hash + canonical JSON, or None when the entry is gone).
SealRow = tuple[int, str, str, int, bytes | None]
Recheck = Callable[[int], str | None]


def check_segment(
    rows: Iterable[SealRow],
    *,
    first_seq: int,
    prev_hash: str | None,
    wanted: Container[int] = (),
    recheck: Recheck | None = None,
) -> Segment:
    """Check seals that should run ``first_seq, first_seq + 1, …`` in order.

    ``prev_hash`` is the hash the first seal must follow (None: accept whatever it
    says; the caller links segments).  ``recheck(entry_id)`` returns the canonical JSON
    built by the slow, exact path, for rows whose fast canonical text did not match
    (e.g. details stored in a non-canonical form); without it a mismatch is a problem.
    Stops at the first problem.
    """
    segment = Segment(first_seq=first_seq)
    sha256 = hashlib.sha256
    expected_seq = first_seq
    last = prev_hash
    count = 0
    for seq, prev, stored, entry_id, preimage in rows:
        if seq != expected_seq:
            segment.problem = _gap(expected_seq, seq, entry_id)
            break
        if last is None:
            segment.first_prev = last = prev
        elif prev != last:
            segment.problem = Problem(
                seq,
                entry_id,
                "the chain link is broken: this seal does not follow the hash of the one "
                "before it (entries were reordered, or an entry and its seal were removed "
                "and the chain re-linked)",
            )
            break
        if preimage is None:
            segment.problem = Problem(
                seq, entry_id, "the entry was deleted (its seal remains, its row is gone)"
            )
            break
        if sha256(preimage).hexdigest() != stored:
            exact = recheck(entry_id) if recheck is not None else None
            if exact is None or entry_hash(prev, exact) != stored:
                segment.problem = Problem(
                    seq,
                    entry_id,
                    "the entry's content differs from what was sealed (edited after sealing)",
                )
                break
        if seq in wanted:
            segment.hashes_at[seq] = stored
        last = stored
        expected_seq += 1
        count += 1
    segment.count = count
    segment.last_seq = expected_seq - 1
    segment.last_hash = last
    if segment.first_prev is None:
        segment.first_prev = prev_hash
    return segment


def _gap(expected: int, found: int, entry_id: int) -> Problem:
    if found < expected:
        return Problem(found, entry_id, f"seal seq {found} appears out of order (reordered)")
    return Problem(
        expected,
        None,
        f"seals {expected}–{found - 1} are missing: entries and their seals were deleted "
        f"(the next remaining seal is seq {found}, entry id {entry_id})",
    )


def link_segments(segments: list[Segment]) -> Problem | None:
    """The first problem across consecutive segments checked separately (in parallel)."""
    for index, segment in enumerate(segments):
        if index > 0:
            before = segments[index - 1]
            if segment.count and segment.first_prev != before.last_hash:
                return Problem(
                    segment.first_seq,
                    None,
                    "the chain link is broken: this seal does not follow the hash of the "
                    "one before it (entries reordered or removed)",
                )
        if segment.problem is not None:
            return segment.problem
    return None
