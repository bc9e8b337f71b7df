"""The sealer chains committed entries after commit, in one unforked chain, even with
writers and sealers running at once on a real database."""

from __future__ import annotations

import threading

import pytest
from django.core.checks import run_checks
from django.db import connection
from django.test import override_settings

from tests.audit.conftest import SIGNING_SEED, audit, make_activity
from yakuba.audit import keys
from yakuba.audit.models import AuditCheckpoint, AuditEntry, AuditPending, AuditSeal
from yakuba.audit.sealer import seal_pending
from yakuba.directory.models import User
from yakuba.tasks.worker import run_once


def test_it_seals_entries_in_the_worker(alice: User) -> None:
    make_activity(alice, 3)
    made = list(AuditEntry.objects.order_by("pk").values_list("pk", flat=True))
    assert list(AuditPending.objects.values_list("entry_id", flat=True)) == made
    assert not AuditSeal.objects.exists()
    run_once()
    # (Other periodic jobs of the same run may audit what they did, such as chat making
    # the new sections' channels: those are sealed by the next run.)
    assert not AuditPending.objects.filter(entry_id__in=made).exists()
    seals = list(AuditSeal.objects.order_by("seq"))
    assert [(s.seq, s.entry_id) for s in seals] == [(1, made[0]), (2, made[1]), (3, made[2])]
    assert seals[1].prev_hash == seals[0].hash
    assert "audit log OK: 3 seals verified" in audit("verify")


def test_it_signs_checkpoints_with_the_configured_key(alice: User) -> None:
    make_activity(alice, 2)
    out = audit("checkpoint")
    checkpoint = AuditCheckpoint.objects.get()
    public = keys.public_hex(keys.parse_private_key(SIGNING_SEED))
    assert checkpoint.public_key == public
    assert checkpoint.key_fingerprint == keys.fingerprint(public)
    assert f"seq {checkpoint.seq}" in out
    assert checkpoint.seq == 2
    assert keys.fingerprint(public) in audit("public-key")


def test_it_warns_when_no_signing_key_is_configured(db: None) -> None:
    with override_settings(AUDIT_SIGNING_KEY=""):
        ids = {message.id for message in run_checks(tags=["yakuba"])}
    assert "yakuba.W101" in ids
    with override_settings(AUDIT_SIGNING_KEY="not a key"):
        ids = {message.id for message in run_checks(tags=["yakuba"])}
    assert "yakuba.E101" in ids


@pytest.mark.django_db(transaction=True)
def test_it_keeps_one_chain_with_concurrent_writers_and_sealers(alice: User, bob: User) -> None:
    """Two writers commit actions while two sealers seal; every entry gets exactly one
    seal and the seals form one chain 1..N."""
    errors: list[BaseException] = []
    writing = threading.Event()
    writing.set()

    def in_thread(work: object) -> None:
        try:
            work()  # type: ignore[operator]
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    def seal_until_done() -> None:
        while writing.is_set():
            seal_pending(batch=7)

    writers = [
        threading.Thread(target=in_thread, args=(lambda u=u, p=p: make_activity(u, 20, prefix=p),))
        for u, p in ((alice, "A"), (bob, "B"))
    ]
    sealers = [threading.Thread(target=in_thread, args=(seal_until_done,)) for _ in range(2)]
    for thread in writers + sealers:
        thread.start()
    for thread in writers:
        thread.join(timeout=120)
    writing.clear()
    for thread in sealers:
        thread.join(timeout=120)
    assert errors == []
    seal_pending()
    entries = AuditEntry.objects.count()
    assert entries == 40
    seqs = list(AuditSeal.objects.order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, entries + 1))
    assert AuditSeal.objects.values("entry_id").distinct().count() == entries
    assert "audit log OK: 40 seals verified" in audit("verify")


@pytest.mark.django_db(transaction=True)
def test_it_seals_at_once_when_woken_by_a_commit(alice: User) -> None:
    """With a prompt sealer in the process, a committed entry is sealed in well under
    the periodic interval: ``record`` wakes it on commit."""
    import time

    from yakuba.audit.sealer import run_prompt_sealer

    stop = threading.Event()
    sealer = threading.Thread(target=run_prompt_sealer, args=(stop,), kwargs={"interval": 30})
    sealer.start()
    try:
        time.sleep(0.2)  # the sealer is waiting, with nothing to do
        make_activity(alice, 1)
        deadline = time.monotonic() + 10
        while not AuditSeal.objects.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert AuditSeal.objects.count() == 1
        assert time.monotonic() < deadline - 5
    finally:
        stop.set()
        from yakuba.audit.sealer import wake

        wake()
        sealer.join(timeout=10)
    assert not sealer.is_alive()
