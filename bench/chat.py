"""`make bench-chat`: real WebSocket clients against Yakuba's chat, and the same workload
against Matrix Synapse, in one run.  See bench/README.md ("Chat") for what each figure
means and the measured results.

Parts, each against a throw-away database and a server started on a free port of
127.0.0.1 (never the ward's ``var/``):

1. The large run (Yakuba): ``--clients`` users (3,000), each with one WebSocket held
   open, in project channels of 50 members (created with the real
   ``do_create_project_channel``); every client declares its channel's members as the
   people on its screen (``chat.presence_watch``) and ``--activity`` idle/active changes
   per second come from random clients, as people going idle and coming back.  After an
   idle window (presence at steady state, no messages) messages are offered open-loop at
   ``--rate`` (200/s) for ``--duration`` seconds, sent over HTTP
   (``POST /api/chat/conversations/{id}/messages`` with a bearer token) by members of
   the channel.
2. The ladder, side by side: 200 users in rooms of 50, the offered rate stepped up
   (1, 2, 5, 10, 20, 50, 100, 200, 300, 500, 750, 1000 messages per second, ``--step``
   seconds each) until a step misses (a message not delivered to every member within the
   drain time, or p99 above 1,000 ms): first Yakuba, then Synapse on each database of
   ``--synapse-db`` (``bench/chat_synapse.py``; its receivers long-poll ``/sync``).

The load comes from ``bench/chat_load.py``, a process of its own (its CPU is reported
beside each figure: ``loadgen_cpu_pct``, share of one core).  The last stdout line is
one JSON object; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import chat_synapse  # noqa: E402
from bench.scratch_database import SERVER_URL, scratch_database  # noqa: E402

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
PG_NAME = "bench_yakuba_chat"
ROOM_SIZE = 50
LADDER_USERS = 200
LADDER_RATES = [0.5, 1, 2, 5, 10, 20, 50, 100, 200, 300, 500, 750, 1000]
MISS_P99_MS = 1000.0
PRESENCE_PATH = "/_bench/presence"


def log(*parts: Any, sep: str = " ") -> None:
    print("[bench-chat]", *parts, file=sys.stderr, flush=True, sep=sep)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] in {"_setup", "_serve"}:
        _child_main(sys.argv[1], sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument("--skip-synapse", action="store_true")
    parser.add_argument("--skip-large", action="store_true", help="no large run")
    parser.add_argument("--skip-yakuba", action="store_true", help="Synapse alone")
    parser.add_argument("--skip-ladder", action="store_true", help="only the large run")
    parser.add_argument("--clients", type=int, default=None, help="large run (3000)")
    parser.add_argument("--rate", type=float, default=None, help="large run msg/s (200)")
    parser.add_argument("--duration", type=float, default=None, help="large run seconds (20)")
    parser.add_argument("--idle", type=float, default=None, help="presence window s (20)")
    parser.add_argument("--activity", type=float, default=None, help="idle changes/s (10)")
    parser.add_argument("--step", type=float, default=None, help="ladder step seconds (10)")
    parser.add_argument("--ladder-rates", default=None, help="comma-separated msg/s")
    parser.add_argument("--synapse-db", choices=["sqlite", "postgresql", "both"], default=None)
    parser.add_argument(
        "--mode",
        choices=["embedded", "ward"],
        default="embedded",
        help="embedded: one process, SQLite; ward: 2 uvicorn workers, Redis, PostgreSQL",
    )
    parser.add_argument(
        "--ws-compression",
        action="store_true",
        help="offer permessage-deflate as browsers do (default: off)",
    )
    args = parser.parse_args()
    quick = args.quick
    clients = args.clients or (200 if quick else 3000)
    rate = args.rate or (20.0 if quick else 200.0)
    duration = args.duration or (5.0 if quick else 20.0)
    idle = args.idle or (4.0 if quick else 20.0)
    activity = args.activity if args.activity is not None else (2.0 if quick else 10.0)
    step = args.step or (4.0 if quick else 10.0)
    rates = (
        [float(r) for r in args.ladder_rates.split(",")]
        if args.ladder_rates
        else ([1.0, 5.0, 20.0, 50.0] if quick else [float(r) for r in LADDER_RATES])
    )
    pg = _postgresql_reachable()
    synapse_dbs = {
        None: (["sqlite"] if quick else ["sqlite", "postgresql"]),
        "both": ["sqlite", "postgresql"],
    }.get(args.synapse_db, [args.synapse_db])
    if not pg:
        synapse_dbs = [db for db in synapse_dbs if db != "postgresql"]
    result: dict[str, Any] = {"mode": args.mode, "quick": quick}

    if not args.skip_large:
        log(f"large run: {clients} clients, {rate} msg/s for {duration} s")
        large = yakuba_run(
            users=clients,
            steps=[
                {"rate": rate, "duration": 2.0, "measure": False},
                {"rate": rate, "duration": duration},
            ],
            idle_s=idle,
            activity=activity,
            stop_on_miss=False,
            compression=args.ws_compression,
            mode=args.mode,
        )
        measured = large["steps"][-1] if large["steps"] else {}
        result.update(
            {
                "clients": large["connected"],
                "clients_wanted": clients,
                "rate": rate,
                "delivered": measured.get("delivered"),
                "expected": measured.get("expected"),
                "p50_ms": measured.get("p50_ms"),
                "p99_ms": measured.get("p99_ms"),
                "max_ms": measured.get("max_ms"),
                "send_errors": measured.get("send_errors"),
                "send_p99_ms": measured.get("send_p99_ms"),
                "loadgen_cpu_pct": measured.get("loadgen_cpu_pct"),
                "server_cpu_pct": measured.get("server_cpu_pct"),
                "server_presence_cpu_pct_under_load": measured.get("presence_cpu_pct"),
                "presence_cpu_pct": large["idle"]["presence_cpu_pct"],
                "presence_method": large["presence_method"],
                "presence_changes_per_s": activity,
                "idle_server_cpu_pct": large["idle"]["server_cpu_pct"],
                "idle_loadgen_cpu_pct": measured.get("idle_loadgen_cpu_pct"),
                "connect_s": large["connect_s"],
            }
        )
        print(json.dumps({"part": "large", **large}), flush=True)

    if not args.skip_ladder:
        if not args.skip_yakuba:
            log(f"ladder (Yakuba): {LADDER_USERS} users, rooms of {ROOM_SIZE}, rates {rates}")
            ladder = yakuba_run(
                users=LADDER_USERS,
                steps=[{"rate": r, "duration": step} for r in rates],
                idle_s=0.0,
                activity=0.0,
                stop_on_miss=True,
                compression=args.ws_compression,
                mode=args.mode,
            )
            best = best_step(ladder["steps"])
            result["max_msgs_per_s_at_1s"] = best["rate"] if best else 0
            result["max_loadgen_cpu_pct"] = best["loadgen_cpu_pct"] if best else None
            result["max_server_cpu_pct"] = best["server_cpu_pct"] if best else None
            result["ladder"] = [_brief(s) for s in ladder["steps"]]
            print(json.dumps({"part": "ladder", **ladder}), flush=True)

        if not args.skip_synapse:
            if not chat_synapse.installed():
                log("Synapse is not installed in bench/.venv-synapse: run `make bench-chat`")
            else:
                runs = []
                for db in synapse_dbs:
                    log(f"ladder (Synapse {chat_synapse.version()}, {db})")
                    run = synapse_run(db, rates, step)
                    print(json.dumps({"part": f"synapse-{db}", **run}), flush=True)
                    found = best_step(run["steps"])
                    runs.append(
                        {
                            "db": db,
                            "max_msgs_per_s": found["rate"] if found else 0,
                            "loadgen_cpu_pct": found["loadgen_cpu_pct"] if found else None,
                            "server_cpu_pct": found["server_cpu_pct"] if found else None,
                            "steps": [_brief(s) for s in run["steps"]],
                        }
                    )
                if runs:
                    top = max(runs, key=lambda r: r["max_msgs_per_s"])
                    result["synapse_max_msgs_per_s"] = top["max_msgs_per_s"]
                    result["synapse_db"] = top["db"]
                    result["synapse_loadgen_cpu_pct"] = top["loadgen_cpu_pct"]
                    result["synapse_server_cpu_pct"] = top["server_cpu_pct"]
                    result["synapse_version"] = chat_synapse.version()
                    for run in runs:
                        result[f"synapse_{run['db']}_max_msgs_per_s"] = run["max_msgs_per_s"]
                    result["synapse_runs"] = runs
                    if top["max_msgs_per_s"] and "max_msgs_per_s_at_1s" in result:
                        result["ratio"] = round(
                            result["max_msgs_per_s_at_1s"] / top["max_msgs_per_s"], 1
                        )
    result["load_average_1m"] = round(os.getloadavg()[0], 2)
    print(json.dumps(result, ensure_ascii=False), flush=True)


def best_step(steps: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The highest-rate step that delivered everything with p99 within a second (the
    ladder stops at the first that did not)."""
    passing = [s for s in steps if s.get("measured", True) and step_passed(s)]
    return max(passing, key=lambda s: s["rate"]) if passing else None


def step_passed(step: dict[str, Any]) -> bool:
    return (
        step["delivered"] >= step["expected"]
        and step["p99_ms"] is not None
        and step["p99_ms"] <= MISS_P99_MS
    )


def _brief(step: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "rate",
        "delivered",
        "expected",
        "p50_ms",
        "p99_ms",
        "send_errors",
        "loadgen_cpu_pct",
        "server_cpu_pct",
    )
    return {key: step.get(key) for key in keys}


# --- processes ---------------------------------------------------------------------------


def _postgresql_reachable() -> bool:
    import psycopg

    try:
        psycopg.connect(SERVER_URL, connect_timeout=3).close()
    except psycopg.Error:
        return False
    return True


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _process_cpu(pid: int) -> float:
    """CPU seconds of a process and its reaped children (Linux /proc; 0 where gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return sum(int(value) for value in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def _tree_cpu(pid: int) -> float:
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        total += _process_cpu(current)
        try:
            for task in Path(f"/proc/{current}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return total


def _wait_http(port: int, path: str, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit("the server exited at start (see its log)")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", path)
            connection.getresponse().read()
            connection.close()
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("the server did not answer in time")


def _get_json(port: int, path: str) -> Any:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", path)
        return json.loads(connection.getresponse().read())
    finally:
        connection.close()


def _stop(process: subprocess.Popen[Any]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _raise_nofile() -> None:
    import resource

    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class Loadgen:
    """``bench/chat_load.py`` in its own process, driven line by line."""

    def __init__(self, spec: dict[str, Any], scratch: Path) -> None:
        path = scratch / "loadgen-spec.json"
        path.write_text(json.dumps(spec))
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "bench" / "chat_load.py"), str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            preexec_fn=_raise_nofile,  # only setrlimit
        )

    def next_event(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        while True:
            line = self.process.stdout.readline()
            if not line:
                raise SystemExit("the load generator exited early")
            if line.startswith("{"):
                event: dict[str, Any] = json.loads(line)
                return event

    def go(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write("go\n")
        self.process.stdin.flush()

    def close(self) -> None:
        _stop(self.process)


class Sampler:
    """Samples the server's CPU (``/proc``, every 0.25 s) and the presence counter (every
    0.5 s, over HTTP) in threads, with their ``time.monotonic()`` stamps (one clock for
    every process of the machine), so that a busy server or a busy driver never shifts a
    step's window: windows come from the load generator's own stamps."""

    def __init__(self, pid: int, presence: Any) -> None:
        import threading

        self.pid = pid
        self.presence = presence
        self.cpu: list[tuple[float, float]] = []
        self.presence_samples: list[tuple[float, float]] = []
        self.stopping = threading.Event()
        self.threads = [
            threading.Thread(target=self._cpu_loop, daemon=True),
            threading.Thread(target=self._presence_loop, daemon=True),
        ]
        for thread in self.threads:
            thread.start()

    def _cpu_loop(self) -> None:
        while not self.stopping.is_set():
            self.cpu.append((time.monotonic(), _tree_cpu(self.pid)))
            self.stopping.wait(0.25)

    def _presence_loop(self) -> None:
        while not self.stopping.is_set():
            asked = time.monotonic()
            value = self.presence()
            if value is not None:
                # Stamped halfway through the request: the value was read in between.
                self.presence_samples.append(((asked + time.monotonic()) / 2, value))
            self.stopping.wait(0.5)

    def stop(self) -> None:
        self.stopping.set()

    @staticmethod
    def _at(series: list[tuple[float, float]], moment: float) -> tuple[float, float] | None:
        """The sample nearest to ``moment``."""
        if not series:
            return None
        return min(series, key=lambda sample: abs(sample[0] - moment))

    def pct(self, which: str, start: float, end: float) -> float | None:
        """Per cent of one core over ``[start, end]`` (``which``: cpu or presence)."""
        series = self.cpu if which == "cpu" else self.presence_samples
        first, last = self._at(series, start), self._at(series, end)
        if first is None or last is None or last[0] - first[0] < 0.5:
            return None
        return round(100 * (last[1] - first[1]) / (last[0] - first[0]), 2)


def drive(
    loadgen: Loadgen,
    server_pid: int,
    idle_s: float,
    presence: Any,
) -> dict[str, Any]:
    """Connected → idle window (presence at steady state) → steps → done."""
    sampler = Sampler(server_pid, presence)
    try:
        return _drive(loadgen, server_pid, idle_s, sampler)
    finally:
        sampler.stop()


def _drive(loadgen: Loadgen, server_pid: int, idle_s: float, sampler: Sampler) -> dict[str, Any]:
    event = loadgen.next_event()
    assert event["event"] == "connected", event
    connected = event
    log(f"{event['connected']} receivers connected in {event['connect_s']} s")
    idle: dict[str, Any] = {}
    if idle_s > 0:
        time.sleep(min(5.0, idle_s))  # let the connection burst settle
        start = time.monotonic()
        time.sleep(idle_s)
        end = time.monotonic()
        time.sleep(0.6)  # one more presence sample after the window
        idle["server_cpu_pct"] = sampler.pct("cpu", start, end)
        idle["presence_cpu_pct"] = sampler.pct("presence", start, end)
        log(f"idle: server CPU {idle['server_cpu_pct']} %, presence {idle['presence_cpu_pct']} %")
    loadgen.go()
    steps: list[dict[str, Any]] = []
    while True:
        event = loadgen.next_event()
        if event["event"] == "step_start":
            _profile(server_pid, event)
        elif event["event"] == "step":
            time.sleep(0.6)
            event["server_cpu_pct"] = sampler.pct("cpu", event["t_start"], event["t_end"])
            event["presence_cpu_pct"] = sampler.pct("presence", event["t_start"], event["t_end"])
            steps.append(event)
            log(
                f"  {event['rate']} msg/s: delivered {event['delivered']}/{event['expected']} "
                f"p50 {event['p50_ms']} ms p99 {event['p99_ms']} ms, server CPU "
                f"{event['server_cpu_pct']} %, loadgen CPU {event['loadgen_cpu_pct']} %"
            )
        elif event["event"] == "done":
            if event.get("send_error_samples"):
                log("send errors (samples):", *event["send_error_samples"][:5])
            return {
                "connected": connected["connected"],
                "connect_failed": connected["failed"],
                "connect_errors": connected["connect_errors"],
                "connect_s": connected["connect_s"],
                "idle": idle,
                "steps": steps,
                "activity_sent": event.get("activity_sent"),
                "stray": event.get("stray"),
            }


def _profile(pid: int, event: dict[str, Any]) -> None:
    """``BENCH_CHAT_PYSPY=DIR``: record the server with py-spy (``BENCH_CHAT_PYSPY_BIN``,
    default ``py-spy`` on PATH) for 8 s of every step, as collapsed stacks in DIR."""
    folder = os.environ.get("BENCH_CHAT_PYSPY")
    if not folder:
        return
    target = Path(folder) / f"server-{pid}-step{event['step']}-{event['rate']:g}.txt"
    subprocess.Popen(
        [
            os.environ.get("BENCH_CHAT_PYSPY_BIN", "py-spy"),
            "record",
            "--pid",
            str(pid),
            "--duration",
            "8",
            "--rate",
            "200",
            "--format",
            "raw",
            "--threads",
            "--output",
            str(target),
            "--nonblocking",
            *os.environ.get("BENCH_CHAT_PYSPY_ARGS", "").split(),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


# --- Yakuba -----------------------------------------------------------------------------


@contextmanager
def _scratch(prefix: str) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def yakuba_run(
    *,
    users: int,
    steps: list[dict[str, Any]],
    idle_s: float,
    activity: float,
    stop_on_miss: bool,
    compression: bool,
    mode: str = "embedded",
) -> dict[str, Any]:
    with _scratch("yakuba-bench-chat-") as scratch, _database(mode, scratch) as database_url:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "yakuba.settings",
            "DATABASE_URL": database_url,
            "YAKUBA_VAR_DIR": str(scratch),
            "REDIS_URL": REDIS_URL if mode == "ward" else "",
            "YAKUBA_REDIS_PREFIX": f"bench-chat-{os.getpid()}",
            "YAKUBA_MAIL_ENABLED": "false",
            "PYTHONPATH": str(ROOT),
        }
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "_setup", str(users), str(ROOM_SIZE)],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            sys.stderr.write(done.stderr[-5000:])
            raise SystemExit("bench-chat setup failed")
        setup = json.loads(done.stdout.strip().splitlines()[-1])
        log(
            f"setup: {users} users, {len(setup['conversations'])} channels in "
            f"{time.monotonic() - started:.1f} s"
        )
        port = _free_port()
        server_log = (scratch / "server.log").open("wb")
        if mode == "ward":
            # The ward tier on 2 cores: two uvicorn processes, Redis, PostgreSQL, and the
            # task worker apart (as bench/rooms.py runs it).
            command = [sys.executable, "-m", "uvicorn", "yakuba.asgi:application"]
            command += ["--host", "127.0.0.1", "--port", str(port), "--workers", "2"]
            command += ["--lifespan", "off", "--log-level", "warning"]
        else:
            command = [sys.executable, str(Path(__file__).resolve()), "_serve", str(port)]
        server = subprocess.Popen(
            command,
            env=env,
            cwd=ROOT,
            stdout=server_log,
            stderr=server_log,
            preexec_fn=_raise_nofile,  # only setrlimit
        )
        worker = None
        if mode == "ward":
            worker = subprocess.Popen(
                [sys.executable, "-m", "yakuba.cli", "worker"],
                env=env,
                cwd=ROOT,
                stdout=server_log,
                stderr=server_log,
            )
        loadgen = None
        try:
            _wait_http(port, "/healthz", server, 60)
            user_ids = setup["user_ids"]
            receivers = [{"token": token} for token in setup["tokens"]]
            for conversation in setup["conversations"]:
                watch = [user_ids[m] for m in conversation["members"]]
                for member in conversation["members"]:
                    receivers[member]["watch"] = watch
            spec = {
                "kind": "yakuba",
                "host": "127.0.0.1",
                "port": port,
                "receivers": receivers,
                "conversations": [
                    {
                        "id": c["id"],
                        "members": c["members"],
                        "senders": [setup["tokens"][m] for m in c["members"]],
                    }
                    for c in setup["conversations"]
                ],
                "steps": steps,
                "drain_s": 5.0,
                "stop_on_miss": stop_on_miss,
                "miss_p99_ms": MISS_P99_MS,
                "activity_per_s": activity,
                "ws_compression": compression,
            }
            loadgen = Loadgen(spec, scratch)

            def presence() -> float | None:
                if mode == "ward":
                    return None  # the counter is per process: not read across workers
                try:
                    return float(_get_json(port, PRESENCE_PATH)["cpu_seconds"])
                except (OSError, ValueError, KeyError):
                    return None

            outcome = drive(loadgen, server.pid, idle_s, presence)
            outcome["presence_method"] = (
                "yakuba.chat.presence.cpu_seconds() (CPU time of the server's threads inside "
                "presence code), read over the idle window"
                if mode == "embedded"
                else "not measured in ward mode (per-process counter)"
            )
            outcome["mode"] = mode
            outcome["users"] = users
            return outcome
        finally:
            if loadgen is not None:
                loadgen.close()
            _stop(server)
            if worker is not None:
                _stop(worker)
            server_log.close()
            text = (scratch / "server.log").read_text(errors="replace")
            if "Traceback" in text:
                last = text[text.rindex("Traceback") :].splitlines()[:40]
                log("server log (the last traceback):", *last, sep="\n  ")
            if os.environ.get("BENCH_CHAT_KEEP_LOG"):
                shutil.copy(scratch / "server.log", os.environ["BENCH_CHAT_KEEP_LOG"])


def _database(mode: str, scratch: Path) -> AbstractContextManager[str]:
    """Embedded: a SQLite file in the scratch folder.  Ward: the PostgreSQL database
    ``bench_yakuba_chat``, created and dropped."""
    return scratch_database(scratch / "bench-chat.sqlite3" if mode == "embedded" else None, PG_NAME)


def _child_main(part: str, argv: list[str]) -> None:
    import django

    django.setup()
    sync = os.environ.get("BENCH_CHAT_SQLITE_SYNC")  # a diagnostic only: FULL is the product's
    if sync and part == "_serve":
        from django.conf import settings

        options = settings.DATABASES["default"].get("OPTIONS", {})
        if "init_command" in options:
            options["init_command"] = options["init_command"].replace(
                "synchronous=FULL", f"synchronous={sync}"
            )
    if part == "_setup":
        print(json.dumps(setup_data(int(argv[0]), int(argv[1]))))
    else:
        serve(int(argv[0]))


def setup_data(users: int, room_size: int) -> dict[str, Any]:
    """Users and their tokens in bulk (a benchmark fixture: ``bulk_create``, as a
    directory import would), then the channels through the real action."""
    from django.core.management import call_command

    from yakuba.chat.actions.conversations import do_create_project_channel
    from yakuba.directory.models import ApiToken, User
    from yakuba.directory.tokens import new_raw_token, token_digest
    from yakuba.lib import clock

    call_command("migrate", verbosity=0)
    now = clock.now()
    people = [
        User(
            username=f"bench{n:05d}",
            kind=User.Kind.STAFF,
            display_name=f"職員 {n + 1}号",
            password="!",  # unusable: these users never sign in
            date_joined=now,
        )
        for n in range(users)
    ]
    User.objects.bulk_create(people, batch_size=500)
    people = list(User.objects.filter(username__startswith="bench").order_by("username"))
    raws: list[str] = []
    tokens = []
    for person in people:
        prefix, raw = new_raw_token()
        raws.append(raw)
        tokens.append(
            ApiToken(
                user=person,
                name="bench-chat",
                prefix=prefix,
                digest=token_digest(raw),
                scopes=["realtime", "chat:send"],
                created_at=now,
            )
        )
    ApiToken.objects.bulk_create(tokens, batch_size=500)
    conversations = []
    for first in range(0, users, room_size):
        members = list(range(first, min(users, first + room_size)))
        channel = do_create_project_channel(
            name=f"ベンチ{first // room_size + 1}",
            description="bench-chat",
            owners=[people[members[0]]],
            members=[people[m] for m in members[1:]],
            acting_user=people[members[0]],
        )
        conversations.append({"id": channel.pk, "members": members})
    return {
        "tokens": raws,
        "user_ids": [person.pk for person in people],
        "conversations": conversations,
    }


def serve(port: int) -> None:
    """``yakuba serve`` as the embedded tier runs it (one process, the worker in a
    thread, uvicorn with the same options), with one more route for the benchmark:
    ``GET /_bench/presence`` answers ``yakuba.chat.presence.cpu_seconds()``, the CPU
    this process spent in presence code."""
    import threading

    import uvicorn

    from yakuba.asgi import application
    from yakuba.chat import presence
    from yakuba.tasks.worker import run_forever

    async def bench_application(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == PRESENCE_PATH:
            body = json.dumps({"cpu_seconds": presence.cpu_seconds()}).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"application/json")],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        await application(scope, receive, send)

    stop = threading.Event()
    threading.Thread(target=run_forever, args=(stop,), name="worker", daemon=True).start()
    try:
        uvicorn.run(
            bench_application,
            host="127.0.0.1",
            port=port,
            log_level="info",
            lifespan="off",
            ws_ping_interval=None,
        )
    finally:
        stop.set()


# --- Synapse ----------------------------------------------------------------------------


def synapse_run(db: str, rates: list[float], step: float) -> dict[str, Any]:
    with _scratch("synapse-bench-chat-") as scratch:
        server = chat_synapse.Synapse(scratch, _free_port(), db, SERVER_URL)
        loadgen = None
        try:
            started = time.monotonic()
            server.start()
            rooms = server.populate(LADDER_USERS, ROOM_SIZE)
            log(
                f"Synapse {db}: {LADDER_USERS} users, {len(rooms)} rooms in "
                f"{time.monotonic() - started:.1f} s"
            )
            spec = {
                "kind": "synapse",
                "host": "127.0.0.1",
                "port": server.port,
                "receivers": [{"token": user["token"]} for user in server.users],
                "conversations": [
                    {
                        "id": room["id"],
                        "members": room["members"],
                        "senders": [server.users[m]["token"] for m in room["members"]],
                    }
                    for room in rooms
                ],
                "steps": [{"rate": r, "duration": step} for r in rates],
                "drain_s": 5.0,
                "stop_on_miss": True,
                "miss_p99_ms": MISS_P99_MS,
            }
            loadgen = Loadgen(spec, scratch)
            assert server.process is not None
            outcome = drive(loadgen, server.process.pid, 0.0, lambda: None)
            outcome["db"] = db
            outcome["users"] = LADDER_USERS
            return outcome
        finally:
            if loadgen is not None:
                loadgen.close()
            server.stop()


if __name__ == "__main__":
    main()
