"""`make bench-audit`: how fast the audit log appends and verifies.

Prints, as its last line, one JSON object with

- ``append_per_s``: audited actions per second (a department created and its audit entry
  written in one transaction, the real ``do_create_department`` action) by 8 concurrent
  writer processes on PostgreSQL, with the sealer running alongside in its own process;
- ``verify_per_s``: seals verified per second by ``yakuba audit verify`` (2 processes)
  streaming 1,000,000 sealed entries from a SQLite file;

plus details (the seal lag after commit, single-process verification, sizes).

Uses a scratch PostgreSQL database ``bench_yakuba_audit`` (created and dropped; server from
``BENCH_POSTGRESQL_URL``, default postgresql://postgres@127.0.0.1:5432/postgres) and
``var/bench-audit-verify.sqlite3`` (kept, rebuilt when its size does not match).
Each part runs in a fresh interpreter because Django reads DATABASE_URL once.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SERVER_URL = os.environ.get("BENCH_POSTGRESQL_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
PG_NAME = "bench_yakuba_audit"
SQLITE_FILE = ROOT / "var" / "bench-audit-verify.sqlite3"
VERIFY_ENTRIES = int(os.environ.get("BENCH_VERIFY_ENTRIES", "1000000"))
WRITERS = 8
APPEND_SECONDS = float(os.environ.get("BENCH_APPEND_SECONDS", "15"))
SEED = "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb"


def main() -> None:
    part = sys.argv[1] if len(sys.argv) > 1 else "all"
    if part == "verify":
        _setup_django()
        print(json.dumps(bench_verify()))
    elif part == "append":
        _setup_django()
        print(json.dumps(bench_append()))
    elif part == "sealer":
        _setup_django()
        run_sealer()
    else:
        results: dict[str, Any] = {}
        results["load_average_1m_before"] = round(os.getloadavg()[0], 2)
        results.update(_child("verify", f"sqlite:///{SQLITE_FILE}"))
        results.update(_append_on_scratch_database({}))
        # The same run with YAKUBA_PG_SERVER_SIDE_BINDING (prepared statements): the
        # operator's choice, so reported beside the default, under its own names.
        binding = _append_on_scratch_database({"YAKUBA_PG_SERVER_SIDE_BINDING": "true"})
        results.update({f"ssb_{name}": value for name, value in binding.items()})
        ordered = {
            "append_per_s": results.pop("append_per_s"),
            "append_per_s_server_side_binding": results.pop("ssb_append_per_s"),
            "verify_per_s": results.pop("verify_per_s"),
            **results,
        }
        print(json.dumps(ordered))


def _setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "yakuba.settings")
    import django

    django.setup()


def _child(part: str, database_url: str, extra: dict[str, str] | None = None) -> dict[str, Any]:
    environment = {
        **os.environ,
        "DATABASE_URL": database_url,
        "YAKUBA_AUDIT_SIGNING_KEY": SEED,
        **(extra or {}),
    }
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), part],
        env=environment,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    sys.stderr.write(done.stderr)
    if done.returncode != 0:
        raise SystemExit(f"bench part {part!r} failed")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _append_on_scratch_database(extra: dict[str, str]) -> dict[str, Any]:
    import psycopg

    base, _, _ = SERVER_URL.rpartition("/")
    with psycopg.connect(SERVER_URL, autocommit=True) as server:
        server.execute(f"DROP DATABASE IF EXISTS {PG_NAME}")
        server.execute(f"CREATE DATABASE {PG_NAME}")
    try:
        return _child("append", f"{base}/{PG_NAME}", extra)
    finally:
        with psycopg.connect(SERVER_URL, autocommit=True) as server:
            server.execute(f"DROP DATABASE IF EXISTS {PG_NAME} WITH (FORCE)")


# --- verify_per_s ---------------------------------------------------------------------


def bench_verify() -> dict[str, Any]:
    from django.core.management import call_command
    from django.db import connection

    from yakuba.audit.verify import verify_database

    built = 0.0
    if not _verify_file_ready():
        SQLITE_FILE.unlink(missing_ok=True)
        for suffix in ("-wal", "-shm"):
            Path(f"{SQLITE_FILE}{suffix}").unlink(missing_ok=True)
        call_command("migrate", verbosity=0)
        connection.close()
        started = time.perf_counter()
        build_verify_file(VERIFY_ENTRIES)
        built = time.perf_counter() - started
    # The first pass only warms the page cache (the file was written by another
    # process, or in an earlier run); the figure is the median of the next three.
    verify_database(jobs=2)
    cpu = _cpu_with_children()
    runs = sorted((verify_database(jobs=2) for _ in range(3)), key=lambda r: r.seconds)
    cpu = _cpu_with_children() - cpu
    parallel = runs[1]
    assert all(run.ok for run in runs), [run.problem for run in runs]
    single = verify_database(jobs=1)
    assert single.ok, single.problem
    return {
        "verify_per_s": round(parallel.checked / parallel.seconds),
        "verify_entries": parallel.checked,
        "verify_seconds": round(parallel.seconds, 3),
        "verify_best_per_s": round(runs[0].checked / runs[0].seconds),
        "verify_single_process_per_s": round(single.checked / single.seconds),
        # CPU (this process and its forked checkers) per seal: what the two cores must
        # supply, whoever else uses them.
        "verify_cpu_us_per_seal": round(cpu / sum(r.checked for r in runs) * 1e6, 2),
        "verify_checkpoints": parallel.checkpoints,
        "verify_file_build_seconds": round(built, 1),
    }


def _cpu_with_children() -> float:
    """CPU seconds of this process and of its children that have been waited for."""
    import resource

    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def _process_cpu(pid: int) -> float | None:
    """CPU seconds a local process (a PostgreSQL backend, the sealer) has used so far,
    from /proc; None where that cannot be read (another host, another OS)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _verify_file_ready() -> bool:
    if not SQLITE_FILE.exists():
        return False
    with sqlite3.connect(SQLITE_FILE) as db:
        try:
            (count,) = db.execute("SELECT count(*) FROM audit_auditseal").fetchone()
        except sqlite3.Error:
            return False
    return bool(count == VERIFY_ENTRIES)


ACTIONS = [
    ("auth.login", "", "", ""),
    ("directory.staff_changed", "directory.staffprofile", "職員", "{}"),
    ("directory.department_created", "directory.department", "所属", "{}"),
    ("auth.denied", "", "", ""),
    ("directory.role_granted", "directory.rolegrant", "ロール", "{}"),
]
NAMES = ["青木 愛", "坂東 歩", "千葉 茶太郎", "土井 大輔", "江藤 恵美", "福田 翔"]


INSERT_ENTRY = (
    "INSERT INTO audit_auditentry (id, occurred_at, actor_kind, actor_id, actor_label, action, "
    "target_type, target_id, target_label, details, source_ip) VALUES (?,?,?,?,?,?,?,?,?,?,?)"
)
INSERT_SEAL = (
    "INSERT INTO audit_auditseal (seq, entry_id, prev_hash, hash, sealed_at) VALUES (?,?,?,?,?)"
)
INSERT_CHECKPOINT = (
    "INSERT INTO audit_auditcheckpoint (seq, hash, created_at, key_fingerprint, public_key, "
    "signature) VALUES (?,?,?,?,?,?)"
)


def build_verify_file(count: int) -> None:
    """Fill the migrated file with ``count`` entries and their seals, fast: raw
    sqlite3 bulk inserts, hashes computed with the chain's own functions."""
    from yakuba.audit import keys, store
    from yakuba.audit.chain import GENESIS_HASH, entry_hash

    rng = random.Random(7)
    db = sqlite3.connect(SQLITE_FILE)
    db.execute("PRAGMA synchronous=OFF")
    key = keys.parse_private_key(SEED)
    public = keys.public_hex(key)
    fingerprint = keys.fingerprint(public)
    head = GENESIS_HASH
    chunk = 50_000
    for start in range(1, count + 1, chunk):
        entries, seals = [], []
        for entry_id in range(start, min(count, start + chunk - 1) + 1):
            seconds = entry_id * 3
            stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(1_700_000_000 + seconds))
            stored_time = f"{stamp}.{rng.randrange(1_000_000):06d}"
            action, target_type, label, _ = ACTIONS[entry_id % len(ACTIONS)]
            actor = rng.randrange(1, 2300)
            name = NAMES[actor % len(NAMES)]
            details = json.dumps(
                {"code": f"{actor:05d}", "note": "人事異動に伴う変更", "n": entry_id},
                sort_keys=True,
                separators=(",", ":"),
                ensure_ascii=False,
            )
            row = (
                entry_id,
                stored_time,
                "staff",
                actor,
                f"{name} (u{actor:05d})",
                action,
                target_type,
                str(actor) if target_type else "",
                f"{label}{actor}" if label else "",
                details,
                f"10.{actor % 250}.{entry_id % 250}.{actor % 200 + 1}",
            )
            entries.append(row)
            fields = (row[0], stored_time.replace(" ", "T") + "Z", *row[2:])
            previous, head = head, entry_hash(head, store.canonical_of(fields))
            seals.append((entry_id, entry_id, previous, head, stored_time))
        with db:
            db.executemany(INSERT_ENTRY, entries)
            db.executemany(INSERT_SEAL, seals)
            db.execute("DELETE FROM audit_auditpending")
            stamp = seals[-1][4].replace(" ", "T") + "Z"
            last_seq = seals[-1][0]
            signature = keys.sign(key, keys.checkpoint_fields(last_seq, head, stamp, fingerprint))
            db.execute(
                INSERT_CHECKPOINT,
                (last_seq, head, seals[-1][4], fingerprint, public, signature),
            )
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()


# --- append_per_s ---------------------------------------------------------------------


def bench_append() -> dict[str, Any]:
    from django.core.management import call_command
    from django.db import connections

    from yakuba.directory.models import User

    call_command("migrate", verbosity=0)
    user = User.objects.create_user("bench", None, display_name="ベンチ 太郎")
    connections.close_all()
    sealer = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "sealer"], cwd=ROOT, env=os.environ
    )
    try:
        context = multiprocessing.get_context("fork")
        start_at = time.time() + 1.0
        with context.Pool(WRITERS) as pool:
            results = pool.starmap(_writer, [(n, user.pk, start_at) for n in range(WRITERS)])
        total = sum(count for count, _, _ in results)
        writer_cpu = sum(cpu for _, cpu, _ in results)
        backend_cpu = [pg for _, _, pg in results]
        drained = _wait_until_sealed()
        sealer_cpu = _process_cpu(sealer.pid)
    finally:
        sealer.terminate()
        sealer.wait(timeout=30)
    lag = _seal_lag()
    from yakuba.audit.verify import verify_database

    report = verify_database(jobs=1)
    connections.close_all()
    return {
        "append_per_s": round(total / APPEND_SECONDS),
        "append_actions": total,
        "append_writers": WRITERS,
        "append_seconds": APPEND_SECONDS,
        "seal_drain_after_writers_s": round(drained, 2),
        "seal_lag_p50_ms": lag[0],
        "seal_lag_p99_ms": lag[1],
        "seal_lag_max_ms": lag[2],
        "append_chain_ok": report.ok,
        # Python CPU the writers spent per action (the action, Django and the driver):
        # on two cores this bounds append_per_s whatever the database does.
        "append_writer_cpu_ms_per_action": round(writer_cpu / total * 1000, 3),
        # PostgreSQL's CPU for the writers' connections (parse, plan, inserts, trigger,
        # commit), and the sealer's own Python CPU (all of its run, idle polls included).
        "append_postgres_cpu_ms_per_action": (
            None if None in backend_cpu else round(sum(backend_cpu) / total * 1000, 3)  # type: ignore[arg-type]
        ),
        "append_sealer_cpu_ms_per_action": (
            None if sealer_cpu is None else round(sealer_cpu / total * 1000, 3)
        ),
        "server_side_binding": bool(
            connections["default"].settings_dict.get("OPTIONS", {}).get("server_side_binding")
        ),
        "load_average_1m_after": round(os.getloadavg()[0], 2),
    }


def _writer(number: int, user_id: int, start_at: float) -> tuple[int, float, float | None]:
    """Run the real action for ``APPEND_SECONDS``; returns how many committed, the CPU
    seconds this process spent on them, and those its PostgreSQL backend spent."""
    from django.db import connection

    from yakuba.directory.actions.staff import do_create_department
    from yakuba.directory.models import User

    user = User.objects.get(pk=user_id)
    backend = connection.connection.info.backend_pid
    time.sleep(max(0.0, start_at - time.time()))
    stop_at = start_at + APPEND_SECONDS
    backend_cpu = _process_cpu(backend)
    cpu = time.process_time()
    done = 0
    while time.time() < stop_at:
        do_create_department(
            code=f"W{number}-{done}", name=f"ベンチ係{done}", level="kakari", acting_user=user
        )
        done += 1
    cpu = time.process_time() - cpu
    backend_end = _process_cpu(backend)
    connection.close()
    if backend_cpu is None or backend_end is None:
        return done, cpu, None
    return done, cpu, backend_end - backend_cpu


SEAL_POLL_SECONDS = 0.05


def run_sealer() -> None:
    """The sealer as the worker runs it, but polling every 50 ms instead of every
    second (the writers are in other processes, so ``wake()`` cannot reach it).  It
    sleeps after every pass, not only after an empty one: a sealer that loops back at
    once seals a handful of entries per transaction and spends more CPU on its own
    round trips than on the entries, CPU the writers on the same cores then lack."""
    from yakuba.audit.sealer import seal_pending

    while True:
        seal_pending()
        time.sleep(SEAL_POLL_SECONDS)


def _wait_until_sealed() -> float:
    from django.db import connection

    started = time.perf_counter()
    while True:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM audit_auditpending")
            if cursor.fetchone()[0] == 0:
                return time.perf_counter() - started
        time.sleep(0.05)


def _seal_lag() -> tuple[float, float, float]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP (ORDER BY lag), max(lag) "
            "FROM (SELECT extract(epoch FROM s.sealed_at - e.occurred_at) * 1000 AS lag "
            "FROM audit_auditseal s JOIN audit_auditentry e ON e.id = s.entry_id) lags"
        )
        (p50, p99), worst = cursor.fetchone()
    return round(p50, 1), round(p99, 1), round(float(worst), 1)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
