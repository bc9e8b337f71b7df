"""Raw SQL over the audit tables, shared by the sealer and the verifier.

The chain is read with plain DB-API cursors, not the ORM: verification streams a
million rows, and building model instances would cost more than hashing them.  Every
query turns stored values into the chain's text forms (UTC time string, JSON text, IP
text) in SQL, so both databases hand Python the same shapes.  Placeholders are written
``%s`` (Django and psycopg) and turned into ``?`` for a raw sqlite3 cursor.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from yakuba.audit.chain import EntryFields, SealRow, canonical_json, entry_dict


def time_text(vendor: str, column: str) -> str:
    """SQL that renders a datetime column in the chain's time format."""
    if vendor == "sqlite":
        # Django stores "YYYY-MM-DD HH:MM:SS[.ffffff]" (naive UTC) in SQLite.
        return (
            f"CASE length({column}) WHEN 26 THEN replace({column}, ' ', 'T') || 'Z' "
            f"WHEN 19 THEN replace({column}, ' ', 'T') || '.000000Z' ELSE {column} END"
        )
    return f"to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"


_TIME = {vendor: time_text(vendor, "e.occurred_at") for vendor in ("sqlite", "postgresql")}
_DETAILS = {"sqlite": "e.details", "postgresql": "e.details::text"}
_IP = {"sqlite": "e.source_ip", "postgresql": "host(e.source_ip)"}

# SQLite builds the canonical JSON itself: json_object() writes compact JSON with the
# keys in the order given (sorted here) and escapes strings as Python's encoder does
# for ordinary text; details are stored canonical.  The hash input (prev_hash, then
# the JSON) comes back as bytes, ready for SHA-256.  A row whose fast text differs
# from the exact canonical form is rechecked the exact way before it is called
# broken, so this is only a fast path; and as SQLite escapes every string, no field's
# content can pass for another's.
_SQLITE_PREIMAGE = (
    "CASE WHEN e.id IS NULL THEN NULL ELSE CAST(s.prev_hash || json_object("
    "'action', e.action, 'actor_id', e.actor_id, 'actor_kind', e.actor_kind, "
    "'actor_label', e.actor_label, 'details', json(e.details), 'id', e.id, "
    "'occurred_at', " + _TIME["sqlite"] + ", 'source_ip', e.source_ip, "
    "'target_id', e.target_id, 'target_label', e.target_label, "
    "'target_type', e.target_type) AS BLOB) END"
)
_SEALS = (
    "FROM audit_auditseal s LEFT JOIN audit_auditentry e ON e.id = s.entry_id "
    "WHERE s.seq BETWEEN %s AND %s ORDER BY s.seq"
)


def entry_columns(vendor: str) -> str:
    return (
        f"e.id, {_TIME[vendor]}, e.actor_kind, e.actor_id, e.actor_label, e.action, "
        f"e.target_type, e.target_id, e.target_label, {_DETAILS[vendor]}, {_IP[vendor]}"
    )


def placeholders(sql: str, raw_sqlite: bool) -> str:
    return sql.replace("%s", "?") if raw_sqlite else sql


def fetch_entries(cursor: Any, vendor: str, ids: Sequence[int]) -> list[EntryFields]:
    """Entries by id, in id order (Django cursor)."""
    marks = ", ".join(["%s"] * len(ids))
    cursor.execute(
        f"SELECT {entry_columns(vendor)} FROM audit_auditentry e "  # noqa: S608 - fixed SQL
        f"WHERE e.id IN ({marks}) ORDER BY e.id",
        list(ids),
    )
    return [tuple(row) for row in cursor.fetchall()]


def canonical_of(fields: EntryFields) -> str:
    return canonical_json(entry_dict(fields))


def stream_seals(
    connection: Any, vendor: str, low: int, high: int, *, raw_sqlite: bool, fast: bool = True
) -> Iterator[SealRow]:
    """Seals with ``low <= seq <= high`` in seq order, each with the bytes its hash
    covers (prev_hash + canonical JSON; None when the entry row is missing).
    ``connection`` is a DB-API connection; ``fast`` lets SQLite build the JSON."""
    cursor = connection.cursor()
    if vendor == "sqlite" and fast:
        sql = f"SELECT s.seq, s.prev_hash, s.hash, s.entry_id, {_SQLITE_PREIMAGE} {_SEALS}"
        cursor.execute(placeholders(sql, raw_sqlite), (low, high))
        yield from cursor
        return
    sql = f"SELECT s.seq, s.prev_hash, s.hash, s.entry_id, {entry_columns(vendor)} {_SEALS}"
    cursor.execute(placeholders(sql, raw_sqlite), (low, high))
    while rows := cursor.fetchmany(5000):
        for row in rows:
            yield (row[0], row[1], row[2], row[3], _preimage(row[1], row[4:]))


def _preimage(prev_hash: str, fields: Sequence[Any]) -> bytes | None:
    if fields[0] is None:
        return None
    try:
        return (prev_hash + canonical_of(tuple(fields))).encode()
    except (TypeError, ValueError):
        return b"(malformed entry)"


def recheck_entry(connection: Any, vendor: str, entry_id: int, *, raw_sqlite: bool) -> str | None:
    """The exact canonical JSON of one entry (the slow path), or None if it is gone."""
    cursor = connection.cursor()
    cursor.execute(
        placeholders(
            f"SELECT {entry_columns(vendor)} FROM audit_auditentry e WHERE e.id = %s",  # noqa: S608
            raw_sqlite,
        ),
        (entry_id,),
    )
    row = cursor.fetchone()
    if row is None:
        return None
    try:
        return canonical_of(tuple(row))
    except (TypeError, ValueError):
        return None


def seq_bounds(cursor: Any) -> tuple[int, int]:
    """The lowest and highest seal seq (0, 0 when there are none)."""
    # Two subqueries: SQLite answers a lone min() or max() from the end of the index,
    # but scans the whole index for both in one SELECT (0.17 s per million seals).
    cursor.execute(
        "SELECT COALESCE((SELECT min(seq) FROM audit_auditseal), 0), "
        "COALESCE((SELECT max(seq) FROM audit_auditseal), 0)"
    )
    low, high = cursor.fetchone()
    return int(low), int(high)
