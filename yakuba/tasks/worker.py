"""``yakuba worker``: claims queued jobs and runs periodic jobs.

Claiming is one short transaction: on PostgreSQL ``SELECT … FOR UPDATE SKIP LOCKED``
lets several workers claim different rows at once; on SQLite the transaction begins
IMMEDIATE, which serialises claimers.  A claimed job holds a short lease (``LEASE``)
that a heartbeat thread of the running worker renews every third of it, for as long as
the job runs (a transcription may run for an hour).  A worker that died mid-job stops
renewing, so within about ``LEASE`` another (or the restarted) worker runs the job again:
jobs must be idempotent or resume from their own saved progress.  A job whose worker died
at each of its ``max_attempts`` tries is given up rather than run for ever.
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
from yakuba.tasks.registry import GIVE_UP, JOBS, PERIODIC

log = logging.getLogger(__name__)
# Short, because a crashed worker's job waits this long before another worker takes it
# over; the heartbeat renews it every LEASE / 3, which leaves two renewals of slack for a
# busy database or a long pause of the process.
LEASE = dt.timedelta(seconds=60)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"


def claim_next(name: str) -> Job | None:
    """Claim one due job (or one whose lease ran out), or return None.  A job whose
    lease ran out at its last attempt is marked failed on the way (its give-up hook
    runs), so that a job that kills its worker every time does not do so for ever."""
    while True:
        job, abandoned = _claim_one(name)
        if abandoned is not None:
            _give_up(abandoned)
            continue
        return job


def _claim_one(name: str) -> tuple[Job | None, Job | None]:
    """(the claimed job, None), (None, a job given up), or (None, None)."""
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
            return None, None
        if job.status == Job.Status.RUNNING and job.attempts >= job.max_attempts:
            job.status = Job.Status.FAILED
            job.lease_until = None
            job.finished_at = now
            job.last_error = (
                f"{job.last_error}\nworker {job.claimed_by} stopped renewing its lease "
                f"at attempt {job.attempts} of {job.max_attempts}; given up"
            ).strip()[-4000:]
            job.save(update_fields=["status", "lease_until", "finished_at", "last_error"])
            return None, job
        job.status = Job.Status.RUNNING
        job.claimed_by = name
        job.lease_until = now + LEASE
        job.attempts += 1
        job.save(update_fields=["status", "claimed_by", "lease_until", "attempts"])
        return job, None


def renew_lease(job: Job) -> bool:
    """Extend the lease of ``job`` if this worker still holds its claim; False when it
    lost it (another worker took the job over, or it finished or was cancelled)."""
    return bool(
        Job.objects.filter(pk=job.pk, claimed_by=job.claimed_by, status=Job.Status.RUNNING).update(
            lease_until=clock.now() + LEASE
        )
    )


# The LeaseKeeper of the job running in this thread (see ``claim_lost``).
_running = threading.local()


def claim_lost() -> bool:
    """Whether the job running in this thread lost its claim: it stalled past its lease
    and another worker took it over.  A long job checks between steps and stops, so that
    two workers do not do the same work side by side (noticed within ``LEASE / 3``)."""
    keeper: LeaseKeeper | None = getattr(_running, "keeper", None)
    return keeper is not None and keeper.lost.is_set()


class LeaseKeeper:
    """Renews a running job's lease from a daemon thread every ``LEASE / 3`` until
    stopped.  A thread, not a check inside the job, because a job spends long stretches
    in code that knows nothing of leases (an engine recognising a segment)."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"yakuba-lease-{job.pk}", daemon=True
        )

    def __enter__(self) -> LeaseKeeper:
        _running.keeper = self
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        _running.keeper = None
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        interval = LEASE.total_seconds() / 3
        try:
            while not self._stop.wait(interval):
                try:
                    held = renew_lease(self.job)
                except Exception:
                    # The database is away for a moment: try again at the next beat,
                    # the lease has two beats of slack.
                    log.exception("could not renew the lease of job %s", self.job)
                    continue
                if not held:
                    log.warning("job %s: lease lost to another worker", self.job)
                    self.lost.set()
                    return
        finally:
            # This thread's own connection (each thread has one).
            connection.close()


def run_job(job: Job) -> None:
    function = JOBS.get(job.name)
    try:
        if function is None:
            raise LookupError(f"no job named {job.name!r} is registered")
        with LeaseKeeper(job):
            function(**job.kwargs)
    except Exception:
        error = traceback.format_exc()
        log.exception("job %s failed", job)
        retry = job.attempts < job.max_attempts and function is not None
        backoff = dt.timedelta(seconds=min(300, 2**job.attempts))
        updated = Job.objects.filter(pk=job.pk, claimed_by=job.claimed_by).update(
            status=Job.Status.QUEUED if retry else Job.Status.FAILED,
            run_after=clock.now() + backoff,
            last_error=error[-4000:],
            lease_until=None,
        )
        if updated and not retry:
            job.last_error = error[-4000:]
            _give_up(job)
        return
    # Only the current lease holder may finish the job (a cancelled job stays cancelled).
    Job.objects.filter(pk=job.pk, claimed_by=job.claimed_by, status=Job.Status.RUNNING).update(
        status=Job.Status.DONE, finished_at=clock.now(), lease_until=None
    )


def _give_up(job: Job) -> None:
    hook = GIVE_UP.get(job.name)
    if hook is None:
        return
    try:
        hook(job.last_error, **job.kwargs)
    except Exception:
        log.exception("give-up hook of job %s failed", job)


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
