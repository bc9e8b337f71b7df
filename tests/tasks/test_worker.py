"""The database job queue: claiming, retries, leases and periodic jobs."""

from __future__ import annotations

import datetime as dt
import threading
import time

import pytest
from django.db import connections

from yakuba.lib import clock
from yakuba.tasks.models import Job
from yakuba.tasks.registry import PERIODIC, Periodic, enqueue, job, periodic
from yakuba.tasks.worker import claim_next, run_forever, run_job, run_once

ran: list[dict[str, object]] = []
failures_left = {"count": 0}


@job("tests.record")
def record_job(**kwargs: object) -> None:
    ran.append(kwargs)


@job("tests.flaky")
def flaky_job() -> None:
    if failures_left["count"] > 0:
        failures_left["count"] -= 1
        raise RuntimeError("temporary failure")
    ran.append({"flaky": "ok"})


@periodic("tests.tick", every=dt.timedelta(hours=1))
def tick() -> None:
    ran.append({"tick": True})


long_job_may_end = threading.Event()


@job("tests.long")
def long_job() -> None:
    ran.append({"long": "started"})
    long_job_may_end.wait(30)


@pytest.fixture(autouse=True)
def _clean() -> None:
    ran.clear()
    failures_left["count"] = 0


@pytest.mark.django_db
def test_it_runs_a_due_job_once_and_marks_it_done() -> None:
    queued = enqueue("tests.record", number=7)
    assert run_once() == 1
    assert {"number": 7} in ran
    queued.refresh_from_db()
    assert queued.status == Job.Status.DONE
    assert queued.finished_at is not None
    assert run_once() == 0


@pytest.mark.django_db
def test_it_waits_for_run_after() -> None:
    enqueue("tests.record", run_after=clock.now() + dt.timedelta(minutes=5), number=1)
    assert run_once() == 0
    clock.advance(dt.timedelta(minutes=6))
    assert run_once() == 1


@pytest.mark.django_db
def test_it_retries_a_failed_job_with_backoff_then_succeeds() -> None:
    failures_left["count"] = 1
    queued = enqueue("tests.flaky")
    assert run_once() == 1
    queued.refresh_from_db()
    assert queued.status == Job.Status.QUEUED
    assert "temporary failure" in queued.last_error
    assert queued.run_after > clock.now()
    clock.advance(dt.timedelta(minutes=10))
    run_once()
    queued.refresh_from_db()
    assert queued.status == Job.Status.DONE
    assert {"flaky": "ok"} in ran


@pytest.mark.django_db
def test_it_gives_up_after_max_attempts() -> None:
    failures_left["count"] = 99
    queued = enqueue("tests.flaky")
    Job.objects.filter(pk=queued.pk).update(max_attempts=2)
    for _ in range(3):
        run_once()
        clock.advance(dt.timedelta(minutes=10))
    queued.refresh_from_db()
    assert queued.status == Job.Status.FAILED
    assert queued.attempts == 2


@pytest.mark.django_db
def test_it_takes_over_a_job_whose_worker_died() -> None:
    queued = enqueue("tests.record", number=3)
    claimed = claim_next("worker-that-dies")
    assert claimed is not None
    assert claimed.pk == queued.pk
    assert claim_next("second-worker") is None  # still leased
    clock.advance(dt.timedelta(minutes=6))
    taken = claim_next("second-worker")
    assert taken is not None
    assert taken.pk == queued.pk
    run_job(taken)
    queued.refresh_from_db()
    assert queued.status == Job.Status.DONE
    assert queued.attempts == 2


@pytest.mark.django_db
def test_it_runs_a_periodic_job_at_once_in_a_fresh_worker() -> None:
    assert "tests.tick" in PERIODIC
    run_once()
    assert {"tick": True} in ran


@pytest.mark.django_db(transaction=True)
def test_it_never_gives_one_job_to_two_workers() -> None:
    for number in range(20):
        enqueue("tests.record", number=number)
    claimed: list[int] = []
    lock = threading.Lock()

    def claim_all(name: str) -> None:
        try:
            while (found := claim_next(name)) is not None:
                with lock:
                    claimed.append(found.pk)
        finally:
            connections.close_all()

    workers = [threading.Thread(target=claim_all, args=(f"w{i}",)) for i in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    assert len(claimed) == 20
    assert len(set(claimed)) == 20


@pytest.mark.django_db(transaction=True)
def test_it_runs_periodic_jobs_while_a_long_job_runs() -> None:
    """A transcription taking minutes must not hold back the release of rooms."""
    enqueue("tests.long")
    stop = threading.Event()
    long_job_may_end.clear()
    worker = threading.Thread(target=run_forever, args=(stop,), kwargs={"poll_seconds": 0.05})
    worker.start()
    try:
        deadline = time.monotonic() + 20
        while {"long": "started"} not in ran and time.monotonic() < deadline:
            time.sleep(0.05)
        ticks_before = ran.count({"tick": True})
        PERIODIC["tests.tick"] = Periodic("tests.tick", tick, dt.timedelta(milliseconds=50))
        while ran.count({"tick": True}) < ticks_before + 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert {"long": "started"} in ran
        assert ran.count({"tick": True}) >= ticks_before + 2
        assert Job.objects.get(name="tests.long").status == Job.Status.RUNNING
    finally:
        PERIODIC["tests.tick"] = Periodic("tests.tick", tick, dt.timedelta(hours=1))
        long_job_may_end.set()
        stop.set()
        worker.join(30)
