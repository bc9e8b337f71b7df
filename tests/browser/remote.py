"""Playwright's sync API, run in a thread of its own and used from the test's thread.

Why: between two calls, Playwright's sync API leaves its asyncio loop marked as running
in the calling thread (by design, see playwright/_impl/_greenlets.py).  In that state
Django refuses database access ("You cannot call this from an async context") and
pytest-asyncio cannot start a loop, so fixtures that create personas, the database
flush after a test, and later async tests would all break.  Here every Playwright
object lives in one worker thread; the test holds ``Remote`` proxies whose attribute
reads and calls run there, one at a time, and whose results come back as plain values
or further proxies.  Callbacks given to Playwright (``page.on("request", …)``) run in
the worker thread, so they should only record what they see.
"""

from __future__ import annotations

import concurrent.futures
import queue
import threading
from collections.abc import Callable
from typing import Any

_PLAIN = (type(None), bool, int, float, str, bytes, dict)
CALL_TIMEOUT = 120.0


class PlaywrightThread:
    """One thread that owns Playwright and runs what it is given, in order."""

    def __init__(self) -> None:
        self._jobs: queue.Queue[tuple[Callable[[], Any], concurrent.futures.Future[Any]] | None]
        self._jobs = queue.Queue()
        self._thread = threading.Thread(target=self._serve, name="playwright", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while (job := self._jobs.get()) is not None:
            function, future = job
            try:
                future.set_result(function())
            except BaseException as exc:  # handed to the caller's thread
                future.set_exception(exc)

    def call(self, function: Callable[[], Any]) -> Any:
        """Run ``function`` in the Playwright thread and return its result, proxied."""
        if threading.current_thread() is self._thread:
            return function()
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._jobs.put((function, future))
        return self.wrap(future.result(timeout=CALL_TIMEOUT))

    def stop(self) -> None:
        self._jobs.put(None)
        self._thread.join(timeout=30)

    def wrap(self, value: Any) -> Any:
        if isinstance(value, _PLAIN):
            return value
        if isinstance(value, list | tuple):
            return type(value)(self.wrap(item) for item in value)
        return Remote(self, value)


class Remote:
    """A proxy for a Playwright object that lives in the Playwright thread."""

    __slots__ = ("_target", "_worker")

    def __init__(self, worker: PlaywrightThread, target: Any) -> None:
        object.__setattr__(self, "_worker", worker)
        object.__setattr__(self, "_target", target)

    def __getattr__(self, name: str) -> Any:
        target = self._target
        return self._worker.call(lambda: getattr(target, name))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        target = self._target
        args = tuple(_unwrap(arg) for arg in args)
        kwargs = {key: _unwrap(value) for key, value in kwargs.items()}
        return self._worker.call(lambda: target(*args, **kwargs))

    def __enter__(self) -> Any:
        return self.__getattr__("__enter__")()

    def __exit__(self, *exc: Any) -> Any:
        return self.__getattr__("__exit__")(*exc)

    def __repr__(self) -> str:
        return f"Remote({self._target!r})"


def _unwrap(value: Any) -> Any:
    return value._target if isinstance(value, Remote) else value
