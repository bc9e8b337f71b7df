"""The embedded tier's SQLite runs in WAL mode, syncs every commit, and begins IMMEDIATE."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import OperationalError, connection, connections, transaction

from yakuba.directory.models import Department


@pytest.fixture
def sqlite_only() -> None:
    if connection.vendor != "sqlite":
        pytest.skip("SQLite settings (this run is on PostgreSQL)")


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("sqlite_only")
def test_it_runs_sqlite_in_wal_mode_with_full_sync() -> None:
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA journal_mode")
        assert cursor.fetchone()[0] == "wal"
        cursor.execute("PRAGMA synchronous")
        assert cursor.fetchone()[0] == 2  # FULL
        cursor.execute("PRAGMA busy_timeout")
        assert cursor.fetchone()[0] >= 1000


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("sqlite_only")
def test_it_takes_the_write_lock_at_the_start_of_a_transaction() -> None:
    """A second writer waits at BEGIN instead of failing half-way with SQLITE_BUSY."""
    entered, release = threading.Event(), threading.Event()
    order: list[str] = []

    def first() -> None:
        with transaction.atomic():
            order.append("first began")
            entered.set()
            release.wait(5)
            Department.objects.create(code="1", name="一", level="bu")
            order.append("first committed")
        connections.close_all()

    def second() -> None:
        entered.wait(5)
        with transaction.atomic():
            # BEGIN IMMEDIATE blocks here until the first writer commits.
            order.append("second began")
            Department.objects.create(code="2", name="二", level="bu")
        connections.close_all()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    entered.wait(5)
    threading.Timer(0.3, release.set).start()
    for thread in threads:
        thread.join(10)
    assert order == ["first began", "first committed", "second began"]
    assert Department.objects.count() == 2


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("sqlite_only")
def test_it_queues_this_processs_writers_in_turn() -> None:
    """Writers of one process wait on the process's queue, not in SQLite's sleeping
    busy handler: each starts as soon as the one before commits.  With SQLite's own
    wait switched off, twelve writers at once still all succeed: none ever reaches
    SQLite's lock while another of this process holds it."""
    writers = 12
    errors: list[BaseException] = []
    waits: list[float] = []

    def write(n: int) -> None:
        try:
            with connection.cursor() as cursor:
                cursor.execute("PRAGMA busy_timeout = 0")
            started = time.monotonic()
            with transaction.atomic():
                waits.append(time.monotonic() - started)
                Department.objects.create(code=f"Q{n}", name=f"課{n}", level="ka")
                time.sleep(0.01)  # hold the lock a little, as a real action does
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert Department.objects.filter(code__startswith="Q").count() == writers
    # Queued in turn, the last waits about (writers - 1) holds of 10 ms plus commits;
    # SQLite's busy handler alone sleeps in steps of up to 100 ms.
    assert max(waits) < 2.0


def late_write() -> None:
    with transaction.atomic():
        Department.objects.create(code="LATE", name="遅い課", level="ka")


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("sqlite_only")
def test_a_writer_waiting_past_the_busy_timeout_gets_database_is_locked() -> None:
    holding, done = threading.Event(), threading.Event()

    def hold() -> None:
        with transaction.atomic():
            holding.set()
            done.wait(10)
        connections.close_all()

    holder = threading.Thread(target=hold)
    holder.start()
    holding.wait(5)
    connection.settings_dict["OPTIONS"]["timeout"] = 0.2
    try:
        with pytest.raises(OperationalError, match="database is locked"):
            late_write()
    finally:
        connection.settings_dict["OPTIONS"]["timeout"] = 20
        done.set()
        holder.join()
    assert not Department.objects.filter(code="LATE").exists()
