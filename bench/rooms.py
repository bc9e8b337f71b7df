"""`make bench-rooms`: how many bookings the server answers, and how soon no-shows go.

Against a throw-away database (never the ward's own ``var/``), per database:

1. A fresh database is migrated and filled through the real actions: one building, 20
   rooms (``do_import_rooms``), 16 staff (``do_create_staff``), one API token each with
   the ``rooms`` scope (``do_create_token``).
2. The server starts on a free port of 127.0.0.1 as each tier runs it: on PostgreSQL the
   ward tier (``--web-workers`` uvicorn processes, default 2, Redis when reachable, and a
   separate ``yakuba worker``); on SQLite the embedded tier (``yakuba serve``, one
   process with its worker inside).  Mail is queued in the outbox but not sent
   (``YAKUBA_MAIL_ENABLED=false``): sending is the relay's work.
3. 16 clients (threads, one keep-alive HTTP/1.1 connection each) POST
   ``/api/rooms/bookings/`` for ``--duration`` seconds: a random room of the 20, a random
   start on the half hour over the next 10 working days within 08:30–20:00, 30 to 90
   minutes long, so that a share of the requests conflict.  201 is a booking, 409 a
   conflict refused; any other answer (or a broken connection) is an error.
4. The live bookings are checked with SQL: two of one room whose ``[block_start,
   block_end)`` overlap must not exist (``overlaps``).
5. Release lag: 10 bookings are written whose no-show deadline (``release_due_at``) falls
   5 s ahead, nobody checks in, and the server's worker releases them;
   ``release_lag_s`` is the largest ``released_at - release_due_at``.

By default the clients send their next request as soon as the last is answered (a closed
loop: the most the server answers); ``--rate R`` paces them to R requests per second in
all, to read the latency at a given load.

Figures: ``bookings_per_s`` is answered booking requests (201 and 409) per second of the
run; ``successes_per_s`` the 201s alone; ``p50_ms``/``p99_ms`` the latency of those
answers as the clients saw it.  The last printed line is one JSON object (with ``--db
both``: one line per database, then ``{"runs": [...]}``).

PostgreSQL: a scratch database ``bench_yakuba_rooms`` on the server of
``BENCH_POSTGRESQL_URL`` (default postgresql://postgres@127.0.0.1:5432/postgres), created
and dropped.  SQLite: a file in a temporary directory, removed afterwards.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import random
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.scratch_database import SERVER_URL, scratch_database  # noqa: E402

PG_NAME = "bench_yakuba_rooms"
ROOMS = 20
CLIENTS = 16
WORKING_DAYS = 10
RELEASE_BOOKINGS = 10
RELEASE_AHEAD_S = 5
TOKYO = ZoneInfo("Asia/Tokyo")
# The ward tier on a 2-core machine: two web processes (one per core), Redis when
# reachable, and one task worker process.
WEB_WORKERS = 2
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")

OVERLAPS_SQL = """
SELECT count(*) FROM rooms_booking a JOIN rooms_booking b
  ON a.room_id = b.room_id AND a.id < b.id
 AND a.block_start < b.block_end AND b.block_start < a.block_end
WHERE a.status IN ('pending', 'confirmed') AND b.status IN ('pending', 'confirmed')
"""


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] in {"setup", "release-setup", "release-check"}:
        _child_main(sys.argv[1])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default=None)
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of load")
    parser.add_argument("--clients", type=int, default=CLIENTS)
    parser.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="offered requests per second in all (paced clients); 0: as fast as answered",
    )
    parser.add_argument(
        "--web-workers",
        type=int,
        default=WEB_WORKERS,
        help="uvicorn worker processes on PostgreSQL (the ward tier); SQLite runs one",
    )
    args = parser.parse_args()
    databases = {
        None: ["postgresql"] if _postgresql_reachable() else ["sqlite"],
        "both": ["postgresql", "sqlite"],
    }.get(args.db, [args.db])
    runs = []
    for db in databases:
        result = run_one(
            db,
            duration=args.duration,
            clients=args.clients,
            web_workers=args.web_workers,
            rate=args.rate,
        )
        runs.append(result)
        print(json.dumps(result), flush=True)
    if len(runs) > 1:
        print(json.dumps({"runs": runs}))


def _postgresql_reachable() -> bool:
    import psycopg

    try:
        psycopg.connect(SERVER_URL, connect_timeout=3).close()
    except psycopg.Error:
        return False
    return True


# --- one run ---------------------------------------------------------------------------


def run_one(
    db: str, *, duration: float, clients: int, web_workers: int, rate: float
) -> dict[str, Any]:
    scratch = Path(tempfile.mkdtemp(prefix="yakuba-bench-rooms-"))
    try:
        with _database(db, scratch) as database_url:
            env = {
                **os.environ,
                "DJANGO_SETTINGS_MODULE": "yakuba.settings",
                "DATABASE_URL": database_url,
                # Media, the secret key and logs of this run stay in the scratch folder.
                "YAKUBA_VAR_DIR": str(scratch),
                "REDIS_URL": "",
                # Mail is written to the outbox in every booking's transaction, as in
                # production; sending it is the mail relay's work, left out here.
                "YAKUBA_MAIL_ENABLED": "false",
                "PYTHONPATH": str(ROOT),
            }
            setup = _child("setup", env)
            port = _free_port()
            server, worker, label = _start_server(db, env, port, web_workers, scratch)
            try:
                _wait_ready(port, server)
                cpu_before = _tree_cpu([server.pid])
                worker_before = _tree_cpu([worker.pid]) if worker else 0.0
                pg_before = _postgres_cpu()
                load = run_load(port, setup, duration=duration, clients=clients, rate=rate)
                answered = max(1, load["booked"] + load["conflicts_refused"])
                # CPU per answered request: the web process(es) (with the embedded
                # worker on SQLite), the task worker (mail, release), PostgreSQL.
                web_cpu = _tree_cpu([server.pid]) - cpu_before
                load["web_cpu_ms_per_request"] = round(web_cpu / answered * 1000, 1)
                if worker is not None:
                    worker_cpu = _tree_cpu([worker.pid]) - worker_before
                    load["worker_cpu_ms_per_request"] = round(worker_cpu / answered * 1000, 1)
                if db == "postgresql" and pg_before is not None:
                    postgres_cpu = (_postgres_cpu() or 0.0) - pg_before
                    load["postgres_cpu_ms_per_request"] = round(postgres_cpu / answered * 1000, 1)
                overlaps = count_overlaps(db, database_url)
                lag = measure_release_lag(env)
            finally:
                for process in (server, worker):
                    if process is not None:
                        _stop(process)
            return {
                "clients": clients,
                "rooms": ROOMS,
                "db": db,
                **load,
                "overlaps": overlaps,
                "release_lag_s": lag,
                "duration_s": round(duration, 1),
                "offered_rate": rate or "closed loop",
                "server": label,
                "load_average_1m": round(os.getloadavg()[0], 2),
            }
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _database(db: str, scratch: Path) -> AbstractContextManager[str]:
    return scratch_database(scratch / "bench-rooms.sqlite3" if db == "sqlite" else None, PG_NAME)


def _start_server(
    db: str,
    env: dict[str, str],
    port: int,
    web_workers: int,
    scratch: Path,
) -> tuple[subprocess.Popen[bytes], subprocess.Popen[bytes] | None, str]:
    """The server as a ward runs it: on PostgreSQL the ward tier (``web_workers``
    uvicorn processes, Redis when reachable, a separate task worker); on SQLite the
    embedded tier (``yakuba serve``, one process, its worker inside)."""
    log = (scratch / "server.log").open("wb")
    embedded = db == "sqlite"
    if embedded:
        command = [sys.executable, "-m", "yakuba.cli", "serve", "--port", str(port)]
        command += ["--worker", "yes"]
        label = "yakuba serve (1 process, embedded worker)"
    else:
        if _redis_reachable():
            env["REDIS_URL"] = REDIS_URL
            env["YAKUBA_REDIS_PREFIX"] = f"bench-rooms-{os.getpid()}"
        command = [sys.executable, "-m", "uvicorn", "yakuba.asgi:application"]
        command += ["--host", "127.0.0.1", "--port", str(port), "--workers", str(web_workers)]
        command += ["--lifespan", "off", "--log-level", "warning"]
        label = f"uvicorn --workers {web_workers}, yakuba worker" + (
            ", Redis" if env["REDIS_URL"] else ""
        )
    server = subprocess.Popen(command, env=env, cwd=ROOT, stdout=log, stderr=log)
    worker = None
    if not embedded:
        worker = subprocess.Popen(
            [sys.executable, "-m", "yakuba.cli", "worker"],
            env=env,
            cwd=ROOT,
            stdout=log,
            stderr=log,
        )
    return server, worker, label


def _process_cpu(pid: int) -> float:
    """CPU seconds a local process has used (Linux /proc; 0 where unreadable)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    try:
        tasks = Path(f"/proc/{pid}/task").iterdir()
        found: list[int] = []
        for task in tasks:
            found += [int(c) for c in (task / "children").read_text().split()]
        return found
    except OSError:
        return []


def _tree_cpu(pids: list[int]) -> float:
    """CPU seconds of these processes and their children (the uvicorn workers)."""
    total, todo = 0.0, list(pids)
    while todo:
        pid = todo.pop()
        total += _process_cpu(pid)
        todo += _children(pid)
    return total


def _postgres_cpu() -> float | None:
    """CPU seconds of every local PostgreSQL process, with the backends that have
    exited (Django opens a connection per request): the postmaster's reaped children.
    Other databases' backends on the same server count too.  None where PostgreSQL
    runs elsewhere."""
    total, seen = 0.0, False
    ticks = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if not (entry / "comm").read_text().startswith("postgres"):
                continue
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        seen = True
        total += sum(int(value) for value in fields[11:15]) / ticks
    return total if seen else None


def _redis_reachable() -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping())
    except redis.RedisError:
        return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _child(part: str, env: dict[str, str], *extra: str) -> Any:
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), part, *extra],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"bench part {part!r} failed")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_ready(port: int, server: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit("the server exited at start (see its log)")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/healthz")
            connection.getresponse().read()
            connection.close()
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("the server did not answer within a minute")


# --- the load ------------------------------------------------------------------------------


def _working_days(count: int) -> list[dt.date]:
    day = dt.datetime.now(TOKYO).date()
    days: list[dt.date] = []
    while len(days) < count:
        day += dt.timedelta(days=1)
        if day.weekday() < 5:
            days.append(day)
    return days


def _random_slot(rng: random.Random, days: list[dt.date]) -> tuple[str, str]:
    """A start on the half hour from 08:30, 30 to 90 minutes, ending by 20:00."""
    length = rng.choice((30, 60, 90))
    latest = (20 * 60 - length - 8 * 60 - 30) // 30
    start = dt.datetime.combine(rng.choice(days), dt.time(8, 30), tzinfo=TOKYO) + dt.timedelta(
        minutes=30 * rng.randint(0, latest)
    )
    return start.isoformat(), (start + dt.timedelta(minutes=length)).isoformat()


def run_load(
    port: int, setup: dict[str, Any], *, duration: float, clients: int, rate: float
) -> dict[str, Any]:
    days = _working_days(WORKING_DAYS)
    room_ids: list[int] = setup["room_ids"]
    tokens: list[str] = setup["tokens"]
    barrier = threading.Barrier(clients + 1)
    lock = threading.Lock()
    latencies: list[float] = []
    counts = {"booked": 0, "conflicts": 0, "errors": 0}
    error_samples: list[str] = []
    stop_at = [0.0]

    def client(n: int) -> None:
        rng = random.Random(n)
        headers = {
            "Authorization": f"Bearer {tokens[n % len(tokens)]}",
            "Content-Type": "application/json",
        }
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine: list[float] = []
        booked = conflicts = errors = 0
        samples: list[str] = []
        barrier.wait()
        # Paced (--rate): this client's share of the rate, at fixed times from a
        # random phase; a late answer makes the next request go at once (no catching up
        # beyond that), so the offered load never exceeds the rate.
        gap = clients / rate if rate else 0.0
        next_at = time.perf_counter() + rng.uniform(0, gap)
        while time.perf_counter() < stop_at[0]:
            if gap:
                pause = next_at - time.perf_counter()
                if pause > 0:
                    time.sleep(pause)
                next_at = max(next_at + gap, time.perf_counter())
            starts_at, ends_at = _random_slot(rng, days)
            body = json.dumps(
                {
                    "room_id": rng.choice(room_ids),
                    "starts_at": starts_at,
                    "ends_at": ends_at,
                    "title": f"ベンチマーク打合せ{n}",
                }
            )
            sent = time.perf_counter()
            try:
                connection.request("POST", "/api/rooms/bookings/", body=body, headers=headers)
                answer = connection.getresponse()
                text = answer.read()
            except (OSError, http.client.HTTPException) as exc:
                errors += 1
                samples.append(repr(exc))
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                continue
            took = time.perf_counter() - sent
            if answer.status == 201:
                booked += 1
                mine.append(took)
            elif answer.status == 409:
                conflicts += 1
                mine.append(took)
            else:
                errors += 1
                samples.append(f"{answer.status} {text[:200].decode(errors='replace')}")
        connection.close()
        with lock:
            latencies.extend(mine)
            counts["booked"] += booked
            counts["conflicts"] += conflicts
            counts["errors"] += errors
            error_samples.extend(samples[:3])

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    client_cpu = time.process_time()
    started = time.perf_counter()
    stop_at[0] = started + duration
    barrier.wait()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    client_cpu = time.process_time() - client_cpu
    latencies.sort()
    answered = counts["booked"] + counts["conflicts"]
    if error_samples:
        print("errors (samples):", *error_samples[:10], sep="\n  ", file=sys.stderr)
    return {
        "bookings_per_s": round(answered / elapsed, 1),
        "successes_per_s": round(counts["booked"] / elapsed, 1),
        "p50_ms": _percentile_ms(latencies, 0.50),
        "p99_ms": _percentile_ms(latencies, 0.99),
        "booked": counts["booked"],
        "conflicts_refused": counts["conflicts"],
        "errors": counts["errors"],
        # The clients share the machine's cores with the server.
        "client_cpu_ms_per_request": round(client_cpu / max(1, answered) * 1000, 1),
    }


def _percentile_ms(ordered: list[float], share: float) -> float | None:
    if not ordered:
        return None
    return round(ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1000, 1)


def count_overlaps(db: str, database_url: str) -> int:
    if db == "sqlite":
        with sqlite3.connect(database_url.removeprefix("sqlite:///")) as connection:
            (found,) = connection.execute(OVERLAPS_SQL).fetchone()
        return int(found)
    import psycopg

    with psycopg.connect(database_url) as connection:
        row = connection.execute(OVERLAPS_SQL).fetchone()
        assert row is not None
        return int(row[0])


def measure_release_lag(env: dict[str, str]) -> float | None:
    """Bookings due for release ``RELEASE_AHEAD_S`` from now; wait for the server's
    worker to release them all (at most two minutes)."""
    ids = _child("release-setup", env)["ids"]
    deadline = time.monotonic() + 120
    while True:
        time.sleep(2)
        found = _child("release-check", env, json.dumps(ids))
        if found["released"] == len(ids) or time.monotonic() > deadline:
            return found["lag_s"] if found["released"] == len(ids) else None


# --- children: Django against the scratch database -------------------------------------------


def _child_main(part: str) -> None:
    import django

    django.setup()
    if part == "setup":
        print(json.dumps(setup_data()))
    elif part == "release-setup":
        print(json.dumps({"ids": make_due_bookings()}))
    else:
        print(json.dumps(release_state(json.loads(sys.argv[2]))))


def setup_data() -> dict[str, Any]:
    from django.core.management import call_command

    from yakuba.audit.record import Actor
    from yakuba.directory.actions.auth import do_create_token
    from yakuba.directory.actions.staff import do_create_department, do_create_staff
    from yakuba.rooms.actions.rooms import RoomRecord, do_import_rooms
    from yakuba.rooms.models import Room

    call_command("migrate", verbosity=0)
    admin = Actor.system("bench-rooms")
    department = do_create_department(code="110", name="総務課", level="ka", acting_user=admin)
    records = [
        RoomRecord(
            building_code="HQ",
            building_name="本庁舎",
            floor_name=f"{3 + n // 5}階",
            floor_level=3 + n // 5,
            values={"code": f"R{301 + n}", "name": f"会議室{301 + n}", "capacity": 8 + n},
        )
        for n in range(ROOMS)
    ]
    do_import_rooms(records, acting_user=admin)
    tokens = []
    scopes = ["rooms"]
    for n in range(CLIENTS):
        staff = do_create_staff(
            employee_number=f"{50001 + n}",
            family_name="職員",
            given_name=f"{n + 1}号",
            family_kana="しょくいん",
            given_kana="ごう",
            department=department,
            email=f"staff{n + 1}@ward.example.jp",
            acting_user=admin,
        )
        _token, raw = do_create_token(
            staff.user, name="bench-rooms", scopes=scopes, expires_at=None, acting_user=admin
        )
        tokens.append(raw)
    return {
        "room_ids": list(Room.objects.order_by("pk").values_list("pk", flat=True)),
        "tokens": tokens,
    }


def make_due_bookings() -> list[int]:
    """Confirmed bookings, nobody checked in, whose release falls ``RELEASE_AHEAD_S``
    ahead: written with the ORM, as the booking action would have set them had they
    been booked earlier (``release_due_at`` = start + grace)."""
    from django.conf import settings

    from yakuba.directory.models import User
    from yakuba.lib import clock
    from yakuba.rooms.models import Booking, Room

    now = clock.now()
    due = now + dt.timedelta(seconds=RELEASE_AHEAD_S)
    starts_at = due - dt.timedelta(minutes=settings.ROOMS_RELEASE_GRACE_MINUTES)
    ends_at = starts_at + dt.timedelta(minutes=30)
    organiser = User.objects.filter(kind=User.Kind.STAFF).order_by("pk").first()
    assert organiser is not None
    ids = []
    # Today's slot: a room each; the load's bookings start tomorrow at the earliest.
    for room in Room.objects.order_by("pk")[:RELEASE_BOOKINGS]:
        booking = Booking.objects.create(
            room=room,
            organiser=organiser,
            booked_by=organiser,
            title="来ない会議",
            starts_at=starts_at,
            ends_at=ends_at,
            block_start=starts_at,
            block_end=ends_at + dt.timedelta(minutes=room.buffer_minutes),
            release_due_at=due,
            created_at=now - dt.timedelta(days=1),
        )
        ids.append(booking.pk)
    return ids


def release_state(ids: list[int]) -> dict[str, Any]:
    from yakuba.rooms.models import Booking

    rows = list(
        Booking.objects.filter(pk__in=ids, status=Booking.Status.RELEASED).values_list(
            "released_at", "release_due_at"
        )
    )
    lags = [(released - due).total_seconds() for released, due in rows if released and due]
    return {"released": len(rows), "lag_s": round(max(lags), 1) if lags else None}


if __name__ == "__main__":
    main()
