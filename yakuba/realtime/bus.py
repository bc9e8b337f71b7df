"""The event bus: how an event committed in one process reaches the sockets of every
process.

Embedded tier (``REDIS_URL`` empty): the bus is this process; ``publish`` hands the event
straight to the local sockets.  Ward tier: every process holds exactly one Redis
subscription, on the channel ``{REDIS_PREFIX}:realtime:events``, and delivers what it
receives to its own sockets.  A publish is one Redis message per event carrying the list of
(user id, event id) deliveries, never one message per recipient.

Publishing never blocks the caller on Redis: messages go into an in-memory outbox that a
background thread (one per process, with its own event loop and a ``redis.asyncio``
client) sends in order, retrying while Redis is unreachable.  The outbox is flushed when
the process exits.  Events are persisted before they are published, so what the bus
loses (a full outbox, a process killed with messages still queued, a subscription that
was down) is recovered from the database: every socket catches up after the subscription
comes back, and a socket that sees a gap in a stream's ids reads the missing events.
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import concurrent.futures
import json
import logging
import os
import threading
from collections.abc import Callable
from typing import Any, Protocol

from django.conf import settings

from yakuba.realtime import metrics

log = logging.getLogger(__name__)

Deliveries = list[tuple[int, int]]
# Messages waiting for Redis beyond this are dropped (oldest first) and counted.
OUTBOX_LIMIT = 10_000
# Messages sent to Redis in one pipeline round trip when a burst is queued.
PUBLISH_BATCH = 200
# How often the in-process bus looks for events sent by other processes.
POLL_SECONDS = 1.0


class Subscriber(Protocol):
    """A local socket.  Both methods are called from any thread and must not block."""

    user_id: int
    # The last event id written to the socket (read from other threads; a stale value
    # only causes a harmless extra catch-up).
    last_sent: int

    def deliver(self, event_id: int, event: dict[str, Any]) -> None:
        """Queue one live event of this subscriber's stream."""

    def catch_up(self) -> None:
        """Read whatever this subscriber may have missed from the database."""

    def deliver_topic(self, topic: str, event: dict[str, Any]) -> None:
        """Queue one event of a topic this subscriber watches (``topics``)."""

    def deliver_live(self, frame: str) -> None:
        """Queue one live frame (``send_live_on_commit``), already serialised."""


class LocalSockets:
    """The sockets of this process, by user and by watched topic."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_user: dict[int, set[Subscriber]] = {}
        self._by_topic: dict[str, set[Subscriber]] = {}

    def add(self, subscriber: Subscriber) -> None:
        with self._lock:
            self._by_user.setdefault(subscriber.user_id, set()).add(subscriber)

    def remove(self, subscriber: Subscriber) -> None:
        with self._lock:
            sockets = self._by_user.get(subscriber.user_id)
            if sockets is not None:
                sockets.discard(subscriber)
                if not sockets:
                    del self._by_user[subscriber.user_id]
            for topic in [t for t, watchers in self._by_topic.items() if subscriber in watchers]:
                self._unwatch(subscriber, topic)

    def watch(self, subscriber: Subscriber, topic: str) -> None:
        with self._lock:
            self._by_topic.setdefault(topic, set()).add(subscriber)

    def unwatch(self, subscriber: Subscriber, topic: str) -> None:
        with self._lock:
            self._unwatch(subscriber, topic)

    def _unwatch(self, subscriber: Subscriber, topic: str) -> None:
        watchers = self._by_topic.get(topic)
        if watchers is not None:
            watchers.discard(subscriber)
            if not watchers:
                del self._by_topic[topic]

    def dispatch_topic(self, topic: str, event: dict[str, Any]) -> None:
        """Hand a topic's event to the local sockets watching it."""
        with self._lock:
            targets = list(self._by_topic.get(topic, ()))
        for subscriber in targets:
            subscriber.deliver_topic(topic, event)

    def count(self) -> int:
        with self._lock:
            return sum(len(sockets) for sockets in self._by_user.values())

    def dispatch_live(self, event: dict[str, Any], user_ids: list[int]) -> None:
        """Hand a live event to the local sockets of ``user_ids``, serialised once for
        all of them (a chat message to a 50-member channel is one ``json.dumps``)."""
        with self._lock:
            targets = [s for user_id in user_ids for s in self._by_user.get(user_id, ())]
        if not targets:
            return
        frame = json.dumps({"op": "live", "event": event}, ensure_ascii=False)
        for subscriber in targets:
            subscriber.deliver_live(frame)

    def user_ids(self) -> list[int]:
        """The users with at least one socket in this process."""
        with self._lock:
            return list(self._by_user)

    def dispatch(self, event: dict[str, Any], deliveries: Deliveries) -> None:
        """Hand ``event`` to the local sockets of each recipient."""
        with self._lock:
            targets = [
                (subscriber, event_id)
                for user_id, event_id in deliveries
                for subscriber in self._by_user.get(user_id, ())
            ]
        for subscriber, event_id in targets:
            subscriber.deliver(event_id, event)

    def catch_up_lagging(self, read_heads: Callable[[list[int]], dict[int, int]]) -> None:
        """Make every socket whose stream head (from ``read_heads``) is past what it
        sent catch up."""
        with self._lock:
            users = list(self._by_user)
        if not users:
            return
        heads = read_heads(users)
        with self._lock:
            behind = [
                subscriber
                for user_id, sockets in self._by_user.items()
                for subscriber in sockets
                if heads.get(user_id, 0) > subscriber.last_sent
            ]
        for subscriber in behind:
            subscriber.catch_up()

    def catch_up_all(self) -> None:
        with self._lock:
            everyone = [s for sockets in self._by_user.values() for s in sockets]
        for subscriber in everyone:
            subscriber.catch_up()


local_sockets = LocalSockets()


# Handlers of process messages (``publish_to_processes``), by kind.
ProcessHandler = Callable[[dict[str, Any]], None]
_process_handlers: dict[str, ProcessHandler] = {}


def on_process_message(kind: str, handler: ProcessHandler) -> None:
    """Let ``handler(data)`` receive, in every process, the messages that
    ``publish_to_processes(kind, data)`` sends.  It runs in the bus's thread (the
    publisher's in the embedded tier): it must not block or do I/O; it filters against
    what this process holds and hands frames to ``local_sockets``."""
    _process_handlers[kind] = handler


def dispatch_message(message: dict[str, Any]) -> None:
    """Hand one bus message to this process's sockets: a topic event
    ``{"topic", "event"}``, a live event ``{"live", "users"}``, a process message
    ``{"kind", "data"}`` or a stream event ``{"event", "deliveries"}``."""
    if "kind" in message:
        handler = _process_handlers.get(str(message["kind"]))
        if handler is None:
            log.warning("real-time bus: no handler for messages of kind %r", message["kind"])
        else:
            try:
                handler(dict(message["data"]))
            except Exception:  # one app's failure must not stop the bus
                log.exception("real-time bus: the handler of %r failed", message["kind"])
        return
    if "topic" in message:
        local_sockets.dispatch_topic(str(message["topic"]), dict(message["event"]))
        return
    if "live" in message:
        local_sockets.dispatch_live(dict(message["live"]), [int(u) for u in message["users"]])
        return
    deliveries = [(int(u), int(e)) for u, e in message["deliveries"]]
    local_sockets.dispatch(message["event"], deliveries)


def newest_event_id() -> int | None:
    """The id of the newest stream event on SQLite, where ids commit in order (one
    writer at a time): when it has not moved, no other process sent anything and the
    poller skips reading the heads of every connected user (3,000 ids each second).
    None on PostgreSQL, where an earlier id can commit after a later one: there the
    heads are always read."""
    from django.db import connection

    from yakuba.realtime.models import UserEvent

    if connection.vendor != "sqlite":
        return None
    return UserEvent.objects.order_by("-pk").values_list("pk", flat=True).first() or 0


def read_heads(user_ids: list[int]) -> dict[int, int]:
    from yakuba.realtime.models import EventStream

    return dict(
        EventStream.objects.filter(user_id__in=user_ids).values_list("user_id", "last_event_id")
    )


class Bus:
    """The in-process bus (embedded tier); the base of the Redis bus.

    Events sent by this process reach its sockets at once.  Events sent by another process
    on the same database (``yakuba worker`` run apart, a CLI command such as a
    deactivation) are found by a poller that, while this process has sockets, reads their
    users' stream heads every ``POLL_SECONDS`` (one query) and lets lagging sockets catch
    up from the database.
    """

    def __init__(self) -> None:
        self._poller: threading.Thread | None = None
        self._stop = threading.Event()
        self._poller_lock = threading.Lock()

    def publish(self, message: dict[str, Any]) -> None:
        dispatch_message(message)

    async def ensure_subscribed(self, timeout: float) -> bool:
        """True once events published from now on will reach this process's sockets."""
        with self._poller_lock:
            if self._poller is None and not self._stop.is_set():
                self._poller = threading.Thread(
                    target=self._poll, name="yakuba-bus-poller", daemon=True
                )
                self._poller.start()
        return True

    def _poll(self) -> None:
        from django.db import close_old_connections

        seen: int | None = None
        while not self._stop.wait(POLL_SECONDS):
            try:
                newest = newest_event_id()
                if newest is None or newest != seen:
                    local_sockets.catch_up_lagging(read_heads)
                    seen = newest
            except Exception:  # the next round tries again
                log.warning("real-time bus: polling stream heads failed", exc_info=True)
            finally:
                close_old_connections()

    def healthy(self, timeout: float = 1.0) -> bool:
        return True

    def connected(self) -> bool:
        return True

    def queue_length(self) -> int:
        return 0

    def flush(self, timeout: float) -> bool:
        """Wait until every queued message was handed over; False on timeout."""
        return True

    def close(self) -> None:
        """Stop the bus (tests, and settings that changed)."""
        self._stop.set()


class RedisBus(Bus):
    """Redis pub/sub through one background thread per process."""

    def __init__(self, url: str, prefix: str) -> None:
        super().__init__()
        self.url = url
        self.channel = f"{prefix}:realtime:events"
        self._lock = threading.Lock()
        self._drained = threading.Condition(self._lock)
        self._outbox: collections.deque[str] = collections.deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread_started = False
        self._ready = threading.Event()
        self._wake: asyncio.Event | None = None
        self._client: Any = None
        self._subscription_wanted = False
        self._subscribed = threading.Event()
        self._publisher_ok = True
        self._closed = False

    # --- the background thread --------------------------------------------------

    def _ensure_started(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._closed:
                raise RuntimeError("the real-time bus was closed")
            start = not self._thread_started
            self._thread_started = True
        if start:
            threading.Thread(target=self._run, name="yakuba-bus", daemon=True).start()
            atexit.register(self._flush_at_exit)
        if not self._ready.wait(10) or self._loop is None:
            raise RuntimeError("the real-time bus did not start")
        return self._loop

    def _run(self) -> None:
        import redis.asyncio

        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._wake = asyncio.Event()
        # health_check_interval makes the subscription notice a silently dead link.
        self._client = redis.asyncio.Redis.from_url(
            self.url, socket_connect_timeout=2, socket_timeout=10, health_check_interval=15
        )
        publisher = loop.create_task(self._publisher())
        self._loop = loop
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            publisher.cancel()
            loop.run_until_complete(self._shutdown())
            loop.close()

    async def _shutdown(self) -> None:
        for task in asyncio.all_tasks():
            if task is not asyncio.current_task():
                task.cancel()
        try:
            await self._client.aclose()
        except Exception:  # nothing to do about a failing close at exit
            log.debug("closing the Redis client failed", exc_info=True)

    async def _publisher(self) -> None:
        assert self._wake is not None
        backoff = 0.05
        while True:
            await self._wake.wait()
            self._wake.clear()
            while True:
                with self._lock:
                    batch = [self._outbox[i] for i in range(min(len(self._outbox), PUBLISH_BATCH))]
                if not batch:
                    break
                try:
                    async with self._client.pipeline(transaction=False) as pipe:
                        for message in batch:
                            pipe.publish(self.channel, message)
                        await pipe.execute()
                except Exception as exc:  # any failure: keep the batch, retry
                    metrics.inc("yakuba_realtime_publish_errors_total")
                    if self._publisher_ok:
                        log.warning("real-time bus: publishing to Redis failed: %s", exc)
                    self._publisher_ok = False
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 2.0)
                    continue
                self._publisher_ok = True
                backoff = 0.05
                with self._lock:
                    for _ in batch:
                        self._outbox.popleft()
                    if not self._outbox:
                        self._drained.notify_all()

    async def _subscriber(self) -> None:
        backoff = 0.05
        while True:
            pubsub = self._client.pubsub()
            try:
                await pubsub.subscribe(self.channel)
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=False, timeout=1)
                    if message is None:
                        continue
                    if message["type"] == "subscribe":
                        self._subscribed.set()
                        metrics.inc("yakuba_realtime_subscriptions_total")
                        backoff = 0.05
                        # Anything published while no subscription was up (Redis away, or
                        # a socket that stopped waiting for the first one) is only in the
                        # database.
                        local_sockets.catch_up_all()
                    elif message["type"] == "message":
                        self._dispatch(message["data"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any failure: resubscribe after a pause
                if self._subscribed.is_set():
                    log.warning("real-time bus: Redis subscription lost: %s", exc)
                self._subscribed.clear()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
            finally:
                try:
                    await pubsub.aclose()
                except Exception:  # the link is already broken
                    log.debug("closing a broken subscription failed", exc_info=True)

    def _dispatch(self, data: bytes | str) -> None:
        try:
            dispatch_message(json.loads(data))
        except (ValueError, KeyError, TypeError):
            log.error("real-time bus: ignored a malformed message on %s", self.channel)

    def _start_subscription(self) -> None:
        assert self._loop is not None
        self._loop.create_task(self._subscriber())

    # --- the public face --------------------------------------------------------

    def publish(self, message: dict[str, Any]) -> None:
        data = json.dumps(message, separators=(",", ":"), ensure_ascii=False)
        loop = self._ensure_started()
        with self._lock:
            if len(self._outbox) >= OUTBOX_LIMIT:
                # Dropping the newest keeps the batch in flight at the front intact.
                metrics.inc("yakuba_realtime_publish_dropped_total")
                log.error("real-time bus: outbox full; the event stays in the database only")
                return
            self._outbox.append(data)
        try:
            loop.call_soon_threadsafe(self._wake_publisher)
        except RuntimeError:
            log.error("real-time bus: stopped; the event stays in the database only")

    def _wake_publisher(self) -> None:
        assert self._wake is not None
        self._wake.set()

    async def ensure_subscribed(self, timeout: float) -> bool:
        loop = self._ensure_started()
        with self._lock:
            start = not self._subscription_wanted
            self._subscription_wanted = True
        if start:
            loop.call_soon_threadsafe(self._start_subscription)
        waited = 0.0
        while not self._subscribed.is_set():
            if waited >= timeout:
                return False
            await asyncio.sleep(0.01)
            waited += 0.01
        return True

    def healthy(self, timeout: float = 1.0) -> bool:
        """Redis answers a PING, and the subscription (if this process has one) is up."""
        try:
            loop = self._ensure_started()
            future = asyncio.run_coroutine_threadsafe(self._client.ping(), loop)
            answered = bool(future.result(timeout))
        except (concurrent.futures.TimeoutError, RuntimeError, OSError):
            return False
        except Exception:  # redis errors of every kind mean "unhealthy"
            return False
        return answered and (not self._subscription_wanted or self._subscribed.is_set())

    def connected(self) -> bool:
        subscription_up = not self._subscription_wanted or self._subscribed.is_set()
        return self._publisher_ok and subscription_up

    def queue_length(self) -> int:
        with self._lock:
            return len(self._outbox)

    def flush(self, timeout: float) -> bool:
        with self._drained:
            return self._drained.wait_for(lambda: not self._outbox, timeout)

    def _flush_at_exit(self) -> None:
        if not self.flush(5.0):
            log.error("real-time bus: %d events not published before exit", self.queue_length())

    def close(self) -> None:
        self._stop.set()
        if not self.flush(2.0):
            log.error("real-time bus: closed with %d events unpublished", self.queue_length())
        atexit.unregister(self._flush_at_exit)
        with self._lock:
            self._outbox.clear()
            self._closed = True
            loop, self._loop = self._loop, None
        if loop is not None:
            loop.call_soon_threadsafe(loop.stop)


_bus_lock = threading.Lock()
_bus: tuple[tuple[str, str], Bus] | None = None


def get_bus() -> Bus:
    """This process's bus, made on first use from ``REDIS_URL`` and ``REDIS_PREFIX``."""
    global _bus
    key = (settings.REDIS_URL, settings.REDIS_PREFIX)
    with _bus_lock:
        if _bus is not None and _bus[0] == key:
            return _bus[1]
        old = _bus
        bus: Bus = RedisBus(*key) if key[0] else Bus()
        _bus = (key, bus)
    if old is not None:
        old[1].close()
    return bus


def _forget_after_fork() -> None:
    """A forked child has none of the parent's threads or sockets: start afresh."""
    global _bus, _bus_lock, local_sockets
    _bus, _bus_lock = None, threading.Lock()
    local_sockets = LocalSockets()


os.register_at_fork(after_in_child=_forget_after_fork)


def publish(event: dict[str, Any], deliveries: Deliveries) -> None:
    """Deliver ``event`` to every process's sockets of the given (user id, event id)
    pairs.  Called after commit; never raises for a bus failure (the event is persisted)."""
    if not deliveries:
        return
    metrics.inc("yakuba_realtime_events_published_total")
    metrics.inc("yakuba_realtime_deliveries_published_total", len(deliveries))
    try:
        get_bus().publish({"event": event, "deliveries": deliveries})
    except Exception:
        log.exception("real-time bus: publish failed; clients catch up from the database")


def publish_live(event: dict[str, Any], user_ids: list[int]) -> None:
    """Deliver a live (not persisted) event to every process's sockets of ``user_ids``.
    Called after commit; never raises for a bus failure (the owning app's resync covers
    a lost one)."""
    if not user_ids:
        return
    metrics.inc("yakuba_realtime_live_published_total")
    metrics.inc("yakuba_realtime_live_deliveries_published_total", len(user_ids))
    try:
        get_bus().publish({"live": event, "users": user_ids})
    except Exception:
        log.exception("real-time bus: live publish failed; clients resync")


def publish_to_processes(kind: str, data: dict[str, Any]) -> None:
    """Send ``data`` to the handler of ``kind`` in every process (this one included),
    once: for fan-out that depends on what each process holds, such as presence
    batches filtered by the interest of each process's own sockets.  Not persisted;
    never raises for a bus failure."""
    try:
        get_bus().publish({"kind": kind, "data": data})
    except Exception:
        log.exception("real-time bus: publishing a %s message failed", kind)


def healthy(timeout: float = 1.0) -> bool:
    """For ``/healthz``: can this process publish and receive events?  Blocks up to
    ``timeout`` seconds on Redis, so call it from sync code (or use ``ahealthy``)."""
    return get_bus().healthy(timeout)


async def ahealthy(timeout: float = 1.0) -> bool:
    """``healthy`` for async code: runs the check in a thread."""
    return await asyncio.to_thread(healthy, timeout)


def gauges() -> dict[str, int | float]:
    bus = get_bus()
    return {
        "yakuba_realtime_connections": local_sockets.count(),
        "yakuba_realtime_publish_queue": bus.queue_length(),
        "yakuba_realtime_bus_connected": 1 if bus.connected() else 0,
    }
