"""`yakuba audit prune --before DATE` removes old entries behind a signed anchor; what
remains still verifies, and the prune itself is audited."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.management.base import CommandError
from django.db import DatabaseError, transaction

from tests.audit.conftest import audit, make_activity, run_sql
from yakuba.audit.models import (
    AuditAction,
    AuditEntry,
    AuditPruneAnchor,
    AuditSeal,
)
from yakuba.directory.models import User
from yakuba.lib import clock

OLD = dt.datetime(2023, 6, 1, 10, 0, tzinfo=clock.TOKYO)
RECENT = dt.datetime(2025, 6, 1, 10, 0, tzinfo=clock.TOKYO)


@pytest.fixture
def two_years(alice: User) -> None:
    with clock.frozen_at(OLD):
        make_activity(alice, 6, prefix="O")
        audit("checkpoint")
    with clock.frozen_at(RECENT):
        make_activity(alice, 4, prefix="R")
        audit("checkpoint")


def test_it_prunes_old_entries_and_keeps_the_rest_verifiable(two_years: None) -> None:
    before = AuditEntry.objects.count()
    with clock.frozen_at(RECENT + dt.timedelta(days=1)):
        out = audit("prune", "--before", "2024-04-01")
    # Six actions and the old checkpoint's entry were older than 2024-04-01.
    assert "pruned 7 entries" in out
    assert not AuditEntry.objects.filter(occurred_at__lt=RECENT).exists()
    anchor = AuditPruneAnchor.objects.get()
    assert anchor.seq == 7
    assert AuditSeal.objects.order_by("seq").first().prev_hash == anchor.hash  # type: ignore[union-attr]
    pruned = AuditEntry.objects.get(action=AuditAction.AUDIT_PRUNED)
    assert pruned.details["entries_deleted"] == 7
    assert pruned.details["anchor_seq"] == 7
    assert AuditEntry.objects.count() == before - 7 + 1
    out = audit("verify")
    assert "audit log OK" in out
    assert "pruned up to seq 7" in out


def test_it_still_refuses_deleting_entries_newer_than_the_anchor(two_years: None) -> None:
    audit("prune", "--before", "2024-04-01")
    survivor = AuditEntry.objects.filter(action="directory.department_created").first()
    assert survivor is not None
    with pytest.raises(DatabaseError), transaction.atomic():
        run_sql("DELETE FROM audit_auditseal WHERE entry_id = %s", [survivor.pk])
    with pytest.raises(DatabaseError), transaction.atomic():
        run_sql("DELETE FROM audit_auditentry WHERE id = %s", [survivor.pk])


def test_it_catches_a_forged_prune_anchor(two_years: None) -> None:
    """Inserting an anchor by hand opens the door to deleting rows, but its signature
    does not verify, and the forgery is named."""
    AuditPruneAnchor.objects.create(
        seq=9,
        hash=AuditSeal.objects.get(seq=9).hash,
        max_entry_id=10**9,
        before=clock.now(),
        key_fingerprint="0" * 64,
        public_key="0" * 64,
        signature="0" * 128,
    )
    run_sql("DELETE FROM audit_auditseal WHERE seq <= 9")
    with pytest.raises(CommandError) as failure:
        audit("verify")
    assert "prune anchor" in str(failure.value)


def test_it_prunes_nothing_when_nothing_is_old_enough(two_years: None) -> None:
    assert "nothing to prune" in audit("prune", "--before", "2020-01-01")
    assert AuditEntry.objects.filter(action=AuditAction.AUDIT_PRUNED).count() == 1
    assert "audit log OK" in audit("verify")
