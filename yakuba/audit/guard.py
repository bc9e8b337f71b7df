"""The database's refusal to change or delete audit rows, and its one test-only bypass.

Migration 0003 installs triggers that refuse UPDATE on every audit table and DELETE
except of chain rows at or below a signed prune anchor.  On SQLite the DELETE triggers
also consult ``yakuba_audit_maintenance()``, a function that only Yakuba's own
connections define: the test suite's per-test flush (``DELETE FROM`` every table) runs
inside ``maintenance()``.  A plain ``sqlite3`` shell does not have the function, so its
DELETE fails even more loudly.  PostgreSQL's flush uses TRUNCATE, which row triggers do
not see; the separate database role (docs/audit.md) is what refuses TRUNCATE there.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db.backends.signals import connection_created

_state = threading.local()


def _maintenance_enabled() -> int:
    return 1 if getattr(_state, "enabled", False) else 0


@contextmanager
def maintenance() -> Iterator[None]:
    """Let this thread's SQLite connections delete audit rows (test flushes only)."""
    previous = getattr(_state, "enabled", False)
    _state.enabled = True
    try:
        yield
    finally:
        _state.enabled = previous


def _register_function(sender: Any, connection: Any, **kwargs: Any) -> None:
    if connection.vendor == "sqlite":
        connection.connection.create_function("yakuba_audit_maintenance", 0, _maintenance_enabled)


def install() -> None:
    """Define the SQLite function on every new connection (called from the app config)."""
    connection_created.connect(_register_function, dispatch_uid="yakuba.audit.guard")
