"""Jobs and periodic jobs, registered by name from each app's ``tasks.py``."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import transaction

from yakuba.lib import clock
from yakuba.tasks.models import Job

JobFunction = Callable[..., None]


@dataclass(frozen=True)
class Periodic:
    name: str
    function: Callable[[], None]
    every: dt.timedelta


# Called as ``hook(error, **kwargs)`` when a job fails for good: its last attempt raised,
# or its worker died at every attempt (the lease ran out ``max_attempts`` times).  Lets
# the job's own record say "failed" instead of "running" for ever.
GiveUpHook = Callable[..., None]

JOBS: dict[str, JobFunction] = {}
GIVE_UP: dict[str, GiveUpHook] = {}
PERIODIC: dict[str, Periodic] = {}


def job(name: str, *, on_give_up: GiveUpHook | None = None) -> Callable[[JobFunction], JobFunction]:
    """Register ``function`` as the job ``name``; it receives the job's kwargs.
    ``on_give_up(error, **kwargs)`` runs once when the queue stops retrying it."""

    def register(function: JobFunction) -> JobFunction:
        if name in JOBS and JOBS[name] is not function:
            raise ValueError(f"job {name!r} registered twice")
        JOBS[name] = function
        if on_give_up is not None:
            GIVE_UP[name] = on_give_up
        return function

    return register


def periodic(
    name: str, *, every: dt.timedelta
) -> Callable[[Callable[[], None]], Callable[[], None]]:
    """Run ``function`` in every worker about every ``every``; it must be safe to run
    twice at once (use a conditional UPDATE or a lock inside)."""

    def register(function: Callable[[], None]) -> Callable[[], None]:
        PERIODIC[name] = Periodic(name, function, every)
        return function

    return register


def enqueue(name: str, *, run_after: dt.datetime | None = None, **kwargs: Any) -> Job:
    """Queue a job; it becomes visible to workers when the caller's transaction commits."""
    if name not in JOBS:
        raise KeyError(f"unknown job {name!r}")
    # No savepoint inside the caller's transaction: two round trips saved per
    # write, and an error here fails the whole action anyway.
    with transaction.atomic(savepoint=False):
        return Job.objects.create(name=name, kwargs=kwargs, run_after=run_after or clock.now())
