"""``/healthz`` for load balancers and ``/metrics`` for Prometheus.

``/healthz`` is open to anyone (it says only "ok" or which part failed).  ``/metrics``
answers only the machine itself (127.0.0.1 or ::1 with no proxy header, since nginx on
the same machine would otherwise make every visitor look local) or a caller presenting
``Authorization: Bearer $YAKUBA_METRICS_TOKEN``.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import Count, Max, Min
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from yakuba.audit.models import AuditEntry, AuditPending
from yakuba.chat import presence
from yakuba.lib import clock
from yakuba.realtime import bus
from yakuba.realtime import metrics as realtime_metrics
from yakuba.web.metrics import PROCESS_START_TIME, responses_by_class

logger = logging.getLogger(__name__)

PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_LOOPBACK = {"127.0.0.1", "::1"}
_PROXY_HEADERS = ("HTTP_X_FORWARDED_FOR", "HTTP_X_REAL_IP", "HTTP_FORWARDED")


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """200 ``{"status": "ok", "database": "ok", "bus": "ok"|"unknown"}``, or 503 with
    ``"status": "error"`` and ``"error"`` for each part that failed."""
    checks = {"database": _check_database(), "bus": _check_bus()}
    failed = any(state == "error" for state in checks.values())
    body = {"status": "error" if failed else "ok", **checks}
    return JsonResponse(body, status=503 if failed else 200)


def _check_database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception:
        logger.exception("health check: the database did not answer")
        return "error"
    return "ok"


def _check_bus() -> str:
    """The real-time bus's own ``healthy()`` (Redis answers, or the in-process bus)."""
    try:
        return "ok" if bus.healthy() else "error"
    except Exception:
        logger.exception("health check: the real-time bus failed")
        return "error"


@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """The Prometheus text exposition format (version 0.0.4)."""
    if not _may_scrape(request):
        return HttpResponse("forbidden\n", status=403, content_type="text/plain; charset=utf-8")
    lines: list[str] = []
    _gauge(
        lines,
        "yakuba_process_start_time_seconds",
        "Start time of the process since the Unix epoch, in seconds.",
        [({}, PROCESS_START_TIME)],
    )
    _counter(
        lines,
        "yakuba_http_responses_total",
        "HTTP responses sent by this process, by status class.",
        [({"class": name}, count) for name, count in sorted(responses_by_class().items())],
    )
    _gauge(
        lines,
        "yakuba_jobs",
        "Background jobs by status (queued, running, failed).",
        [({"status": status}, count) for status, count in _job_counts().items()],
    )
    _audit_metrics(lines)
    _snapshot(lines, "yakuba_realtime", realtime_metrics.snapshot)
    _snapshot(lines, "yakuba_chat", presence.snapshot)
    return HttpResponse("\n".join(lines) + "\n", content_type=PROMETHEUS_CONTENT_TYPE)


def _may_scrape(request: HttpRequest) -> bool:
    token: str = getattr(settings, "METRICS_TOKEN", "")
    header = request.headers.get("Authorization", "")
    if token and header.startswith("Bearer "):
        return hmac.compare_digest(header.removeprefix("Bearer ").encode(), token.encode())
    proxied = any(request.META.get(name) for name in _PROXY_HEADERS)
    return request.META.get("REMOTE_ADDR") in _LOOPBACK and not proxied


def _job_counts() -> dict[str, int]:
    from yakuba.tasks.models import Job

    watched = [Job.Status.QUEUED, Job.Status.RUNNING, Job.Status.FAILED]
    counts = {str(status): 0 for status in watched}
    rows = Job.objects.filter(status__in=watched).values("status").annotate(n=Count("pk"))
    for row in rows:
        counts[str(row["status"])] = int(row["n"])
    return counts


def _audit_metrics(lines: list[str]) -> None:
    """The audit log's size and seal lag, read from its tables.  Three primary-key
    lookups."""
    last_id = AuditEntry.objects.aggregate(last=Max("pk"))["last"] or 0
    pending = AuditPending.objects.aggregate(n=Count("pk"), oldest=Min("entry_id"))
    oldest = None
    if pending["oldest"] is not None:
        entry = AuditEntry.objects.filter(pk=pending["oldest"]).values_list("occurred_at")
        oldest = entry.first()
    lag = max(0.0, (clock.now() - oldest[0]).total_seconds()) if oldest is not None else 0.0
    _gauge(lines, "yakuba_audit_last_entry_id", "Id of the newest audit entry.", [({}, last_id)])
    _gauge(
        lines,
        "yakuba_audit_unsealed_entries",
        "Committed audit entries not yet chained by the sealer.",
        [({}, int(pending["n"]))],
    )
    _gauge(
        lines,
        "yakuba_audit_seal_lag_seconds",
        "Age of the oldest committed entry still waiting for its seal (0 when none).",
        [({}, lag)],
    )


def _snapshot(lines: list[str], prefix: str, snapshot: Callable[[], Any]) -> None:
    """Each number in ``snapshot()`` as a metric ``prefix_<key>``.  A value that is a
    mapping of label → number becomes one series per label (label name ``key``)."""
    module = snapshot.__module__
    try:
        values = snapshot()
    except Exception:
        logger.exception("metrics: %s.snapshot() failed", module)
        return
    if not isinstance(values, Mapping):
        return
    for key, value in sorted(values.items()):
        key_name = _metric_name(str(key))
        name = key_name if key_name.startswith(f"{prefix}_") else f"{prefix}_{key_name}"
        # By Prometheus convention a ``_total`` name is a counter; everything else a gauge.
        kind = "counter" if name.endswith("_total") else "gauge"
        if isinstance(value, bool):
            _family(lines, name, kind, f"{module}: {key}", [({}, int(value))])
        elif isinstance(value, int | float):
            _family(lines, name, kind, f"{module}: {key}", [({}, value)])
        elif isinstance(value, Mapping):
            series = [
                ({"key": str(label)}, number)
                for label, number in sorted(value.items())
                if isinstance(number, int | float)
            ]
            _family(lines, name, kind, f"{module}: {key}", series)


def _metric_name(key: str) -> str:
    return "".join(char if char.isascii() and char.isalnum() else "_" for char in key).lower()


def _counter(
    lines: list[str], name: str, text: str, series: Iterable[tuple[dict[str, str], float]]
) -> None:
    _family(lines, name, "counter", text, series)


def _gauge(
    lines: list[str], name: str, text: str, series: Iterable[tuple[dict[str, str], float]]
) -> None:
    _family(lines, name, "gauge", text, series)


def _family(
    lines: list[str],
    name: str,
    kind: str,
    text: str,
    series: Iterable[tuple[dict[str, str], float]],
) -> None:
    lines.append(f"# HELP {name} {_escape_help(text)}")
    lines.append(f"# TYPE {name} {kind}")
    for labels, value in series:
        label_text = ",".join(f'{key}="{_escape_label(val)}"' for key, val in labels.items())
        selector = f"{name}{{{label_text}}}" if label_text else name
        lines.append(f"{selector} {_number(value)}")


def _number(value: float) -> str:
    return repr(float(value)) if isinstance(value, float) else str(value)


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _escape_label(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
