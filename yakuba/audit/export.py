"""Exports of the audit log as JSON Lines, and their offline verification.

An export is self-proving: it holds every seal (with its entry) from a signed starting
point (the last checkpoint or prune anchor before the requested period, or the
genesis) to a signed checkpoint at or after the period's end, plus every checkpoint in
between.  Entries outside the requested period that this needs are marked
``"in_range": false``.  Lines, in order::

    {"type": "header", "format": "yakuba-audit-export", "version": 1, ...,
     "start": {"kind": "genesis" | "checkpoint" | "prune_anchor", "seq": N, "hash": H}}
    {"type": "checkpoint" | "prune_anchor", "seq": ..., "hash": ..., "signature": ...}
    {"type": "seal", "seq": ..., "prev_hash": ..., "hash": ..., "sealed_at": ...,
     "in_range": true, "entry": {...the canonical entry...}}

``verify_export_file`` needs nothing but the file (and, ideally, the ward's public key):
it must never touch the database, so it imports no models.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from yakuba.audit import keys
from yakuba.audit.chain import (
    ENTRY_KEYS,
    GENESIS_HASH,
    Problem,
    entry_dict,
    format_time,
    hash_entry,
)

if TYPE_CHECKING:
    from _typeshed import SupportsWrite

FORMAT = "yakuba-audit-export"
VERSION = 1


# --- Writing (needs the database) ---------------------------------------------------


@dataclass(frozen=True)
class ExportSummary:
    in_range: int
    lines: int
    first_seq: int
    last_seq: int


def write_export(out: SupportsWrite[str], start: dt.datetime, end: dt.datetime) -> ExportSummary:
    """Write entries that happened in ``[start, end)`` (sealed ones), with the chain
    and checkpoints that prove them, to ``out``.  Seals what is pending first, and
    makes a checkpoint when none covers the end of the period yet (that is audited)."""
    from django.db import connection

    from yakuba.audit import store
    from yakuba.audit.actions import command_actor, do_make_checkpoint
    from yakuba.audit.models import AuditCheckpoint, AuditPruneAnchor
    from yakuba.audit.sealer import seal_pending

    seal_pending()
    vendor = connection.vendor
    adapt = connection.ops.adapt_datetimefield_value
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT min(s.seq), max(s.seq) FROM audit_auditseal s JOIN audit_auditentry e "
            "ON e.id = s.entry_id WHERE e.occurred_at >= %s AND e.occurred_at < %s",
            [adapt(start), adapt(end)],
        )
        low, high = cursor.fetchone()
    header: dict[str, Any] = {
        "type": "header",
        "format": FORMAT,
        "version": VERSION,
        "from": format_time(start),
        "to": format_time(end),
    }
    if low is None:
        header.update(start=None, first_seq=None, last_seq=None)
        out.write(_line(header))
        return ExportSummary(0, 1, 0, 0)
    anchor = AuditPruneAnchor.objects.filter(seq__lt=low).order_by("-seq").first()
    floor = anchor.seq if anchor else 0
    before = AuditCheckpoint.objects.filter(seq__lt=low, seq__gte=floor).order_by("-seq").first()
    closing = AuditCheckpoint.objects.filter(seq__gte=high).order_by("seq").first()
    if closing is None:
        closing = do_make_checkpoint(actor=command_actor())
        assert closing is not None
    start_ref: Any = before if before is not None and before.seq > floor else anchor
    first = start_ref.seq + 1 if start_ref is not None else 1
    header.update(
        start=_start(start_ref),
        first_seq=first,
        last_seq=closing.seq,
    )
    out.write(_line(header))
    lines = 1
    if isinstance(start_ref, AuditPruneAnchor):
        out.write(_line(_anchor_line(start_ref)))
        lines += 1
    for checkpoint in AuditCheckpoint.objects.filter(
        seq__gte=start_ref.seq if start_ref else 0, seq__lte=closing.seq
    ).order_by("seq", "id"):
        out.write(_line(_checkpoint_line(checkpoint)))
        lines += 1
    in_range = 0
    window = (format_time(start), format_time(end))
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT s.seq, s.prev_hash, s.hash, {store.time_text(vendor, 's.sealed_at')}, "  # noqa: S608
            f"{store.entry_columns(vendor)} FROM audit_auditseal s "
            "JOIN audit_auditentry e ON e.id = s.entry_id "
            "WHERE s.seq BETWEEN %s AND %s ORDER BY s.seq",
            [first, closing.seq],
        )
        while rows := cursor.fetchmany(2000):
            for row in rows:
                entry = entry_dict(tuple(row[4:]))
                inside = window[0] <= entry["occurred_at"] < window[1]
                in_range += inside
                out.write(
                    _line(
                        {
                            "type": "seal",
                            "seq": row[0],
                            "prev_hash": row[1],
                            "hash": row[2],
                            "sealed_at": row[3],
                            "in_range": inside,
                            "entry": entry,
                        }
                    )
                )
                lines += 1
    return ExportSummary(in_range, lines, first, closing.seq)


def _line(value: dict[str, Any]) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")) + "\n"


def _start(ref: Any) -> dict[str, Any]:
    from yakuba.audit.models import AuditPruneAnchor

    if ref is None:
        return {"kind": "genesis", "seq": 0, "hash": GENESIS_HASH}
    kind = "prune_anchor" if isinstance(ref, AuditPruneAnchor) else "checkpoint"
    return {"kind": kind, "seq": ref.seq, "hash": ref.hash}


def _checkpoint_line(checkpoint: Any) -> dict[str, Any]:
    return {
        "type": "checkpoint",
        "id": checkpoint.pk,
        "seq": checkpoint.seq,
        "hash": checkpoint.hash,
        "time": format_time(checkpoint.created_at),
        "key_fingerprint": checkpoint.key_fingerprint,
        "public_key": checkpoint.public_key,
        "signature": checkpoint.signature,
    }


def _anchor_line(anchor: Any) -> dict[str, Any]:
    return {
        "type": "prune_anchor",
        "id": anchor.pk,
        "seq": anchor.seq,
        "hash": anchor.hash,
        "time": format_time(anchor.created_at),
        "before": format_time(anchor.before),
        "max_entry_id": anchor.max_entry_id,
        "key_fingerprint": anchor.key_fingerprint,
        "public_key": anchor.public_key,
        "signature": anchor.signature,
    }


# --- Offline verification (no database) -----------------------------------------------


@dataclass
class FileReport:
    problem: Problem | None = None
    seals: int = 0
    in_range: int = 0
    checkpoints: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    keys_seen: set[str] = field(default_factory=set)
    pinned: bool = False
    period: tuple[str, str] = ("", "")

    @property
    def ok(self) -> bool:
        return self.problem is None


class _Broken(Exception):
    def __init__(self, problem: Problem) -> None:
        self.problem = problem


def verify_export_file(lines: Iterable[str], trusted_keys: Iterable[str] = ()) -> FileReport:
    """Check an export offline.  With ``trusted_keys`` (hex public keys) every signature
    must come from one of them; without, signatures are checked against the keys the
    file carries, which proves integrity but not who signed (the report says so)."""
    trusted = set(trusted_keys)
    report = FileReport(pinned=bool(trusted))
    try:
        _verify_lines(_parse(lines), trusted, report)
    except _Broken as broken:
        report.problem = broken.problem
    return report


def _parse(lines: Iterable[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            value = json.loads(text)
        except ValueError:
            raise _Broken(Problem(0, None, f"line {number} is not valid JSON")) from None
        if not isinstance(value, dict):
            raise _Broken(Problem(0, None, f"line {number} is not a JSON object"))
        yield number, value


def _verify_lines(
    lines: Iterator[tuple[int, dict[str, Any]]], trusted: set[str], report: FileReport
) -> None:
    first = next(lines, None)
    if first is None or first[1].get("type") != "header" or first[1].get("format") != FORMAT:
        raise _Broken(Problem(0, None, "line 1 is not a yakuba-audit-export header"))
    header = first[1]
    report.period = (str(header.get("from")), str(header.get("to")))
    start = header.get("start")
    if start is None:
        return
    signed: dict[int, str] = {}
    expected_seq = int(start["seq"]) + 1
    last_hash = str(start["hash"])
    for number, line in lines:
        kind = line.get("type")
        if kind in ("checkpoint", "prune_anchor"):
            _check_signed(number, line, trusted, report)
            signed[int(line["seq"])] = str(line["hash"])
            continue
        if kind != "seal":
            raise _Broken(Problem(0, None, f"line {number} has unknown type {kind!r}"))
        last_hash = _check_seal(number, line, expected_seq, last_hash, report)
        if signed.get(expected_seq, last_hash) != last_hash:
            raise _Broken(
                Problem(
                    expected_seq,
                    line["entry"].get("id"),
                    f"line {number}: a signed checkpoint holds a different hash for this seq "
                    "(entries up to here were changed and the chain recomputed)",
                )
            )
        expected_seq += 1
    last_seq = expected_seq - 1
    report.first_seq, report.last_seq = int(start["seq"]) + 1, last_seq
    _check_ends(start, signed, last_seq, last_hash, header)


def _check_signed(number: int, line: dict[str, Any], trusted: set[str], report: FileReport) -> None:
    public = str(line.get("public_key", ""))
    if line["type"] == "checkpoint":
        fields = keys.checkpoint_fields(
            int(line["seq"]), str(line["hash"]), str(line["time"]), str(line["key_fingerprint"])
        )
    else:
        fields = keys.anchor_fields(
            int(line["seq"]),
            str(line["hash"]),
            str(line["time"]),
            str(line["key_fingerprint"]),
            before=str(line["before"]),
            max_entry_id=int(line["max_entry_id"]),
        )
    where = f"{line['type']} on line {number}"
    if trusted and public not in trusted:
        raise _Broken(Problem(int(line["seq"]), None, f"{where} is signed by an untrusted key"))
    if keys.fingerprint(public) != line["key_fingerprint"] or not keys.signature_valid(
        public, fields, str(line.get("signature", ""))
    ):
        raise _Broken(Problem(int(line["seq"]), None, f"{where} has an invalid signature"))
    report.keys_seen.add(public)
    report.checkpoints += line["type"] == "checkpoint"


def _check_seal(
    number: int, line: dict[str, Any], expected_seq: int, last_hash: str, report: FileReport
) -> str:
    seq = int(line["seq"])
    entry = line.get("entry")
    entry_id = entry.get("id") if isinstance(entry, dict) else None
    if seq != expected_seq:
        raise _Broken(
            Problem(
                expected_seq,
                None,
                f"line {number} holds seq {seq}: seals are missing or out of order",
            )
        )
    if line["prev_hash"] != last_hash:
        raise _Broken(
            Problem(
                seq, entry_id, f"line {number}: the chain link is broken (reordered or removed)"
            )
        )
    if not isinstance(entry, dict) or set(entry) != set(ENTRY_KEYS):
        raise _Broken(Problem(seq, entry_id, f"line {number}: the entry is malformed"))
    if hash_entry(last_hash, entry) != line["hash"]:
        raise _Broken(
            Problem(seq, entry_id, f"line {number}: the entry differs from what was sealed")
        )
    report.seals += 1
    report.in_range += bool(line.get("in_range"))
    return str(line["hash"])


def _check_ends(
    start: dict[str, Any],
    signed: dict[int, str],
    last_seq: int,
    last_hash: str,
    header: dict[str, Any],
) -> None:
    if start["kind"] != "genesis" and signed.get(int(start["seq"])) != start["hash"]:
        raise _Broken(Problem(int(start["seq"]), None, "the export's starting point is not signed"))
    if start["kind"] == "genesis" and (start["seq"] != 0 or start["hash"] != GENESIS_HASH):
        raise _Broken(Problem(0, None, "the export claims a genesis start that is not one"))
    if header.get("last_seq") is not None and last_seq != int(header["last_seq"]):
        raise _Broken(
            Problem(
                last_seq + 1,
                None,
                f"the export was truncated: it ends at seq {last_seq}, "
                f"its header says {header['last_seq']}",
            )
        )
    if signed.get(last_seq) != last_hash:
        raise _Broken(
            Problem(last_seq, None, "no signed checkpoint confirms the end of the export")
        )
