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
            f"substr({column}, 1, 10) || 'T' || substr({column}, 12, 8) || "
            f"CASE WHEN length({column}) > 19 THEN substr({column}, 20, 7) "
            "ELSE '.000000' END || 'Z'"
        )
    return f"to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"


_TIME = {vendor: time_text(vendor, "e.occurred_at") for vendor in ("sqlite", "postgresql")}
_DETAILS = {"sqlite": "e.details", "postgresql": "e.details::text"}
_IP = {"sqlite": "e.source_ip", "postgresql": "host(e.source_ip)"}

# SQLite builds the canonical JSON itself (json_quote escapes as Python's encoder does
# for ordinary text, and details are stored canonical).  Any row where the two differ
# is rechecked the exact way before it is called broken, so this is only a fast path.
_SQLITE_CANONICAL = (
    "'{\"action\":' || json_quote(e.action) || ',\"actor_id\":' || "
    "COALESCE(e.actor_id, 'null') || ',\"actor_kind\":' || json_quote(e.actor_kind) || "
    "',\"actor_label\":' || json_quote(e.actor_label) || ',\"details\":' || e.details || "
    "',\"id\":' || e.id || ',\"occurred_at\":\"' || " + _TIME["sqlite"] + " || '\"' || "
    "',\"source_ip\":' || json_quote(e.source_ip) || ',\"target_id\":' || "
    "json_quote(e.target_id) || ',\"target_label\":' || json_quote(e.target_label) || "
    "',\"target_type\":' || json_quote(e.target_type) || '}'"
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
    return [tuple(row) for row in cursor.fetchall()]  # type: ignore[misc]  # DB-API rows


def canonical_of(fields: EntryFields) -> str:
    return canonical_json(entry_dict(fields))


def stream_seals(
    connection: Any, vendor: str, low: int, high: int, *, raw_sqlite: bool
) -> Iterator[SealRow]:
    """Seals with ``low <= seq <= high`` in seq order, each with its entry's canonical
    JSON (None when the entry row is missing).  ``connection`` is a DB-API connection."""
    cursor = connection.cursor()
    if vendor == "sqlite":
        cursor.execute(
            placeholders(
                f"SELECT s.seq, s.prev_hash, s.hash, s.entry_id, {_SQLITE_CANONICAL} "  # noqa: S608
                "FROM audit_auditseal s LEFT JOIN audit_auditentry e ON e.id = s.entry_id "
                "WHERE s.seq BETWEEN %s AND %s ORDER BY s.seq",
                raw_sqlite,
            ),
            (low, high),
        )
        yield from cursor
        return
    cursor.execute(
        f"SELECT s.seq, s.prev_hash, s.hash, s.entry_id, {entry_columns(vendor)} "  # noqa: S608
        "FROM audit_auditseal s LEFT JOIN audit_auditentry e ON e.id = s.entry_id "
        "WHERE s.seq BETWEEN %s AND %s ORDER BY s.seq",
        (low, high),
    )
    while rows := cursor.fetchmany(5000):
        for row in rows:
            fields = row[4:]
            yield (
                row[0],
                row[1],
                row[2],
                row[3],
                None if fields[0] is None else canonical_of(tuple(fields)),  # type: ignore[arg-type]
            )


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
        return canonical_of(tuple(row))  # type: ignore[arg-type]  # DB-API row
    except (TypeError, ValueError):
        return None


def seq_bounds(cursor: Any) -> tuple[int, int]:
    """The lowest and highest seal seq (0, 0 when there are none)."""
    cursor.execute("SELECT COALESCE(min(seq), 0), COALESCE(max(seq), 0) FROM audit_auditseal")
    low, high = cursor.fetchone()
    return int(low), int(high)
