"""``yakuba worker``: claims queued jobs and runs periodic jobs.

Claiming is one short transaction: on PostgreSQL ``SELECT … FOR UPDATE SKIP LOCKED``
lets several workers claim different rows at once; on SQLite the transaction begins
IMMEDIATE, which serialises claimers.  A claimed job holds a lease; a worker that died
mid-job loses the lease and another worker runs the job again, so jobs must be
idempotent or resume from their own saved progress.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
import time
import traceback

from django.conf import settings
from django.db import close_old_connections, connection, transaction

from yakuba.lib import clock
from yakuba.tasks.models import Job
from yakuba.tasks.registry import JOBS, PERIODIC

log = logging.getLogger(__name__)
LEASE = dt.timedelta(minutes=5)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"


def claim_next(name: str) -> Job | None:
    """Claim one due job (or one whose lease ran out), or return None."""
    now = clock.now()
    with transaction.atomic():
        due = Job.objects.filter(status=Job.Status.QUEUED, run_after__lte=now) | Job.objects.filter(
            status=Job.Status.RUNNING, lease_until__lt=now
        )
        query = due.order_by("run_after", "id")
        if connection.vendor == "postgresql":
            query = query.select_for_update(skip_locked=True)
        job = query.first()
        if job is None:
            return None
        job.status = Job.Status.RUNNING
        job.claimed_by = name
        job.lease_until = now + LEASE
        job.attempts += 1
        job.save(update_fields=["status", "claimed_by", "lease_until", "attempts"])
        return job


def run_job(job: Job) -> None:
    function = JOBS.get(job.name)
    try:
        if function is None:
            raise LookupError(f"no job named {job.name!r} is registered")
        function(**job.kwargs)
    except Exception:
        error = traceback.format_exc()
        log.exception("job %s failed", job)
        retry = job.attempts < job.max_attempts and function is not None
        backoff = dt.timedelta(seconds=min(300, 2**job.attempts))
        Job.objects.filter(pk=job.pk, claimed_by=job.claimed_by).update(
            status=Job.Status.QUEUED if retry else Job.Status.FAILED,
            run_after=clock.now() + backoff,
            last_error=error[-4000:],
            lease_until=None,
        )
        return
    # Only the current lease holder may finish the job (a cancelled job stays cancelled).
    Job.objects.filter(pk=job.pk, claimed_by=job.claimed_by, status=Job.Status.RUNNING).update(
        status=Job.Status.DONE, finished_at=clock.now(), lease_until=None
    )


def run_due_periodic(last_run: dict[str, float]) -> None:
    for periodic in PERIODIC.values():
        last = last_run.get(periodic.name)
        # A job this worker has not run yet is due at once (e.g. after a restart).
        if last is None or time.monotonic() >= last + periodic.every.total_seconds():
            last_run[periodic.name] = time.monotonic()
            try:
                periodic.function()
            except Exception:
                log.exception("periodic job %s failed", periodic.name)


def run_once(name: str | None = None) -> int:
    """Run every due job and periodic job once; returns the number of jobs run (tests)."""
    name = name or worker_name()
    count = 0
    run_due_periodic({})
    while (job := claim_next(name)) is not None:
        run_job(job)
        count += 1
    return count


def run_forever(stop: threading.Event, *, poll_seconds: float = 1.0) -> None:
    name = worker_name()
    # Seals audit entries committed in this process within milliseconds (the embedded
    # tier's web requests); entries from other processes are sealed by the periodic job.
    from yakuba.audit.sealer import start_prompt_sealer

    start_prompt_sealer(stop, interval=settings.AUDIT_SEAL_INTERVAL_SECONDS)
    # Periodic jobs get a thread of their own: a long queued job (a transcription) must
    # not hold back time-bound ones such as the release of no-show rooms.
    periodic = threading.Thread(
        target=run_periodic_forever, args=(stop, poll_seconds), name="yakuba-periodic", daemon=True
    )
    periodic.start()
    log.info("worker %s started with jobs %s", name, sorted(JOBS))
    try:
        while not stop.is_set():
            close_old_connections()
            job = claim_next(name)
            if job is not None:
                run_job(job)
                continue
            stop.wait(poll_seconds)
    finally:
        close_old_connections()
        periodic.join(timeout=30)


def run_periodic_forever(stop: threading.Event, poll_seconds: float) -> None:
    last_run: dict[str, float] = {}
    try:
        while not stop.is_set():
            close_old_connections()
            run_due_periodic(last_run)
            stop.wait(poll_seconds)
    finally:
        close_old_connections()
