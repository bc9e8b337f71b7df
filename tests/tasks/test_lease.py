"""Leases of running jobs: renewed by a heartbeat while the job runs (so a job may run
far longer than the lease), lost by a worker that dies (so its job is taken over within
about a minute), and never renewed by a worker that lost its claim."""

from __future__ import annotations

import datetime as dt
import threading
import time

import pytest
from django.db import connections

from yakuba.lib import clock
from yakuba.tasks import worker
from yakuba.tasks.models import Job
from yakuba.tasks.registry import enqueue, job
from yakuba.tasks.worker import claim_lost, claim_next, renew_lease, run_once

may_end = threading.Event()
started = threading.Event()


@job("tests.lease.slow")
def slow_job() -> None:
    started.set()
    may_end.wait(20)


noticed: list[bool] = []


@job("tests.lease.polite")
def polite_job() -> None:
    """Works in steps and stops once another worker took it over."""
    started.set()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not claim_lost():
        time.sleep(0.02)
    noticed.append(claim_lost())


@pytest.fixture
def short_lease(monkeypatch: pytest.MonkeyPatch) -> dt.timedelta:
    lease = dt.timedelta(seconds=0.6)
    monkeypatch.setattr(worker, "LEASE", lease)
    return lease


@pytest.fixture(autouse=True)
def _reset() -> None:
    may_end.clear()
    started.clear()
    noticed.clear()


def run_in_thread(name: str) -> threading.Thread:
    def work() -> None:
        try:
            run_once(name)
        finally:
            connections.close_all()

    thread = threading.Thread(target=work)
    thread.start()
    assert started.wait(10)
    return thread


def lease_of(pk: int) -> dt.datetime | None:
    return Job.objects.values_list("lease_until", flat=True).get(pk=pk)


@pytest.mark.django_db(transaction=True)
def test_the_heartbeat_keeps_a_long_job_leased(short_lease: dt.timedelta) -> None:
    queued = enqueue("tests.lease.slow")
    thread = run_in_thread("busy-worker")
    try:
        leases = {lease_of(queued.pk)}
        deadline = time.monotonic() + 3 * short_lease.total_seconds()
        while time.monotonic() < deadline:
            # Well past the first lease, nobody may take the job over.
            assert claim_next("other-worker") is None
            leases.add(lease_of(queued.pk))
            time.sleep(0.05)
        assert len(leases) >= 3  # renewed, again and again
        assert max(lease for lease in leases if lease) > clock.now()
    finally:
        may_end.set()
        thread.join(20)
    queued.refresh_from_db()
    assert queued.status == Job.Status.DONE
    assert queued.attempts == 1
    assert queued.claimed_by == "busy-worker"


@pytest.mark.django_db(transaction=True)
def test_a_worker_that_lost_its_claim_stops_renewing(short_lease: dt.timedelta) -> None:
    queued = enqueue("tests.lease.slow")
    thread = run_in_thread("slow-worker")
    try:
        # Another worker took the job over (the first one stalled past its lease).
        taken_until = clock.now() + dt.timedelta(minutes=1)
        Job.objects.filter(pk=queued.pk).update(claimed_by="new-worker", lease_until=taken_until)
        time.sleep(3 * short_lease.total_seconds())
        assert lease_of(queued.pk) == taken_until
    finally:
        may_end.set()
        thread.join(20)
    queued.refresh_from_db()
    # The stalled worker's end does not count: the job is the new worker's.
    assert queued.status == Job.Status.RUNNING
    assert queued.claimed_by == "new-worker"


@pytest.mark.django_db(transaction=True)
def test_a_job_that_lost_its_claim_is_told_so_and_may_stop(short_lease: dt.timedelta) -> None:
    queued = enqueue("tests.lease.polite")
    began = time.monotonic()
    thread = run_in_thread("stalled-worker")
    Job.objects.filter(pk=queued.pk).update(claimed_by="new-worker")
    thread.join(20)

    assert noticed == [True]
    assert time.monotonic() - began < 5  # within a beat or two, not the job's 10 s
    assert claim_lost() is False  # nothing runs in this thread


@pytest.mark.django_db
def test_a_dead_workers_job_is_taken_over_within_about_a_minute() -> None:
    assert dt.timedelta(seconds=90) >= worker.LEASE
    queued = enqueue("tests.lease.slow")
    assert claim_next("worker-that-dies") is not None

    clock.advance(worker.LEASE / 2)
    assert claim_next("second-worker") is None
    clock.advance(worker.LEASE / 2 + dt.timedelta(seconds=1))
    taken = claim_next("second-worker")

    assert taken is not None
    assert taken.pk == queued.pk
    assert taken.attempts == 2


@pytest.mark.django_db
def test_only_the_claim_holder_renews_a_lease() -> None:
    enqueue("tests.lease.slow")
    claimed = claim_next("holder")
    assert claimed is not None
    before = lease_of(claimed.pk)
    clock.advance(dt.timedelta(seconds=10))

    assert renew_lease(claimed) is True
    after = lease_of(claimed.pk)
    assert before is not None
    assert after is not None
    assert after > before
    impostor = Job.objects.get(pk=claimed.pk)
    impostor.claimed_by = "someone-else"
    assert renew_lease(impostor) is False
    assert lease_of(claimed.pk) == after
