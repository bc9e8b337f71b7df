"""SQLite for the embedded tier: Django's backend, with writers queued in the process.

Every transaction starts with ``BEGIN IMMEDIATE`` (settings.py), which takes SQLite's one
write lock.  When it is taken, SQLite's busy handler makes the other writers sleep and
retry in growing steps (1, 2, 5, 10 … 100 ms), so under load a writer can wait a hundred
milliseconds after the lock was already free, and the order is luck.  The embedded tier
serves every request from one process, so its writers queue on a lock of this process
instead: each transaction takes it before ``BEGIN`` and gives it back at commit,
rollback or close, and the next writer starts at once, in turn.  SQLite's own lock still
guards against other processes (``yakuba worker`` run apart, a CLI command).

A writer that waits longer than the busy timeout gets the same error SQLite gives
("database is locked"), so nothing waits forever.
"""

from __future__ import annotations

import threading
from typing import Any

from django.db import OperationalError
from django.db.backends.sqlite3 import base

# One queue per database file and process.
_writer_locks: dict[str, threading.Lock] = {}
_writer_locks_guard = threading.Lock()


def _writer_lock(name: str) -> threading.Lock:
    with _writer_locks_guard:
        return _writer_locks.setdefault(name, threading.Lock())


class DatabaseWrapper(base.DatabaseWrapper):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._holds_writer_lock = False

    def _queue(self) -> threading.Lock:
        return _writer_lock(str(self.settings_dict["NAME"]))

    def _start_transaction_under_autocommit(self) -> None:
        timeout = float(self.settings_dict.get("OPTIONS", {}).get("timeout", 20))
        lock = self._queue()
        if not lock.acquire(timeout=timeout):
            raise OperationalError("database is locked (waited for this process's writers)")
        self._holds_writer_lock = True
        try:
            super()._start_transaction_under_autocommit()  # type: ignore[misc]  # private in Django, not in the stubs
        except BaseException:
            self._release_writer_lock()
            raise

    def _release_writer_lock(self) -> None:
        if self._holds_writer_lock:
            self._holds_writer_lock = False
            self._queue().release()

    def _commit(self) -> None:
        # A failed COMMIT keeps the lock: the atomic block rolls back (or closes) next.
        super()._commit()  # type: ignore[misc]  # private in Django, not in the stubs
        self._release_writer_lock()

    def _rollback(self) -> None:
        try:
            super()._rollback()  # type: ignore[misc]  # private in Django, not in the stubs
        finally:
            self._release_writer_lock()

    def _close(self) -> None:
        try:
            super()._close()  # type: ignore[misc]  # private in Django, not in the stubs
        finally:
            self._release_writer_lock()
