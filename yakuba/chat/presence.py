"""Presence (在席): what colleagues see next to a name, kept cheap at ward scale.

What a person chose, or what another feature set for them, is ``Presence.status``
(会議中 by a meeting, テレワーク中 by telework, through ``do_set_presence``).  What
others see is ``effective_status``: オフライン while no client of theirs is connected,
離席 while they are idle and their status is 在席, else the status.  Automatic 離席 never
hides 会議中, テレワーク中 or 休暇.  Presence changes are not audited: they are frequent,
carry nothing a person could misuse, and the table holds the current state.

Why it does not grow with the square of the users (presence is the largest load of chat
servers):

- Writes are few.  A connection writes only when the person comes online in this
  process (``online`` flips); while connected, each process renews ``seen_at`` of all its
  users in one UPDATE a minute; idle changes from the client are written only when they
  change the row and at most once per ``IDLE_THROTTLE`` per person.
- Fan-out is by interest, not by contacts.  A client declares the people on its screen
  (``{"op": "chat.presence_watch", "users": [...]}``, at most ``MAX_WATCH``); each
  process keeps that table for its own sockets.  Changes are collected in memory and,
  every ``CHAT_PRESENCE_BATCH_SECONDS``, one background thread per process reads their
  current state (one query) and publishes ONE bus message with all of them.  Every
  process filters it against its own interest table and sends each interested user one
  frame with just the changes of the people they watch.  Work per batch is proportional
  to the (change, watcher) pairs that exist, and nothing is sent when nothing changed.

Connections come and go through ``ops.on_socket_ready`` / ``ops.on_socket_closed``:
a per-process count of sockets per user; the first one marks the person online, the
last one schedules オフライン after ``OFFLINE_GRACE`` (a reconnect, such as a page load,
cancels it).  A process that dies leaves its users online until the periodic job
``chat.presence_sweep`` finds their ``seen_at`` older than ``STALE_AFTER``.  When one
process marks a person offline while another still holds a socket of theirs (two tabs on
two workers), the other one sees it in the batch and marks them online again.

``cpu_seconds()`` is the CPU time this process spent in presence code (hooks, ops,
batches, the sweep), for the benchmark's ``presence_cpu_pct``.  See docs/realtime.md.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

from django.conf import settings
from django.db import close_old_connections, transaction
from django.db.models import Q
from django.utils.translation import gettext as _

from yakuba.chat.actions import ChatError
from yakuba.chat.models import Membership, Presence
from yakuba.directory.models import User
from yakuba.lib import clock
from yakuba.realtime import bus, ops
from yakuba.tasks.registry import periodic

log = logging.getLogger(__name__)

Status = Presence.Status

# The bus message kind that carries a batch of changes to every process.
BUS_KIND = "chat.presence"
# A person whose last socket closed is shown offline this much later (page loads and
# short network drops reconnect within it).
OFFLINE_GRACE = dt.timedelta(seconds=30)
# How often each process renews ``seen_at`` of its connected users (one UPDATE).
RENEW_EVERY = dt.timedelta(seconds=60)
# The sweep marks offline whoever was not renewed for this long (their process died).
STALE_AFTER = dt.timedelta(minutes=3)
# At most one idle change per person in this time; a later one waits for the window.
IDLE_THROTTLE = dt.timedelta(seconds=5)
# People one client may watch at once.
MAX_WATCH = 500
# Ids per UPDATE of ``seen_at`` (SQLite's limit on bound variables is 32,766).
RENEW_BATCH = 10_000
MESSAGE_MAX_CHARS = 100


# --- the effective status -------------------------------------------------------------


def effective_status(presence: Presence | None) -> str:
    """What others see: オフライン when not online, 離席 when idle and 在席, else the
    status."""
    if presence is None or not presence.online:
        return Status.OFFLINE
    if presence.idle and presence.status == Status.AVAILABLE:
        return Status.AWAY
    return str(presence.status)


def current_message(presence: Presence | None, now: dt.datetime | None = None) -> str:
    """The status message, or "" once it has expired (the sweep also clears it)."""
    if presence is None or not presence.message:
        return ""
    expires = presence.message_expires_at
    if expires is not None and expires <= (now or clock.now()):
        return ""
    return presence.message


def presence_dict(presence: Presence, now: dt.datetime | None = None) -> dict[str, Any]:
    """One person's presence as the API and live events show it."""
    message = current_message(presence, now)
    expires = presence.message_expires_at if message else None
    return {
        "user": presence.user_id,
        "status": effective_status(presence),
        "message": message,
        "message_expires_at": expires.isoformat() if expires else None,
    }


def offline_dict(user_id: int) -> dict[str, Any]:
    """Someone who never connected."""
    return {"user": user_id, "status": Status.OFFLINE, "message": "", "message_expires_at": None}


def visible_ids(viewer_id: int, user_ids: Iterable[int]) -> list[int]:
    """Of ``user_ids``, those whose presence ``viewer_id`` may see: staff see everyone;
    guests and bots only the people they share a conversation with (one query)."""
    wanted = sorted({int(u) for u in user_ids})
    kind = _kind_of(viewer_id)
    if kind == User.Kind.STAFF:
        return wanted
    if kind is None:
        return []
    shared = set(
        Membership.objects.filter(
            conversation__memberships__user_id=viewer_id, user_id__in=wanted
        ).values_list("user_id", flat=True)
    )
    return [u for u in wanted if u in shared or u == viewer_id]


def read_presence(viewer_id: int, user_ids: Iterable[int]) -> list[dict[str, Any]]:
    """The current presence of the people ``viewer_id`` may see (two queries at most)."""
    ids = visible_ids(viewer_id, user_ids)
    rows = {p.user_id: p for p in Presence.objects.filter(user_id__in=ids)}
    now = clock.now()
    return [presence_dict(rows[u], now) if u in rows else offline_dict(u) for u in ids]


# --- the one action ---------------------------------------------------------------------


def do_set_presence(
    user: User,
    *,
    status: str,
    message: str | None = None,
    message_expires_at: dt.datetime | None = None,
    set_by: str = "user",
) -> Presence:
    """Set ``user``'s status (and, unless ``message`` is None, the status message with
    its expiry).  The one action other features call: a meeting sets 会議中 with
    ``set_by="meeting"``, telework テレワーク中 with ``set_by="telework"``.  Trusts its
    caller (``check_set_presence`` validates a person's input).  Watchers see the change
    in the next batch after commit.  Not audited (see the module docstring)."""
    now = clock.now()
    fields: dict[str, Any] = {"status": status, "status_set_by": set_by, "changed_at": now}
    if message is not None:
        fields["message"] = message
        fields["message_expires_at"] = message_expires_at if message else None
    with transaction.atomic():
        presence, created = Presence.objects.select_for_update().get_or_create(
            user=user, defaults=fields
        )
        if not created:
            for name, value in fields.items():
                setattr(presence, name, value)
            presence.save(update_fields=list(fields))
        transaction.on_commit(lambda: note_changed([user.pk]))
    return presence


def do_release_presence(user: User, *, set_by: str) -> bool:
    """Back to 在席 if the status was last set by ``set_by`` (a meeting that ends does
    not undo what the person chose since).  True if it changed anything."""
    with transaction.atomic():
        changed = Presence.objects.filter(user=user, status_set_by=set_by).update(
            status=Status.AVAILABLE, status_set_by="", changed_at=clock.now()
        )
        if changed:
            transaction.on_commit(lambda: note_changed([user.pk]))
    return bool(changed)


def check_set_presence(
    user: User,
    *,
    status: str,
    message: str | None = None,
    expires_at: dt.datetime | None = None,
) -> Presence:
    """A person sets their own status: validated, then ``do_set_presence``."""
    if status not in Status.values:
        choices = "、".join(str(label) for label in Status.labels)
        raise ChatError(
            _("状態は次のいずれかを指定してください: %(choices)s") % {"choices": choices},
            f"status must be one of {', '.join(Status.values)}",
            field="status",
        )
    text = message.strip() if message is not None else None
    if text is not None and len(text) > MESSAGE_MAX_CHARS:
        raise ChatError(
            _("ひとことは%(max)d文字以内にしてください。") % {"max": MESSAGE_MAX_CHARS},
            f"message is longer than {MESSAGE_MAX_CHARS} characters",
            field="message",
        )
    if expires_at is not None:
        if expires_at.tzinfo is None:
            raise ChatError(
                _("表示期限にはタイムゾーン（例: +09:00）を付けてください。"),
                "expires_at needs a timezone offset",
                field="expires_at",
            )
        if expires_at <= clock.now():
            raise ChatError(
                _("表示期限には今より後の日時を指定してください。"),
                "expires_at is in the past",
                field="expires_at",
            )
        if not text:
            raise ChatError(
                _("表示期限を付けるときは、ひとことも入力してください。"),
                "expires_at needs a message",
                field="expires_at",
            )
    return do_set_presence(user, status=status, message=text, message_expires_at=expires_at)


# --- per-process state --------------------------------------------------------------------


class _State:
    """What this process knows: its sockets, interests, pending changes.  One lock;
    nothing under it does I/O."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.tick_lock = threading.RLock()
        self.sockets: dict[int, int] = {}
        self.offline_at: dict[int, dt.datetime] = {}
        # watcher -> watched, and watched -> watchers (the index the batches use).
        self.interest: dict[int, frozenset[int]] = {}
        self.watchers: dict[int, set[int]] = {}
        self.kinds: dict[int, str] = {}
        self.pending: set[int] = set()
        self.went_offline: set[int] = set()
        self.reassert: set[int] = set()
        self.idle_changed_at: dict[int, dt.datetime] = {}
        self.idle_wanted: dict[int, bool] = {}
        self.renewed_at: dt.datetime | None = None
        self.cpu = 0.0
        self.frames = 0
        self.batches = 0
        self.thread: threading.Thread | None = None
        self.stop = threading.Event()


_state = _State()


def _reset_after_fork() -> None:
    global _state
    _state = _State()


def reset_state() -> None:
    """Forget every socket, interest and pending change of this process (tests only:
    each test starts with an empty process).  The background thread carries on."""
    global _state
    old = _state
    fresh = _State()
    with old.lock:
        fresh.thread, fresh.stop = old.thread, old.stop
    with old.tick_lock:
        _state = fresh


os.register_at_fork(after_in_child=_reset_after_fork)


class _cpu:  # lower case: read as a context manager
    """Adds the thread's CPU time inside the block to ``cpu_seconds()``."""

    def __enter__(self) -> None:
        self.started = time.thread_time()

    def __exit__(self, *exc: object) -> None:
        spent = time.thread_time() - self.started
        with _state.lock:
            _state.cpu += spent


@contextlib.contextmanager
def paused() -> Iterator[None]:
    """Hold the background thread's rounds for the block, so that the block's changes
    go out together in the next ``flush``/``tick`` (tests; the benchmark)."""
    state = _state
    with state.tick_lock:
        yield


def cpu_seconds() -> float:
    """CPU seconds this process has spent in presence code since it started: the
    connection hooks, the ops, the batches (reading, publishing, filtering) and the
    sweep.  Sample it twice and divide by the wall time for a share of one core."""
    with _state.lock:
        return _state.cpu


def snapshot() -> dict[str, int | float]:
    """Presence's figures for ``/metrics`` (prefix ``yakuba_chat_``): the benchmark reads
    ``presence_cpu_seconds_total`` twice to get presence's share of one core."""
    counts = stats()
    return {
        "presence_cpu_seconds_total": cpu_seconds(),
        "presence_frames_total": counts["frames"],
        "presence_batches_total": counts["batches"],
        "presence_connected_users": counts["connected"],
        "presence_watchers": counts["watchers"],
    }


def stats() -> dict[str, int]:
    """Counters for tests and the benchmark: ``frames`` (presence frames handed to
    sockets here), ``batches`` (batches published from here), ``connected`` (users with
    a socket here), ``watchers`` (users with a declared interest here)."""
    with _state.lock:
        return {
            "frames": _state.frames,
            "batches": _state.batches,
            "connected": len(_state.sockets),
            "watchers": len(_state.interest),
        }


def note_changed(user_ids: Iterable[int], *, offline: Iterable[int] = ()) -> None:
    """Queue these people's presence for the next batch (after commit: callers use
    ``transaction.on_commit``)."""
    with _state.lock:
        _state.pending.update(user_ids)
        _state.went_offline.update(offline)
    _ensure_thread()


# --- connections --------------------------------------------------------------------------


def socket_ready(user_id: int) -> None:
    """A socket of ``user_id`` became ready in this process (``ops.on_socket_ready``)."""
    with _cpu():
        with _state.lock:
            count = _state.sockets.get(user_id, 0) + 1
            _state.sockets[user_id] = count
            leaving = _state.offline_at.pop(user_id, None) is not None
        if count == 1 and not leaving:
            _mark_one_online(user_id)
        _ensure_thread()


def socket_closed(user_id: int) -> None:
    """A socket of ``user_id`` closed; the last one schedules オフライン after the grace."""
    with _cpu(), _state.lock:
        count = _state.sockets.get(user_id, 0) - 1
        if count > 0:
            _state.sockets[user_id] = count
            return
        _state.sockets.pop(user_id, None)
        _state.offline_at[user_id] = clock.now() + OFFLINE_GRACE
        _drop_interest(user_id)
        _state.kinds.pop(user_id, None)


def _mark_one_online(user_id: int) -> None:
    """``_mark_online`` for one person in one query when they have a row and are
    offline (the common case), two otherwise."""
    now = clock.now()
    flipped = Presence.objects.filter(user_id=user_id, online=False).update(
        online=True, idle=False, seen_at=now, changed_at=now
    )
    if not flipped:
        _row, flipped = Presence.objects.get_or_create(
            user_id=user_id, defaults={"online": True, "seen_at": now, "changed_at": now}
        )
    if flipped:
        note_changed([user_id])


def _mark_online(user_ids: list[int]) -> None:
    """Online, not idle, seen now: one conditional UPDATE (a write only where
    ``online`` flips), plus an INSERT for people without a row yet."""
    now = clock.now()
    flipped = set(
        Presence.objects.filter(user_id__in=user_ids, online=False).values_list(
            "user_id", flat=True
        )
    )
    if flipped:
        Presence.objects.filter(user_id__in=flipped, online=False).update(
            online=True, idle=False, seen_at=now, changed_at=now
        )
    if len(flipped) < len(user_ids):
        existing = set(
            Presence.objects.filter(user_id__in=user_ids).values_list("user_id", flat=True)
        )
        missing = [u for u in user_ids if u not in existing]
        if missing:
            Presence.objects.bulk_create(
                [Presence(user_id=u, online=True, seen_at=now, changed_at=now) for u in missing],
                ignore_conflicts=True,
            )
            flipped.update(missing)
    if flipped:
        note_changed(flipped)


# --- client ops --------------------------------------------------------------------------


def _op_error(op: str, code: str = "invalid") -> dict[str, Any]:
    return {"op": "error", "code": code, "got": op}


def on_activity(user_id: int, frame: dict[str, Any]) -> dict[str, Any] | None:
    """``{"op": "chat.activity", "idle": true|false}``: the client saw no input for
    ``CHAT_PRESENCE_IDLE_MINUTES`` (or input again).  Written only when it changes the
    row; more than one change per ``IDLE_THROTTLE`` waits for the window to pass."""
    idle = frame.get("idle")
    if not isinstance(idle, bool):
        return _op_error("chat.activity")
    with _cpu():
        now = clock.now()
        with _state.lock:
            last = _state.idle_changed_at.get(user_id)
            if last is not None and now - last < IDLE_THROTTLE:
                _state.idle_wanted[user_id] = idle
                return None
            _state.idle_wanted.pop(user_id, None)
        _write_idle(user_id, idle, now)
    return None


def _write_idle(user_id: int, idle: bool, now: dt.datetime) -> None:
    changed = (
        Presence.objects.filter(user_id=user_id, online=True)
        .exclude(idle=idle)
        .update(idle=idle, changed_at=now)
    )
    if changed:
        with _state.lock:
            _state.idle_changed_at[user_id] = now
        note_changed([user_id])


def on_watch(user_id: int, frame: dict[str, Any]) -> dict[str, Any] | None:
    """``{"op": "chat.presence_watch", "users": [ids]}``: the people on this client's
    screen (at most ``MAX_WATCH``; replaces what the user declared before in this
    process).  Answered with their current presence, read after the interest is
    registered, so no change falls in between."""
    users = frame.get("users")
    if (
        not isinstance(users, list)
        or len(users) > MAX_WATCH
        or not all(isinstance(u, int) and not isinstance(u, bool) and u > 0 for u in users)
    ):
        return _op_error("chat.presence_watch")
    with _cpu():
        ids = visible_ids(user_id, users)
        with _state.lock:
            if user_id not in _state.sockets:
                return None  # the socket closed meanwhile
            _drop_interest(user_id)
            watched = frozenset(ids)
            _state.interest[user_id] = watched
            for watched_id in watched:
                _state.watchers.setdefault(watched_id, set()).add(user_id)
        current = read_presence(user_id, ids) if ids else []
    return {"op": "chat.presence_watching", "presence": current}


def _drop_interest(user_id: int) -> None:
    """Forget what ``user_id`` watched (caller holds the lock)."""
    for watched_id in _state.interest.pop(user_id, frozenset()):
        watchers = _state.watchers.get(watched_id)
        if watchers is not None:
            watchers.discard(user_id)
            if not watchers:
                del _state.watchers[watched_id]


def _kind_of(user_id: int) -> str | None:
    """The user's kind (cached while they have a socket here); None if inactive."""
    with _state.lock:
        kind = _state.kinds.get(user_id)
    if kind is None:
        kind = (
            User.objects.filter(pk=user_id, is_active=True).values_list("kind", flat=True).first()
        )
        with _state.lock:
            if kind is not None and user_id in _state.sockets:
                _state.kinds[user_id] = kind
    return kind


# --- batches ------------------------------------------------------------------------------


def flush() -> int:
    """Publish the queued changes as one bus message; returns how many.  One query
    (their current rows) whatever their number."""
    with _state.lock:
        ids, _state.pending = _state.pending, set()
        offline, _state.went_offline = _state.went_offline, set()
    if not ids:
        return 0
    with _cpu():
        now = clock.now()
        rows = {p.user_id: p for p in Presence.objects.filter(user_id__in=ids)}
        changes = [
            presence_dict(rows[u], now) if u in rows else offline_dict(u) for u in sorted(ids)
        ]
        with _state.lock:
            _state.batches += 1
        bus.publish_to_processes(BUS_KIND, {"changes": changes, "offline": sorted(offline)})
    return len(changes)


def deliver_batch(data: dict[str, Any]) -> None:
    """A batch from any process (``bus.on_process_message``): each local watcher gets
    one frame with the changes of the people they watch.  Runs in the bus's thread; no
    I/O.  People marked offline elsewhere who still have a socket here are marked
    online again on the next tick."""
    with _cpu():
        changes: list[dict[str, Any]] = list(data.get("changes") or [])
        indexes: dict[int, list[int]] = {}
        with _state.lock:
            for index, change in enumerate(changes):
                for watcher in _state.watchers.get(int(change["user"]), ()):
                    indexes.setdefault(watcher, []).append(index)
            back = [int(u) for u in data.get("offline") or () if int(u) in _state.sockets]
            _state.reassert.update(back)
            _state.frames += len(indexes)
        # Watchers of the same people share one serialised frame.
        groups: dict[tuple[int, ...], list[int]] = {}
        for watcher, found in indexes.items():
            groups.setdefault(tuple(found), []).append(watcher)
        for group, watchers in groups.items():
            event = {"type": "chat", "op": "presence", "changes": [changes[i] for i in group]}
            bus.local_sockets.dispatch_live(event, watchers)


def tick() -> None:
    """One round of the background thread (tests call it after moving the clock):
    deferred idle changes, offline after the grace, online again where another process
    said offline, ``seen_at`` renewal when due, then the batch."""
    with _state.tick_lock:
        now = clock.now()
        with _state.lock:
            due = [u for u, at in _state.offline_at.items() if at <= now]
            for user_id in due:
                del _state.offline_at[user_id]
            back = [u for u in _state.reassert if u in _state.sockets]
            _state.reassert.clear()
            wanted = [
                (u, idle)
                for u, idle in _state.idle_wanted.items()
                if u not in _state.idle_changed_at
                or now - _state.idle_changed_at[u] >= IDLE_THROTTLE
            ]
            for user_id, _idle in wanted:
                del _state.idle_wanted[user_id]
            renew = _state.renewed_at is None or now - _state.renewed_at >= RENEW_EVERY
            connected = list(_state.sockets) if renew else []
            if renew:
                _state.renewed_at = now
        with _cpu():
            if due:
                _mark_offline(due, now)
            if back:
                _mark_online(back)
            for user_id, idle in wanted:
                _write_idle(user_id, idle, now)
            if connected:
                renew_seen(connected, now)
        flush()


def _mark_offline(user_ids: list[int], now: dt.datetime) -> None:
    gone = list(
        Presence.objects.filter(user_id__in=user_ids, online=True).values_list("user_id", flat=True)
    )
    if gone:
        Presence.objects.filter(user_id__in=gone, online=True).update(
            online=False, idle=False, changed_at=now
        )
        note_changed(gone, offline=gone)


def renew_seen(user_ids: list[int], now: dt.datetime) -> None:
    """``seen_at`` of this process's connected users: one UPDATE (per ``RENEW_BATCH``)."""
    for start in range(0, len(user_ids), RENEW_BATCH):
        Presence.objects.filter(user_id__in=user_ids[start : start + RENEW_BATCH]).update(
            seen_at=now
        )


def _run() -> None:
    interval = float(settings.CHAT_PRESENCE_BATCH_SECONDS)
    while not _state.stop.wait(interval):
        try:
            tick()
        except Exception:  # the next round tries again
            log.exception("presence: a batch failed")
        try:
            close_old_connections()
        except Exception:  # the thread must outlive a database that went away
            log.debug("presence: closing connections failed", exc_info=True)


def _ensure_thread() -> None:
    state = _state
    with state.lock:
        if state.thread is not None:
            return
        state.thread = threading.Thread(target=_run, name="yakuba-presence", daemon=True)
    state.thread.start()


@periodic("chat.presence_sweep", every=dt.timedelta(minutes=1))
def sweep() -> None:
    """Offline for people whose process stopped renewing them (``STALE_AFTER``), and
    expired status messages cleared.  Conditional UPDATEs: safe to run twice at once."""
    with _cpu():
        now = clock.now()
        cutoff = now - STALE_AFTER
        stale_rows = Q(online=True) & (Q(seen_at__lt=cutoff) | Q(seen_at__isnull=True))
        stale = list(Presence.objects.filter(stale_rows).values_list("user_id", flat=True))
        if stale:
            Presence.objects.filter(stale_rows, user_id__in=stale).update(
                online=False, idle=False, changed_at=now
            )
        expired_rows = Q(message_expires_at__lte=now)
        expired = list(Presence.objects.filter(expired_rows).values_list("user_id", flat=True))
        if expired:
            Presence.objects.filter(expired_rows, user_id__in=expired).update(
                message="", message_expires_at=None, changed_at=now
            )
        if stale or expired:
            note_changed([*stale, *expired], offline=stale)
    flush()


def register() -> None:
    """Hooks, ops and the bus handler (on import, from the app's ``ready``)."""
    ops.on_socket_ready(socket_ready)
    ops.on_socket_closed(socket_closed)
    ops.register_op("chat.activity", on_activity)
    ops.register_op("chat.presence_watch", on_watch)
    bus.on_process_message(BUS_KIND, deliver_batch)


register()

from yakuba.chat import live  # noqa: E402, F401  (the typing op registers on import)
