"""The open-loop load generator of ``make bench-chat``, run by ``bench/chat.py`` as a
process of its own so that its CPU is measured apart from the server's.

``python bench/chat_load.py SPEC.json`` reads a spec (written by the driver), opens the
receivers, prints ``{"event": "connected", …}`` and waits for a line on stdin; then runs
the steps and prints one ``{"event": "step", …}`` line per step and a final
``{"event": "done", …}`` line.  Progress goes to stderr.

Open loop: every message's send time is fixed before the first send (``rate`` messages
per second, evenly spaced, for ``duration`` seconds per step), and a message is fired at
its time whether or not earlier ones have been answered: each send runs as its own task
over a pool of keep-alive HTTP/1.1 connections that grows when every connection is busy.
A slow server therefore cannot slow the offered load down (no coordinated omission).
Latency is measured from a message's *scheduled* send time to its arrival at each
receiver, so lateness of the generator itself counts against the figure; the
generator's own CPU (``getrusage``) is reported beside each step so that a reader can
see when it, not the server, was the limit.

Receivers: Yakuba — one WebSocket per user on ``/ws`` (bearer token with the
``realtime`` scope), ``{"op": "hello"}`` then live frames
``{"op": "live", "event": {"type": "chat", "op": "message", … "client_key": "bkN" …}}``;
application pings are answered.  Synapse — one ``/sync`` long poll per user with
``since`` tokens; messages carry ``bench_n`` in their content.

Only the host given in the spec is contacted (the driver passes 127.0.0.1).
"""

from __future__ import annotations

import asyncio
import json
import re
import resource
import sys
import time
from typing import Any
from urllib.parse import quote

KEY_PATTERN = re.compile(r'"client_key":\s*"bk(\d+)"')
SENDER_POOL_LIMIT = 512
CONNECT_CONCURRENCY = 64


def log(*parts: Any) -> None:
    print("[loadgen]", *parts, file=sys.stderr, flush=True)


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# --- a small HTTP/1.1 client (keep-alive; Content-Length and chunked bodies) ---------------


class HttpError(Exception):
    pass


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.usable = True

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        reader, writer = await asyncio.open_connection(host, port, limit=2**24)
        return cls(reader, writer)

    async def request(
        self, method: str, path: str, headers: dict[str, str], body: bytes = b""
    ) -> tuple[int, bytes]:
        head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        head += "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        if body or method in {"POST", "PUT"}:
            head += f"Content-Length: {len(body)}\r\n"
        try:
            self.writer.write(head.encode("latin-1") + b"\r\n" + body)
            status_line = await self.reader.readline()
            if not status_line:
                self.usable = False
                raise HttpError("connection closed")
            status = int(status_line.split(b" ", 2)[1])
            length: int | None = None
            chunked = False
            while True:
                line = await self.reader.readline()
                if line in (b"\r\n", b"\n", b""):
                    break
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value.strip())
                elif name == b"transfer-encoding" and b"chunked" in value.lower():
                    chunked = True
                elif name == b"connection" and b"close" in value.lower():
                    self.usable = False
            if chunked:
                parts = []
                while True:
                    size = int((await self.reader.readline()).split(b";")[0].strip(), 16)
                    if size == 0:
                        await self.reader.readline()
                        break
                    parts.append(await self.reader.readexactly(size))
                    await self.reader.readline()
                data = b"".join(parts)
            elif length is not None:
                data = await self.reader.readexactly(length)
            else:
                data = await self.reader.read()
                self.usable = False
        except (OSError, RuntimeError, ValueError, IndexError, asyncio.IncompleteReadError) as exc:
            self.usable = False
            raise HttpError(repr(exc)) from exc
        return status, data

    def close(self) -> None:
        self.usable = False
        self.writer.close()


class Pool:
    """Keep-alive connections for the senders; a new one whenever all are busy (up to a
    limit, beyond which a send waits for a connection: its latency still counts from its
    scheduled time)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.idle: list[Connection] = []
        self.opened = 0
        self.slots = asyncio.Semaphore(SENDER_POOL_LIMIT)

    async def request(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, bytes]:
        async with self.slots:
            # A kept connection may have been closed by the server's keep-alive timeout:
            # then the request goes again on a new one (sends are idempotent by their
            # client key).
            for attempt in range(3):
                reused = bool(self.idle) and attempt < 2
                connection = self.idle.pop() if reused else None
                if connection is None:
                    connection = await Connection.open(self.host, self.port)
                    self.opened += 1
                try:
                    return await connection.request(method, path, headers, body)
                except HttpError:
                    if not reused:
                        raise
                finally:
                    if connection.usable:
                        self.idle.append(connection)
                    else:
                        connection.close()
            raise HttpError("no connection")


# --- the run -----------------------------------------------------------------------------


class Run:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.kind: str = spec["kind"]
        self.host: str = spec["host"]
        self.port: int = spec["port"]
        self.first_n: int = spec.get("first_n", 0)
        # conversations: [{"id": ..., "senders": [token, ...], "members": [receiver index]}]
        self.conversations: list[dict[str, Any]] = spec["conversations"]
        self.receivers: list[dict[str, Any]] = spec["receivers"]
        self.connected = [False] * len(self.receivers)
        self.connect_errors: list[str] = []
        self.closed_early = 0
        # message n (relative to first_n) -> scheduled time, conversation index, step
        self.scheduled: list[float] = []
        self.conversation_of: list[int] = []
        self.step_of: list[int] = []
        self.arrivals: list[int] = []
        self.expected_of: list[int] = []
        self.latencies: dict[int, list[float]] = {}
        self.stray = 0
        self.send_errors: dict[int, int] = {}
        self.send_error_samples: list[str] = []
        self.send_times: dict[int, list[float]] = {}
        self.pool = Pool(self.host, self.port)
        self.tasks: set[asyncio.Task[Any]] = set()
        self.stopping = False
        self.sockets: dict[int, Any] = {}
        self.activity_sent = 0

    async def churn(self, per_second: float) -> None:
        """Presence churn at steady state: ``per_second`` idle/active changes in all,
        from random connected clients (``{"op": "chat.activity", "idle": …}``)."""
        import random

        from websockets.exceptions import WebSocketException

        rng = random.Random(7)
        idle: dict[int, bool] = {}
        while not self.stopping:
            await asyncio.sleep(rng.expovariate(per_second))
            if not self.sockets:
                continue
            index = rng.choice(list(self.sockets))
            idle[index] = not idle.get(index, False)
            try:
                await self.sockets[index].send(
                    json.dumps({"op": "chat.activity", "idle": idle[index]})
                )
                self.activity_sent += 1
            except WebSocketException:
                pass

    def stopped(self) -> bool:
        return self.stopping

    # arrivals ---------------------------------------------------------------------

    def arrived(self, n: int, at: float) -> None:
        index = n - self.first_n
        if not 0 <= index < len(self.scheduled):
            self.stray += 1
            return
        self.arrivals[index] += 1
        if self.arrivals[index] <= self.expected_of[index]:
            self.latencies.setdefault(self.step_of[index], []).append(at - self.scheduled[index])

    # Yakuba receivers ---------------------------------------------------------------

    async def yakuba_receiver(self, index: int, gate: asyncio.Semaphore) -> None:
        from websockets.asyncio.client import connect
        from websockets.exceptions import WebSocketException

        token = self.receivers[index]["token"]
        compression = "deflate" if self.spec.get("ws_compression") else None
        try:
            async with gate:
                ws = await connect(
                    f"ws://{self.host}:{self.port}/ws",
                    additional_headers={"Authorization": f"Bearer {token}"},
                    compression=compression,
                    ping_interval=None,
                    max_queue=None,
                    open_timeout=120,
                    close_timeout=1,
                )
                await ws.send('{"op": "hello"}')
                while True:
                    frame = await asyncio.wait_for(ws.recv(), 120)
                    if isinstance(frame, str) and '"op": "ready"' in frame:
                        break
        except (TimeoutError, OSError, WebSocketException) as exc:
            self.connect_errors.append(repr(exc)[:200])
            return
        self.connected[index] = True
        self.sockets[index] = ws
        watch = self.receivers[index].get("watch")
        if watch:
            # The people on this client's screen: its channel's members (presence dots).
            await ws.send(json.dumps({"op": "chat.presence_watch", "users": watch}))
        arrived, monotonic, search = self.arrived, time.monotonic, KEY_PATTERN.search
        try:
            async for frame in ws:
                at = monotonic()
                if not isinstance(frame, str):
                    continue
                found = search(frame)
                if found is not None:
                    arrived(int(found.group(1)), at)
                elif frame.startswith('{"op": "ping"'):
                    await ws.send('{"op": "pong"}')
        except WebSocketException:
            pass
        if not self.stopping:
            self.closed_early += 1

    # Synapse receivers ----------------------------------------------------------------

    async def synapse_receiver(self, index: int, gate: asyncio.Semaphore) -> None:
        token = self.receivers[index]["token"]
        headers = {"Authorization": f"Bearer {token}"}
        flt = quote(
            json.dumps({"room": {"timeline": {"limit": 1}, "state": {"lazy_load_members": True}}})
        )
        try:
            async with gate:
                connection = await Connection.open(self.host, self.port)
                status, body = await connection.request(
                    "GET", f"/_matrix/client/v3/sync?timeout=0&filter={flt}", headers
                )
                if status != 200:
                    raise HttpError(f"initial sync {status}: {body[:200]!r}")
                since = json.loads(body)["next_batch"]
        except (OSError, HttpError, ValueError, KeyError) as exc:
            self.connect_errors.append(repr(exc)[:200])
            return
        self.connected[index] = True
        monotonic = time.monotonic
        while not self.stopping:
            try:
                if not connection.usable:
                    connection = await Connection.open(self.host, self.port)
                status, body = await connection.request(
                    "GET",
                    f"/_matrix/client/v3/sync?timeout=30000&since={quote(since)}&filter={flt}",
                    headers,
                )
            except (OSError, HttpError) as exc:
                if self.stopped():
                    return
                self.connect_errors.append(repr(exc)[:200])
                await asyncio.sleep(0.5)
                continue
            at = monotonic()
            if status != 200:
                self.connect_errors.append(f"sync {status}: {body[:200]!r}")
                await asyncio.sleep(0.5)
                continue
            answer = json.loads(body)
            since = answer.get("next_batch", since)
            for room in answer.get("rooms", {}).get("join", {}).values():
                for event in room.get("timeline", {}).get("events", []):
                    content = event.get("content") or {}
                    if event.get("type") == "m.room.message" and "bench_n" in content:
                        self.arrived(int(content["bench_n"]), at)

    # senders ------------------------------------------------------------------------

    def request_of(self, n: int) -> tuple[str, str, dict[str, str], bytes]:
        index = n - self.first_n
        conversation = self.conversations[self.conversation_of[index]]
        senders = conversation["senders"]
        token = senders[(index // len(self.conversations)) % len(senders)]
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        if self.kind == "yakuba":
            body = json.dumps({"text": f"ベンチマーク {n}", "client_key": f"bk{n}"})
            path = f"/api/chat/conversations/{conversation['id']}/messages"
            return "POST", path, headers, body.encode()
        body = json.dumps({"msgtype": "m.text", "body": f"ベンチマーク {n}", "bench_n": n})
        room = quote(str(conversation["id"]), safe="")
        path = f"/_matrix/client/v3/rooms/{room}/send/m.room.message/bk{n}"
        return "PUT", path, headers, body.encode()

    async def send(self, n: int) -> None:
        index = n - self.first_n
        step = self.step_of[index]
        method, path, headers, body = self.request_of(n)
        try:
            status, answer = await self.pool.request(method, path, headers, body)
        except (OSError, HttpError) as exc:
            status, answer = 0, repr(exc).encode()
        if status not in (200, 201):
            self.send_errors[step] = self.send_errors.get(step, 0) + 1
            if len(self.send_error_samples) < 10:
                self.send_error_samples.append(f"{status} {answer[:200]!r}")
            return
        self.send_times.setdefault(step, []).append(time.monotonic() - self.scheduled[index])

    def schedule(self, step: int, rate: float, duration: float, start: float) -> range:
        count = max(1, round(rate * duration))
        first = len(self.scheduled)
        members = [sum(1 for r in c["members"] if self.connected[r]) for c in self.conversations]
        for k in range(count):
            index = first + k
            self.scheduled.append(start + k / rate)
            conversation = index % len(self.conversations)
            self.conversation_of.append(conversation)
            self.step_of.append(step)
            self.arrivals.append(0)
            self.expected_of.append(members[conversation])
        return range(first, first + count)

    async def fire(self, indices: range) -> None:
        monotonic, sleep = time.monotonic, asyncio.sleep
        for index in indices:
            delay = self.scheduled[index] - monotonic()
            if delay > 0:
                await sleep(delay)
            task = asyncio.create_task(self.send(self.first_n + index))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def run_step(
        self, step: int, rate: float, duration: float, drain: float
    ) -> dict[str, Any]:
        start = time.monotonic() + 0.2
        indices = self.schedule(step, rate, duration, start)
        emit({"event": "step_start", "step": step, "rate": rate})
        cpu0, wall0 = cpu_seconds(), time.monotonic()
        await self.fire(indices)
        last = self.scheduled[indices[-1]]
        expected = sum(self.expected_of[i] for i in indices)
        deadline = last + drain
        while time.monotonic() < deadline:
            got = sum(min(self.arrivals[i], self.expected_of[i]) for i in indices)
            if got >= expected and not self.tasks:
                break
            await asyncio.sleep(0.05)
        cpu = cpu_seconds() - cpu0
        wall = time.monotonic() - wall0
        delivered = sum(min(self.arrivals[i], self.expected_of[i]) for i in indices)
        duplicates = sum(max(0, self.arrivals[i] - self.expected_of[i]) for i in indices)
        latencies = sorted(self.latencies.get(step, []))
        sends = sorted(self.send_times.get(step, []))
        return {
            "event": "step",
            "step": step,
            "rate": rate,
            "duration_s": duration,
            "messages": len(indices),
            "sent_ok": len(sends),
            "send_errors": self.send_errors.get(step, 0),
            "expected": expected,
            "delivered": delivered,
            "duplicates": duplicates,
            "p50_ms": percentile_ms(latencies, 0.50),
            "p99_ms": percentile_ms(latencies, 0.99),
            "max_ms": round(latencies[-1] * 1000, 1) if latencies else None,
            "send_p50_ms": percentile_ms(sends, 0.50),
            "send_p99_ms": percentile_ms(sends, 0.99),
            "loadgen_cpu_pct": round(100 * cpu / wall, 1),
            "sender_connections": self.pool.opened,
            "receivers_connected": sum(self.connected),
            "receivers_closed_early": self.closed_early,
            "wall_s": round(wall, 2),
            # time.monotonic() is one clock for every process: the driver reads the
            # server's CPU over exactly this window.
            "t_start": wall0,
            "t_end": wall0 + wall,
        }

    async def main(self) -> None:
        gate = asyncio.Semaphore(self.spec.get("connect_concurrency", CONNECT_CONCURRENCY))
        receiver = self.yakuba_receiver if self.kind == "yakuba" else self.synapse_receiver
        started = time.monotonic()
        cpu0 = cpu_seconds()
        receivers = [asyncio.create_task(receiver(i, gate)) for i in range(len(self.receivers))]
        # Wait until every receiver is connected or has failed.
        while True:
            done = sum(self.connected) + len(self.connect_errors)
            if done >= len(self.receivers):
                break
            await asyncio.sleep(0.2)
        log(
            f"{sum(self.connected)}/{len(self.receivers)} receivers connected in "
            f"{time.monotonic() - started:.1f} s ({len(self.connect_errors)} failed)"
        )
        emit(
            {
                "event": "connected",
                "connected": sum(self.connected),
                "failed": len(self.connect_errors),
                "connect_s": round(time.monotonic() - started, 1),
                "connect_errors": self.connect_errors[:5],
                "loadgen_cpu_s": round(cpu_seconds() - cpu0, 2),
            }
        )
        churn = None
        if self.kind == "yakuba" and self.spec.get("activity_per_s"):
            churn = asyncio.create_task(self.churn(float(self.spec["activity_per_s"])))
        # The driver measures the idle server here, then says go.
        idle_cpu0, idle_wall0 = cpu_seconds(), time.monotonic()
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        idle_pct = 100 * (cpu_seconds() - idle_cpu0) / max(1e-9, time.monotonic() - idle_wall0)
        results = []
        for number, step in enumerate(self.spec["steps"]):
            log(f"step {number}: {step['rate']} msg/s for {step['duration']} s")
            result = await self.run_step(
                number, float(step["rate"]), float(step["duration"]), float(self.spec["drain_s"])
            )
            result["measured"] = step.get("measure", True)
            result["idle_loadgen_cpu_pct"] = round(idle_pct, 1)
            results.append(result)
            emit(result)
            log(
                f"step {number}: delivered {result['delivered']}/{result['expected']}, "
                f"p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms, "
                f"send errors {result['send_errors']}, loadgen CPU {result['loadgen_cpu_pct']} %"
            )
            missed = result["delivered"] < result["expected"] or (
                result["p99_ms"] is None or result["p99_ms"] > self.spec.get("miss_p99_ms", 1e12)
            )
            if missed and step.get("measure", True) and self.spec.get("stop_on_miss"):
                break
        self.stopping = True
        emit(
            {
                "event": "done",
                "stray": self.stray,
                "activity_sent": self.activity_sent,
                "send_error_samples": self.send_error_samples,
                "connect_errors": self.connect_errors[:5],
            }
        )
        for task in receivers:
            task.cancel()
        if churn is not None:
            churn.cancel()


def percentile_ms(ordered: list[float], share: float) -> float | None:
    if not ordered:
        return None
    return round(ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1000, 1)


def emit(line: dict[str, Any]) -> None:
    print(json.dumps(line), flush=True)


def main() -> None:
    with open(sys.argv[1], encoding="utf-8") as handle:
        spec = json.load(handle)
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        import uvloop
    except ImportError:
        asyncio.run(Run(spec).main())
    else:
        uvloop.run(Run(spec).main())


if __name__ == "__main__":
    main()
