"""The one clock.  Code asks ``clock.now()`` instead of ``timezone.now()`` so that
tests (and the release of rooms, the expiry of guests, the effective date of
personnel transfers) can move time without patching Django.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from zoneinfo import ZoneInfo

TOKYO = ZoneInfo("Asia/Tokyo")

_lock = threading.Lock()
_offset = dt.timedelta(0)
_frozen: dt.datetime | None = None


def now() -> dt.datetime:
    """The current time, timezone-aware, in UTC."""
    if _frozen is not None:
        return _frozen
    return dt.datetime.now(dt.UTC) + _offset


def today() -> dt.date:
    """Today's date in Tokyo (the ward's calendar day, not UTC's)."""
    return now().astimezone(TOKYO).date()


def local(moment: dt.datetime) -> dt.datetime:
    """``moment`` shown in Asia/Tokyo."""
    return moment.astimezone(TOKYO)


def advance(delta: dt.timedelta) -> None:
    """Move the clock forward (tests only)."""
    global _offset, _frozen
    with _lock:
        if _frozen is not None:
            _frozen += delta
        else:
            _offset += delta


@contextmanager
def frozen_at(moment: dt.datetime) -> Iterator[None]:
    """Stop the clock at ``moment`` for the duration of the block (tests, and the demo
    loader, which replays a past week; never in a serving process)."""
    global _frozen
    if moment.tzinfo is None:
        raise ValueError("frozen_at needs an aware datetime")
    with _lock:
        previous, _frozen = _frozen, moment.astimezone(dt.UTC)
    try:
        yield
    finally:
        with _lock:
            _frozen = previous


def reset() -> None:
    """Back to real time (tests only)."""
    global _offset, _frozen
    with _lock:
        _offset, _frozen = dt.timedelta(0), None
