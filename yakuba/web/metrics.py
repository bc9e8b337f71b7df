"""Process-wide counters for ``/metrics``, and the middleware that counts responses.

Counters live in this process's memory: Prometheus scrapes each worker (or the one
embedded process) and sums them.  They reset when the process restarts, which
Prometheus' ``rate()`` handles; ``yakuba_process_start_time_seconds`` tells it when.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

PROCESS_START_TIME = time.time()

_lock = threading.Lock()
_responses: dict[str, int] = {"1xx": 0, "2xx": 0, "3xx": 0, "4xx": 0, "5xx": 0}


def count_response(status: int) -> None:
    status_class = f"{status // 100}xx"
    with _lock:
        _responses[status_class] = _responses.get(status_class, 0) + 1


def responses_by_class() -> dict[str, int]:
    with _lock:
        return dict(_responses)


class ResponseCounterMiddleware:
    """Counts every HTTP response by status class (2xx, 4xx, 5xx…).  Put it first, so that
    it also sees the 500 pages that the inner layers make of exceptions."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        count_response(response.status_code)
        return response
