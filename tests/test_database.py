"""The embedded tier's SQLite runs in WAL mode, syncs every commit, and begins IMMEDIATE."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, connections, transaction

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
