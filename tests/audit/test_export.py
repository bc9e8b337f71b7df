"""`yakuba audit export` writes a self-proving JSON Lines file, and `verify --file`
checks it with no database at all."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management.base import CommandError

from tests.audit.conftest import SIGNING_SEED, audit, make_activity
from yakuba.audit import keys
from yakuba.audit.models import AuditAction, AuditEntry
from yakuba.directory.models import User
from yakuba.lib import clock

PUBLIC_KEY = keys.public_hex(keys.parse_private_key(SIGNING_SEED))
APRIL = dt.datetime(2025, 4, 10, 9, 0, tzinfo=clock.TOKYO)


@pytest.fixture
def export_file(alice: User, bob: User, tmp_path: Path) -> Path:
    """March and April activity; the export asks for April only."""
    with clock.frozen_at(APRIL - dt.timedelta(days=30)):
        make_activity(bob, 3, prefix="M")
        audit("checkpoint")
    with clock.frozen_at(APRIL):
        make_activity(alice, 5, prefix="A")
    with clock.frozen_at(APRIL + dt.timedelta(days=40)):
        make_activity(bob, 2, prefix="N")
        path = tmp_path / "april.jsonl"
        out = audit("export", "--from", "2025-04-01", "--to", "2025-04-30", "--output", str(path))
    assert "exported 5 entries" in out
    return path


def lines_of(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_it_exports_a_period_with_the_checkpoints_that_prove_it(export_file: Path) -> None:
    lines = lines_of(export_file)
    assert lines[0]["type"] == "header"
    assert lines[0]["start"]["kind"] == "checkpoint"  # type: ignore[index]
    seals = [line for line in lines if line["type"] == "seal"]
    in_range = [line for line in seals if line["in_range"]]
    assert [line["entry"]["target_label"] for line in in_range] == [  # type: ignore[index]
        f"検証用係{n}" for n in range(5)
    ]
    assert all(line["entry"]["actor_label"].startswith("青木 愛") for line in in_range)  # type: ignore[index]
    assert sum(line["type"] == "checkpoint" for line in lines) == 2
    export = AuditEntry.objects.get(action=AuditAction.AUDIT_EXPORTED)
    assert export.details["format"] == "jsonl"
    assert export.details["from"].startswith("2025-04-01T00:00:00+09:00")


def test_it_verifies_an_export_offline_without_any_database(export_file: Path) -> None:
    """The CLI is run with a database that does not exist: it must never be opened."""
    environment = {
        **os.environ,
        "DATABASE_URL": "postgresql://nobody@127.0.0.1:9/no_database_here",
        "YAKUBA_AUDIT_SIGNING_KEY": "",
    }
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "yakuba.cli",
            "audit",
            "verify",
            "--file",
            str(export_file),
            "--public-key",
            PUBLIC_KEY,
        ],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "export OK" in done.stdout
    assert "5 entries in 2025-03-31T15:00:00.000000Z" in done.stdout
    assert "signed by the trusted key" in done.stdout


def test_it_catches_a_tampered_export_line(
    export_file: Path, django_db_blocker: pytest.FixtureRequest
) -> None:
    lines = export_file.read_text(encoding="utf-8").splitlines()
    victim = next(i for i, line in enumerate(lines) if '"in_range":true' in line)
    lines[victim] = lines[victim].replace("青木 愛", "坂東 歩")
    export_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    seq = json.loads(lines[victim])["seq"]
    with django_db_blocker.block(), pytest.raises(CommandError) as failure:  # type: ignore[attr-defined]
        audit("verify", "--file", str(export_file), "--public-key", PUBLIC_KEY)
    assert failure.value.returncode == 1
    assert f"seq {seq}" in str(failure.value)
    assert "differs from what was sealed" in str(failure.value)


def test_it_catches_a_removed_export_line(export_file: Path) -> None:
    lines = export_file.read_text(encoding="utf-8").splitlines()
    victim = next(i for i, line in enumerate(lines) if '"in_range":true' in line)
    seq = json.loads(lines[victim])["seq"]
    del lines[victim]
    export_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(CommandError) as failure:
        audit("verify", "--file", str(export_file))
    assert f"seq {seq}" in str(failure.value)
    assert "missing or out of order" in str(failure.value)


def test_it_refuses_an_export_signed_by_another_key(export_file: Path) -> None:
    other = keys.public_hex(keys.parse_private_key("11" * 32))
    with pytest.raises(CommandError, match="untrusted key"):
        audit("verify", "--file", str(export_file), "--public-key", other)


def test_it_exports_to_standard_output(alice: User) -> None:
    with clock.frozen_at(APRIL):
        make_activity(alice, 2, prefix="A")
        out = audit("export", "--from", "2025-04-10", "--to", "2025-04-10")
    lines = [json.loads(line) for line in out.splitlines()]
    assert lines[0]["format"] == "yakuba-audit-export"
    # The two actions, and the export itself (recorded before it is written).
    actions = [line["entry"]["action"] for line in lines if line.get("in_range")]
    assert actions == ["directory.department_created"] * 2 + ["audit.exported"]
