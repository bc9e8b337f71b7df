"""``yakuba audit …``: verify, export, prune, checkpoint and seal the audit log.

    yakuba audit verify [--jobs N] [--public-key KEY]...   check the chain in the database
    yakuba audit verify --file FILE [--public-key KEY]     check an export, offline
    yakuba audit export --from DATE --to DATE [--output FILE]
    yakuba audit prune --before DATE
    yakuba audit checkpoint | seal | public-key

Exit status 0 when all is well, 1 when verification finds a problem (the message names
the first broken entry), 2 for bad arguments.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from yakuba.audit import keys
from yakuba.lib import clock


class Command(BaseCommand):
    help = "Verify, export, prune, checkpoint and seal the tamper-evident audit log."
    # System checks may read the database; `verify --file` must not touch it at all.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="subcommand", required=True)
        verify = sub.add_parser("verify", help="check the chain (or an export with --file)")
        verify.add_argument("--file", help="an export (JSON Lines) to check offline")
        verify.add_argument(
            "--public-key",
            action="append",
            default=[],
            help="a trusted public key: PEM file, or 64 hex characters (repeatable)",
        )
        verify.add_argument("--jobs", type=int, default=2, help="processes to use (default 2)")
        export = sub.add_parser("export", help="write entries of a period as JSON Lines")
        export.add_argument("--from", dest="start", required=True, help="YYYY-MM-DD (JST)")
        export.add_argument("--to", dest="end", required=True, help="YYYY-MM-DD, inclusive")
        export.add_argument("--output", help="file to write (default: standard output)")
        prune = sub.add_parser("prune", help="delete entries older than a date")
        prune.add_argument("--before", required=True, help="YYYY-MM-DD (JST): kept from here")
        sub.add_parser("checkpoint", help="sign the chain head now")
        sub.add_parser("seal", help="seal committed entries now")
        sub.add_parser("public-key", help="print the public key that verifies checkpoints")

    def handle(self, *args: Any, **options: Any) -> None:
        name = options["subcommand"].replace("-", "_")
        getattr(self, f"do_{name}")(options)

    # --- verify -----------------------------------------------------------------

    def do_verify(self, options: dict[str, Any]) -> None:
        trusted = [_public_key(value) for value in options["public_key"]]
        if options["file"]:
            self._verify_file(Path(options["file"]), trusted)
            return
        from yakuba.audit.verify import verify_database

        report = verify_database(extra_keys=trusted, jobs=max(1, options["jobs"]))
        if report.problem is not None:
            raise CommandError(f"audit log BROKEN at {report.problem}", returncode=1)
        rate = report.checked / report.seconds if report.seconds else 0.0
        self.stdout.write(
            f"audit log OK: {report.checked} seals verified (seq {report.first_seq}–"
            f"{report.last_seq}) in {report.seconds:.2f} s ({rate:,.0f}/s); "
            f"{report.checkpoints} checkpoints, last at seq {report.last_checkpoint_seq}; "
            f"chain head {report.head_hash[:16]}…; {report.pending} entries waiting to be sealed"
            + (f"; pruned up to seq {report.anchor_seq}" if report.anchor_seq else "")
        )
        if report.last_checkpoint_seq is not None and report.last_seq > report.last_checkpoint_seq:
            self.stdout.write(
                f"note: {report.last_seq - report.last_checkpoint_seq} seals after the last "
                "checkpoint are chained but not yet signed"
            )
        for note in report.notes:
            self.stdout.write(f"note: {note}")

    def _verify_file(self, path: Path, trusted: list[str]) -> None:
        """Offline: reads only the file (the database is never opened)."""
        from yakuba.audit.export import verify_export_file

        try:
            with path.open(encoding="utf-8") as lines:
                report = verify_export_file(lines, trusted)
        except OSError as exc:
            raise CommandError(f"cannot read {path}: {exc.strerror}", returncode=2) from exc
        if report.problem is not None:
            raise CommandError(f"export BROKEN at {report.problem}", returncode=1)
        self.stdout.write(
            f"export OK: {report.seals} seals verified (seq {report.first_seq}–"
            f"{report.last_seq}), {report.in_range} entries in {report.period[0]} – "
            f"{report.period[1]}, {report.checkpoints} signed checkpoints"
        )
        fingerprints = ", ".join(keys.fingerprint(k)[:16] for k in sorted(report.keys_seen))
        if report.pinned:
            self.stdout.write(f"signed by the trusted key(s): {fingerprints}")
        else:
            self.stdout.write(
                f"note: signatures were checked against the key(s) in the file ({fingerprints}); "
                "pass --public-key with the ward's public key to prove who signed"
            )

    # --- the rest -----------------------------------------------------------------

    def do_export(self, options: dict[str, Any]) -> None:
        from yakuba.audit.actions import command_actor, do_record_export
        from yakuba.audit.export import write_export

        start = _moment(options["start"], "--from")
        end = _moment(options["end"], "--to", end_of_day=True)
        if end <= start:
            raise CommandError("--to must be after --from", returncode=2)
        do_record_export(
            actor=command_actor(),
            details={
                "format": "jsonl",
                "from": start.isoformat(),
                "to": end.isoformat(),
                "output": options["output"] or "-",
            },
        )
        if options["output"]:
            with open(options["output"], "w", encoding="utf-8") as out:
                summary = write_export(out, start, end)
            self.stdout.write(
                f"exported {summary.in_range} entries ({summary.lines} lines, seq "
                f"{summary.first_seq}–{summary.last_seq}) to {options['output']}"
            )
        else:
            write_export(self.stdout, start, end)

    def do_prune(self, options: dict[str, Any]) -> None:
        from yakuba.audit.actions import command_actor, do_prune

        before = _moment(options["before"], "--before")
        result = do_prune(before=before, actor=command_actor())
        if result.anchor is None:
            self.stdout.write("nothing to prune")
            return
        self.stdout.write(
            f"pruned {result.entries_deleted} entries; the chain now starts after seq "
            f"{result.anchor.seq} (signed anchor #{result.anchor.pk})"
        )

    def do_checkpoint(self, options: dict[str, Any]) -> None:
        from yakuba.audit.actions import command_actor, do_make_checkpoint

        checkpoint = do_make_checkpoint(actor=command_actor())
        assert checkpoint is not None
        self.stdout.write(
            f"checkpoint #{checkpoint.pk}: seq {checkpoint.seq}, hash {checkpoint.hash}, "
            f"key {checkpoint.key_fingerprint[:16]}…"
        )

    def do_seal(self, options: dict[str, Any]) -> None:
        from yakuba.audit.actions import seal_now

        self.stdout.write(f"sealed {seal_now()} entries")

    def do_public_key(self, options: dict[str, Any]) -> None:
        key = keys.signing_key()
        self.stdout.write(keys.public_pem(key).rstrip())
        self.stdout.write(f"fingerprint: {keys.fingerprint(keys.public_hex(key))}")


def _public_key(value: str) -> str:
    path = Path(value)
    try:
        text = path.read_text(encoding="utf-8") if path.is_file() else value
        return keys.parse_public_key(text)
    except (OSError, keys.SigningKeyError) as exc:
        raise CommandError(f"--public-key {value}: {exc}", returncode=2) from exc


def _moment(value: str, option: str, *, end_of_day: bool = False) -> dt.datetime:
    """A date (JST midnight; with ``end_of_day``, the next midnight) or an ISO time."""
    try:
        if len(value) == 10:
            day = dt.date.fromisoformat(value)
            if end_of_day:
                day += dt.timedelta(days=1)
            return dt.datetime.combine(day, dt.time(), tzinfo=clock.TOKYO)
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise CommandError(
            f"{option} {value!r}: give a date as YYYY-MM-DD (or an ISO date and time)",
            returncode=2,
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=clock.TOKYO)
