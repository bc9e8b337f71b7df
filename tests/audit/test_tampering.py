"""Every kind of tampering is caught by `yakuba audit verify`, which names the first
broken entry (seq, id and what is wrong) and exits non-zero."""

from __future__ import annotations

import pytest
from django.core.management.base import CommandError
from django.db import DatabaseError, transaction

from tests.audit.conftest import as_attacker, audit, make_activity, run_sql, seal_of
from yakuba.audit.chain import entry_dict, hash_entry
from yakuba.audit.models import AuditAction, AuditCheckpoint, AuditEntry, AuditSeal
from yakuba.audit.sealer import seal_pending
from yakuba.audit.store import entry_columns
from yakuba.directory.models import User


@pytest.fixture
def sealed_log(alice: User) -> None:
    """Eight of Alice's actions, sealed, then a checkpoint (which adds its own entry)."""
    make_activity(alice, 8)
    audit("checkpoint")
    seal_pending()


def verify_fails() -> str:
    with pytest.raises(CommandError) as failure:
        audit("verify")
    assert failure.value.returncode == 1
    return str(failure.value)


def test_it_reports_an_intact_log(sealed_log: None) -> None:
    out = audit("verify")
    assert "audit log OK" in out
    assert f"{AuditSeal.objects.count()} seals verified" in out
    assert "1 checkpoints" in out


def test_it_refuses_update_and_delete_in_the_database(sealed_log: None) -> None:
    entry = seal_of(3).entry
    attempts = [
        ("UPDATE audit_auditentry SET actor_label = 'x' WHERE id = %s", [entry.pk]),
        ("UPDATE audit_auditseal SET hash = 'x' WHERE seq = 3", []),
        ("UPDATE audit_auditcheckpoint SET seq = 1", []),
        ("DELETE FROM audit_auditseal WHERE seq = 3", []),
        ("DELETE FROM audit_auditentry WHERE id = %s", [entry.pk]),
        ("DELETE FROM audit_auditcheckpoint", []),
    ]
    for sql, params in attempts:
        with (
            pytest.raises(DatabaseError, match="audit log rows cannot be changed"),
            transaction.atomic(),
        ):
            run_sql(sql, params)
    entry.refresh_from_db()
    assert entry.actor_label.startswith("青木 愛")
    assert "audit log OK" in audit("verify")


def test_it_names_an_edited_entry(sealed_log: None) -> None:
    entry = seal_of(4).entry
    with as_attacker():
        run_sql(
            "UPDATE audit_auditentry SET details = %s WHERE id = %s",
            ['{"code":"T9999","parent":null}', entry.pk],
        )
    message = verify_fails()
    assert f"seq 4 (entry id {entry.pk})" in message
    assert "edited after sealing" in message


def test_it_names_a_deleted_entry(sealed_log: None) -> None:
    """The foreign key keeps a seal from outliving its entry, so an attacker deletes both."""
    entry_id = seal_of(5).entry_id
    with as_attacker():
        run_sql("DELETE FROM audit_auditseal WHERE seq = 5")
        run_sql("DELETE FROM audit_auditentry WHERE id = %s", [entry_id])
    message = verify_fails()
    assert "seq 5: seals 5–5 are missing" in message
    assert f"entry id {seal_of(6).entry_id}" in message


def test_it_names_reordered_entries(sealed_log: None) -> None:
    second, third = seal_of(2), seal_of(3)
    with as_attacker():
        run_sql("UPDATE audit_auditseal SET seq = -1 WHERE seq = 2")
        run_sql("UPDATE audit_auditseal SET seq = 2 WHERE seq = 3")
        run_sql("UPDATE audit_auditseal SET seq = 3 WHERE seq = -1")
    message = verify_fails()
    assert f"seq 2 (entry id {third.entry_id})" in message
    assert "reordered" in message
    assert second.entry_id != third.entry_id


def test_it_catches_a_log_truncated_after_a_checkpoint(sealed_log: None) -> None:
    checkpoint = AuditCheckpoint.objects.get()
    assert checkpoint.seq == 8
    with as_attacker():
        doomed = list(AuditSeal.objects.filter(seq__gte=7).values_list("entry_id", flat=True))
        run_sql("DELETE FROM audit_auditseal WHERE seq >= 7")
        for entry_id in doomed:
            run_sql("DELETE FROM audit_auditentry WHERE id = %s", [entry_id])
    message = verify_fails()
    assert "truncated" in message
    assert f"checkpoint #{checkpoint.pk} signed the chain up to seq 8, but it ends at seq 6" in (
        message
    )


def test_it_catches_a_rewritten_chain_through_the_signed_checkpoint(sealed_log: None) -> None:
    """An attacker who edits an entry and recomputes every later hash keeps the links
    intact, but cannot forge the checkpoint's signature over the old head."""
    from django.db import connection

    with as_attacker():
        target = seal_of(2).entry
        run_sql("UPDATE audit_auditentry SET actor_label = '誰か' WHERE id = %s", [target.pk])
        previous = seal_of(1).hash
        for seal in AuditSeal.objects.filter(seq__gte=2).order_by("seq"):
            with connection.cursor() as cursor:
                cursor.execute(
                    f"SELECT {entry_columns(connection.vendor)} FROM audit_auditentry e "  # noqa: S608
                    "WHERE e.id = %s",
                    [seal.entry_id],
                )
                fields = cursor.fetchone()
            new_hash = hash_entry(previous, entry_dict(tuple(fields)))
            run_sql(
                "UPDATE audit_auditseal SET prev_hash = %s, hash = %s WHERE seq = %s",
                [previous, new_hash, seal.seq],
            )
            previous = new_hash
    message = verify_fails()
    assert "seq 8" in message
    assert "checkpoint" in message
    assert "different hash" in message


def test_it_catches_a_forged_checkpoint(sealed_log: None) -> None:
    real = AuditCheckpoint.objects.get()
    AuditCheckpoint.objects.create(
        seq=3,
        hash=seal_of(3).hash,
        key_fingerprint=real.key_fingerprint,
        public_key=real.public_key,
        signature="00" * 64,
    )
    message = verify_fails()
    assert "seq 3" in message
    assert "signature is not valid" in message


def test_it_audits_checkpoints(sealed_log: None) -> None:
    checkpoint = AuditCheckpoint.objects.get()
    entry = AuditEntry.objects.get(action=AuditAction.AUDIT_CHECKPOINT)
    assert entry.details["seq"] == checkpoint.seq
    assert entry.target_id == str(checkpoint.pk)
    assert entry.actor_label.startswith("コマンド")


def test_it_accepts_the_same_details_written_another_way(sealed_log: None) -> None:
    """Only content counts: JSON re-spaced by some tool still verifies (exact path)."""
    entry = seal_of(3).entry
    spaced = '{"parent": null, "code": "' + entry.details["code"] + '"}'
    with as_attacker():
        run_sql("UPDATE audit_auditentry SET details = %s WHERE id = %s", [spaced, entry.pk])
    assert "audit log OK" in audit("verify")
