"""Counters of the real-time channel, read by ``/metrics``.

Counters only ever grow within a process (Prometheus ``counter``); gauges are read at
snapshot time.  All values are per process: Prometheus sums them over workers.
"""

from __future__ import annotations

import threading
from collections import Counter

_lock = threading.Lock()
_counters: Counter[str] = Counter()

# Every counter, so that a snapshot lists them all from start-up (at zero).
COUNTERS = (
    # Events handed to the bus after commit (one per send, whatever the number of users).
    "yakuba_realtime_events_published_total",
    # (user, event) pairs in those events.
    "yakuba_realtime_deliveries_published_total",
    # Live (unpersisted) events handed to the bus after commit, and their recipients.
    "yakuba_realtime_live_published_total",
    "yakuba_realtime_live_deliveries_published_total",
    # Event frames written to WebSockets of this process (live and replayed).
    "yakuba_realtime_events_delivered_total",
    # Event frames written while replaying from the database after a resume or a gap.
    "yakuba_realtime_events_replayed_total",
    # "refetch" frames: a client was too far behind to replay.
    "yakuba_realtime_refetch_total",
    # Publishes to Redis that failed and were retried.
    "yakuba_realtime_publish_errors_total",
    # Publishes dropped because the outgoing queue was full (clients catch up from the DB).
    "yakuba_realtime_publish_dropped_total",
    # Times the Redis subscription was (re)established.
    "yakuba_realtime_subscriptions_total",
    # WebSocket connections accepted and refused (unauthenticated, inactive, bad origin).
    "yakuba_realtime_connections_total",
    "yakuba_realtime_connections_refused_total",
    # Connections closed because the client missed two heartbeats.
    "yakuba_realtime_heartbeat_timeouts_total",
    # Connections closed because the user's session ended or the user was deactivated.
    "yakuba_realtime_session_closes_total",
    # UserEvent rows deleted by retention.
    "yakuba_realtime_events_pruned_total",
)


def inc(name: str, amount: int = 1) -> None:
    """Add ``amount`` to the counter ``name`` (one of ``COUNTERS``)."""
    if name not in COUNTERS:
        raise KeyError(f"unknown real-time counter {name!r}")
    with _lock:
        _counters[name] += amount


def snapshot() -> dict[str, int | float]:
    """Every counter and gauge of this process, by Prometheus metric name.

    Gauges: ``yakuba_realtime_connections`` (open WebSockets here),
    ``yakuba_realtime_publish_queue`` (events waiting to go to Redis) and
    ``yakuba_realtime_bus_connected`` (1 when the bus can deliver, 0 while Redis is
    unreachable).  Reading it does no I/O.
    """
    from yakuba.realtime import bus

    with _lock:
        values: dict[str, int | float] = {name: _counters[name] for name in COUNTERS}
    values.update(bus.gauges())
    return values
