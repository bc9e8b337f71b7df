"""The WebSocket gateway at ``/ws``: one consumer per socket, a small state machine.

connecting ──hello──▶ ready ──▶ closed, and connecting ──▶ closed.  Any other move raises
``InvalidTransition``.  In ``connecting`` the socket is accepted and authenticated and
waits for ``{"op": "hello", "last_event_id": N}`` (or had ``?last_event_id=N``).  On hello
the socket first registers for live delivery, then replays from the database, so an
event committed in between is either in the replay or in the live queue, and ids already
sent are dropped: every event arrives exactly once, in id order.  See docs/realtime.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar
from urllib.parse import parse_qs

from asgiref.sync import sync_to_async
from channels.consumer import get_handler_name
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.db import close_old_connections

from yakuba.lib import clock
from yakuba.realtime import auth, bus, metrics, ops, topics
from yakuba.realtime.auth import Principal
from yakuba.realtime.models import EventStream, UserEvent

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

# Close codes (4000–4999 are the application's).
CLOSE_UNAUTHENTICATED = 4401  # no valid session or token, user inactive, session ended
CLOSE_PROTOCOL = 4400  # a malformed frame, or no hello in time
CLOSE_HEARTBEAT = 4408  # two pings went unanswered
CLOSE_GOING_AWAY = 1001
# Live events queued for one socket beyond this are dropped and re-read from the database.
QUEUE_LIMIT = 1000
# How long a new socket waits for the bus subscription before replaying anyway (the
# subscription makes every socket catch up when it comes up).
SUBSCRIBE_WAIT_SECONDS = 5.0


class State(enum.Enum):
    CONNECTING = "connecting"
    READY = "ready"
    CLOSED = "closed"


TRANSITIONS = {
    State.CONNECTING: {State.READY, State.CLOSED},
    State.READY: {State.CLOSED},
    State.CLOSED: set(),
}


class InvalidTransition(RuntimeError):
    """A socket was asked to move between states in a way the protocol forbids."""


class ConnectionState:
    def __init__(self) -> None:
        self.value = State.CONNECTING

    def advance(self, to: State) -> None:
        if to not in TRANSITIONS[self.value]:
            raise InvalidTransition(f"{self.value.value} → {to.value}")
        self.value = to


def in_db_thread(function: Callable[P, R]) -> Callable[P, Any]:
    """Run ``function`` in a worker thread with fresh database connections, outside the
    thread that Django's sync views share, so replays do not queue behind page loads."""

    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        close_old_connections()
        try:
            return function(*args, **kwargs)
        finally:
            close_old_connections()

    return sync_to_async(run, thread_sensitive=False)


@dataclass(frozen=True)
class Catchup:
    """Events after a given id, or the order to refetch from ``head``."""

    events: list[tuple[int, Any]]
    head: int
    refetch: bool


def read_after(user_id: int, after: int | None) -> Catchup:
    """The user's events after ``after`` (all of them, in order), or ``refetch`` when that
    is before the pruned part of the stream, more than ``REALTIME_MAX_REPLAY`` behind, or
    ahead of the stream (a client of another database).  ``after=None``: start at the head.
    """
    head, pruned = (
        EventStream.objects.filter(user_id=user_id)
        .values_list("last_event_id", "pruned_through")
        .first()
    ) or (0, 0)
    if after is None:
        return Catchup([], head, refetch=False)
    limit = settings.REALTIME_MAX_REPLAY
    if after < pruned or after > head or head - after > limit:
        return Catchup([], head, refetch=True)
    # No upper bound: events committed since the head was read are contiguous too.
    rows = list(
        UserEvent.objects.filter(user_id=user_id, event_id__gt=after)
        .order_by("event_id")
        .values_list("event_id", "payload")[: limit + 1]
    )
    if len(rows) > limit or (rows and rows[0][0] != after + 1):
        return Catchup([], max(head, rows[-1][0]), refetch=True)
    return Catchup(rows, head, refetch=False)


class Gateway(AsyncWebsocketConsumer):  # type: ignore[misc]  # channels is untyped
    """One WebSocket.  Also a ``bus.Subscriber``: ``deliver``/``catch_up`` are called from
    any thread and only queue work for this socket's own task."""

    user_id: int

    async def connect(self) -> None:
        self.state = ConnectionState()
        self.loop = asyncio.get_running_loop()
        # Stream events (id, event), live frames (pre-serialised text) and catch-up
        # orders (None), in the order they came: one writer keeps them in order.
        self.queue: asyncio.Queue[tuple[int, Any] | str | None] = asyncio.Queue()
        self.live_dropped = False
        self.last_sent = 0
        self.head_at_start = 0
        self.unanswered_pings = 0
        self.send_lock = asyncio.Lock()
        self.tasks: list[asyncio.Task[None]] = []
        self.registered = False
        self.announced = False  # ops.socket_ready ran; socket_closed must run too
        self.watched: set[str] = set()
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        principal = await in_db_thread(auth.authenticate)(self.scope.get("headers", []), query)
        # Accept before closing: a close before accept is an HTTP 403 without our code.
        await self.accept()
        if principal is None:
            metrics.inc("yakuba_realtime_connections_refused_total")
            await self.shut(CLOSE_UNAUTHENTICATED)
            return
        metrics.inc("yakuba_realtime_connections_total")
        self.principal: Principal = principal
        self.user_id = principal.user_id
        self.tasks.append(asyncio.create_task(self.heartbeat()))
        if "last_event_id" in query:
            await self.hello(query["last_event_id"][0])

    async def dispatch(self, message: dict[str, Any]) -> None:
        """Hand an ASGI message to its handler.  Channels' own ``dispatch`` first closes
        stale database connections, a hop to a worker thread for every frame (at 3,000
        sockets, 120 a second for heartbeats alone).  This consumer never touches the
        database on the event loop: its database work runs in ``in_db_thread``, which
        closes old connections around itself.  So the hop is skipped."""
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"no handler for message type {message.get('type')!r}")
        await handler(message)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        try:
            frame = json.loads(text_data or "")
            op = frame["op"]
        except (ValueError, TypeError, KeyError):
            await self.shut(CLOSE_PROTOCOL)
            return
        self.unanswered_pings = 0  # any well-formed frame shows the client is alive
        if op == "pong":
            return
        if op == "ping":
            await self.send_frame({"op": "pong"})
        elif op == "hello" and self.state.value is State.CONNECTING:
            await self.hello(frame.get("last_event_id"))
        elif op in {"watch", "unwatch"} and self.state.value is State.READY:
            await self.watch(op, frame.get("topic"))
        elif (handler := ops.handler_for(str(op))) and self.state.value is State.READY:
            try:
                reply = await in_db_thread(handler)(self.user_id, frame)
            except Exception:
                log.exception("op %s of user %s failed", op, self.user_id)
                reply = {"op": "error", "code": "failed", "got": str(op)[:40]}
            if reply is not None:
                await self.send_frame(reply)
        else:
            await self.send_frame({"op": "error", "code": "unexpected", "got": str(op)[:40]})

    async def disconnect(self, code: int) -> None:
        await self.shut(None)

    # --- the stream --------------------------------------------------------------

    async def hello(self, last_event_id: Any) -> None:
        try:
            after = None if last_event_id in (None, "") else int(last_event_id)
        except (TypeError, ValueError):
            await self.shut(CLOSE_PROTOCOL)
            return
        self.state.advance(State.READY)
        self.tasks.append(asyncio.create_task(self.stream(after)))

    async def stream(self, after: int | None) -> None:
        try:
            await self.run_stream(after)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("real-time stream of user %s failed", self.user_id)
            await self.shut(1011)

    async def run_stream(self, after: int | None) -> None:
        """Register, replay, then forward live events until the socket closes."""
        bus.local_sockets.add(self)
        self.registered = True
        await bus.get_bus().ensure_subscribed(SUBSCRIBE_WAIT_SECONDS)
        start = await in_db_thread(read_after)(self.user_id, after)
        self.head_at_start = start.head
        self.last_sent = start.head if after is None else after
        await self.forward(start, replayed=True)
        # The hooks run before "ready", so that an op the client sends on "ready" (such
        # as declaring whose presence it watches) finds the socket counted.
        self.announced = True
        try:
            await in_db_thread(ops.socket_ready)(self.user_id)
        except Exception:  # presence is swept later; the stream must go on
            log.exception("socket-ready hooks failed for user %s", self.user_id)
        await self.send_frame({"op": "ready", "last_event_id": self.last_sent})
        while self.state.value is State.READY:
            item = await self.queue.get()
            if item is None:
                await self.fill_gap()
                if self.live_dropped:
                    # Live frames are not in the stream: tell the client to resync them.
                    self.live_dropped = False
                    await self.send_frame({"op": "live_gap"})
            elif isinstance(item, str):
                await self.send_text(item)
            else:
                await self.forward_live(*item)

    async def forward_live(self, event_id: int, event: Any) -> None:
        if event_id <= self.last_sent:
            return  # already sent (replayed, or a retried publish)
        if event_id > self.last_sent + 1:
            # A publish overtook an earlier one, or some were lost: read the gap.
            await self.fill_gap()
            if event_id <= self.last_sent:
                return
        await self.forward(Catchup([(event_id, event)], event_id, refetch=False), replayed=False)

    async def fill_gap(self) -> None:
        await self.forward(await in_db_thread(read_after)(self.user_id, self.last_sent), True)

    async def forward(self, batch: Catchup, replayed: bool) -> None:
        if batch.refetch:
            metrics.inc("yakuba_realtime_refetch_total")
            # The head may be below what the client claimed (a client of another database).
            self.last_sent = batch.head
            await self.send_frame({"op": "refetch", "last_event_id": self.last_sent})
            return
        for event_id, event in batch.events:
            if event_id <= self.last_sent or self.state.value is State.CLOSED:
                continue
            await self.send_frame({"id": event_id, "event": event})
            self.last_sent = event_id
            metrics.inc("yakuba_realtime_events_delivered_total")
            if replayed:
                metrics.inc("yakuba_realtime_events_replayed_total")
            if isinstance(event, dict) and event.get("type") in {"session", "token"}:
                await self.on_credential_event(event_id, event)

    async def on_credential_event(self, event_id: int, event: dict[str, Any]) -> None:
        """Close the socket (4401) when the event ends its session (or all the user's
        sessions), or revokes the token it was opened with."""
        if event.get("type") == "token":
            if event.get("op") == "revoked" and event.get("token_id") == self.principal.token_id:
                metrics.inc("yakuba_realtime_session_closes_total")
                await self.shut(CLOSE_UNAUTHENTICATED)
            return
        if event.get("op") != "ended":
            return
        everyone = event.get("all") is True
        mine = self.principal.session_key is not None and self.principal.session_key in (
            event.get("session_keys") or []
        )
        if not (everyone or mine):
            return
        # A live end of this session closes at once.  A replayed one may be older than
        # this session (the user signed in again since), and a token is no session: for
        # those, close only if the credential no longer holds.
        live = event_id > self.head_at_start
        if (live and self.principal.session_key is not None) or not await self.recheck():
            metrics.inc("yakuba_realtime_session_closes_total")
            await self.shut(CLOSE_UNAUTHENTICATED)

    async def recheck(self) -> bool:
        """Does the socket's credential still hold?  Keeps its new ``recheck_at``."""
        again = await in_db_thread(auth.reauthenticate)(self.principal)
        if again is not None:
            self.principal = again
        return again is not None

    async def credential_expired(self) -> bool:
        """Has the credential run out by itself (token expiry, session timeout)?  Checked
        on each heartbeat; costs a query only once its ``recheck_at`` has passed."""
        recheck_at = self.principal.recheck_at
        if recheck_at is None or clock.now().timestamp() < recheck_at:
            return False
        return not await self.recheck()

    # --- topics ---------------------------------------------------------------------

    async def watch(self, op: str, topic: Any) -> None:
        """Start or stop watching a topic (see ``topics``).  The answer
        ``{"op": "watching", "topic"}`` comes after registration, so a page that
        refetches its state on that answer misses nothing."""
        if op == "unwatch":
            if isinstance(topic, str) and topic in self.watched:
                self.watched.discard(topic)
                bus.local_sockets.unwatch(self, topic)
            await self.send_frame({"op": "unwatched", "topic": str(topic)[:100]})
            return
        allowed = (
            isinstance(topic, str)
            and len(self.watched) < topics.MAX_WATCHES_PER_SOCKET
            and await in_db_thread(topics.may_watch)(self.user_id, topic)
        )
        if not allowed:
            await self.send_frame({"op": "error", "code": "forbidden", "topic": str(topic)[:100]})
            return
        self.watched.add(topic)
        bus.local_sockets.watch(self, topic)
        await self.send_frame({"op": "watching", "topic": topic})

    def deliver_topic(self, topic: str, event: dict[str, Any]) -> None:
        self._call_soon(self._send_topic, topic, event)

    def _send_topic(self, topic: str, event: dict[str, Any]) -> None:
        if self.state.value is State.READY:
            self.tasks.append(
                asyncio.create_task(
                    self.send_frame({"op": "topic", "topic": topic, "event": event})
                )
            )
            self.tasks = [task for task in self.tasks if not task.done()]

    # --- bus.Subscriber: called from any thread ------------------------------------

    def deliver(self, event_id: int, event: dict[str, Any]) -> None:
        self._call_soon(self._enqueue, (event_id, event))

    def catch_up(self) -> None:
        self._call_soon(self._enqueue, None)

    def deliver_live(self, frame: str) -> None:
        self._call_soon(self._enqueue, frame)

    def _call_soon(self, function: Callable[..., None], *args: Any) -> None:
        # A RuntimeError means the server's loop is gone, and the socket with it.
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(function, *args)

    def _enqueue(self, item: tuple[int, Any] | str | None) -> None:
        if self.queue.qsize() >= QUEUE_LIMIT:
            # A client this slow reads the rest from the database when it gets there.
            while not self.queue.empty():
                if isinstance(self.queue.get_nowait(), str):
                    self.live_dropped = True
            if isinstance(item, str):
                self.live_dropped = True
            item = None
        self.queue.put_nowait(item)

    # --- heartbeats, sending, closing ----------------------------------------------

    async def heartbeat(self) -> None:
        interval = float(settings.REALTIME_HEARTBEAT_SECONDS)
        ticks = 0
        while True:
            await asyncio.sleep(interval)
            ticks += 1
            if self.unanswered_pings >= 2:
                metrics.inc("yakuba_realtime_heartbeat_timeouts_total")
                await self.shut(CLOSE_HEARTBEAT)
                return
            if await self.credential_expired():
                metrics.inc("yakuba_realtime_session_closes_total")
                await self.shut(CLOSE_UNAUTHENTICATED)
                return
            if self.state.value is State.CONNECTING and ticks >= 2:
                await self.shut(CLOSE_PROTOCOL)  # authenticated, but never said hello
                return
            self.unanswered_pings += 1
            await self.send_frame({"op": "ping"})

    async def send_frame(self, frame: dict[str, Any]) -> None:
        await self.send_text(json.dumps(frame, ensure_ascii=False))

    async def send_text(self, text: str) -> None:
        if self.state.value is State.CLOSED:
            return
        try:
            async with self.send_lock:
                await self.send(text_data=text)
        except OSError:
            await self.shut(None)  # the client went away mid-send

    async def shut(self, code: int | None) -> None:
        """Close the socket (``code`` None: the client already went) and stop its tasks."""
        if self.state.value is State.CLOSED:
            return
        self.state.advance(State.CLOSED)
        if self.registered or self.watched:
            bus.local_sockets.remove(self)
        current = asyncio.current_task()
        for task in self.tasks:
            if task is not current:
                task.cancel()
        if self.announced:
            self.announced = False
            try:
                await in_db_thread(ops.socket_closed)(self.user_id)
            except Exception:  # presence is swept later; the close must go on
                log.exception("socket-closed hooks failed for user %s", self.user_id)
        if code is not None:
            await self.close(code=code)
