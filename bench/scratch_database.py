"""A benchmark's throw-away database: a SQLite file in its scratch folder, or a
PostgreSQL database created before the run and dropped after it (also when it fails)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# The PostgreSQL server the benchmarks create their databases on (its maintenance DB).
SERVER_URL = os.environ.get("BENCH_POSTGRESQL_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


@contextmanager
def scratch_database(sqlite_file: Path | None, pg_name: str) -> Iterator[str]:
    """``DATABASE_URL`` of ``sqlite_file`` when given, else of the PostgreSQL database
    ``pg_name``, made afresh and dropped on the way out."""
    if sqlite_file is not None:
        yield f"sqlite:///{sqlite_file}"
        return
    import psycopg

    base, _, _ = SERVER_URL.rpartition("/")
    with psycopg.connect(SERVER_URL, autocommit=True) as server:
        server.execute(f"DROP DATABASE IF EXISTS {pg_name} WITH (FORCE)")
        server.execute(f"CREATE DATABASE {pg_name}")
    try:
        yield f"{base}/{pg_name}"
    finally:
        with psycopg.connect(SERVER_URL, autocommit=True) as server:
            server.execute(f"DROP DATABASE IF EXISTS {pg_name} WITH (FORCE)")
