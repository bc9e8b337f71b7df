"""監査ログ検索: the auditor's search page and its CSV export.

Every search (each page view) and every export is itself written to the audit log.
"""

from __future__ import annotations

import csv
import itertools
from collections.abc import AsyncIterator, Iterator
from typing import Any

from asgiref.sync import sync_to_async
from django.contrib.auth.decorators import login_required
from django.core.handlers.asgi import ASGIRequest
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils import translation
from django.views.decorators.http import require_GET

from yakuba.audit import actions
from yakuba.audit.access import AuditFilters, access_audit_log, search_audit_log
from yakuba.audit.forms import AuditSearchForm
from yakuba.audit.models import AuditEntry
from yakuba.audit.record import Actor
from yakuba.directory.models import User
from yakuba.lib import clock
from yakuba.lib.spreadsheet import excel_safe

PAGE_SIZE = 50
CSV_HEADER = [
    "日時（日本時間）",
    "操作者種別",
    "操作者",
    "操作",
    "操作コード",
    "対象種別",
    "対象ID",
    "対象",
    "詳細",
    "接続元",
    "ID",
    "連番",
]


def _actor(request: HttpRequest) -> Actor | User | None:
    return request.user if isinstance(request.user, User) else None


@login_required
@require_GET
def search(request: HttpRequest) -> HttpResponse:
    access_audit_log(request.user)
    form = AuditSearchForm(request.GET or None)
    if request.GET and not form.is_valid():
        return render(request, "audit/search.html", _context(form, None, ""), status=400)
    filters = form.filters() if request.GET else AuditFilters()
    entries = search_audit_log(request.user, filters)
    page = Paginator(entries, PAGE_SIZE).get_page(request.GET.get("page"))
    actions.do_record_search(
        actor=_actor(request), filters={**filters.as_details(), "page": page.number}
    )
    query = request.GET.copy()
    query.pop("page", None)
    return render(request, "audit/search.html", _context(form, page, query.urlencode()))


def _context(form: AuditSearchForm, page: Any, query: str) -> dict[str, Any]:
    return {
        "active_nav": "audit",
        "form": form,
        "page": page,
        "searched": page is not None,
        "query": query,
    }


@login_required
@require_GET
def export_csv(request: HttpRequest) -> HttpResponse | StreamingHttpResponse:
    access_audit_log(request.user, what="audit.export")
    form = AuditSearchForm(request.GET)
    if not form.is_valid():
        return render(request, "audit/search.html", _context(form, None, ""), status=400)
    filters = form.filters()
    entries = search_audit_log(request.user, filters)
    actions.do_record_export(
        actor=_actor(request),
        details={"format": "csv", "filters": filters.as_details(), "rows": entries.count()},
    )
    stamp = clock.local(clock.now()).strftime("%Y%m%d-%H%M")
    rows = _csv_rows(entries)
    # Under ASGI Django wants an async iterator (a sync one is buffered whole, with a
    # warning); the test client and WSGI want a sync one.
    content = _in_thread(rows) if isinstance(request, ASGIRequest) else rows
    response = StreamingHttpResponse(content, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="audit-log-{stamp}.csv"'
    return response


class _Echo:
    def write(self, value: str) -> str:
        return value


async def _in_thread(rows: Iterator[bytes]) -> AsyncIterator[bytes]:
    """Drive the database iterator in a worker thread, a batch of rows at a time."""
    batch = sync_to_async(lambda: list(itertools.islice(rows, 500)), thread_sensitive=True)
    while chunk := await batch():
        yield b"".join(chunk)


def _csv_rows(entries: Any) -> Iterator[bytes]:
    """UTF-8 with a byte-order mark, so that Excel opens the Japanese text correctly."""
    writer = csv.writer(_Echo())
    yield "\ufeff".encode() + writer.writerow(CSV_HEADER).encode()
    for entry in entries.iterator(chunk_size=2000):
        # The export is a record for auditors: Japanese labels under the Japanese header,
        # whatever language the person exporting reads.
        with translation.override("ja"):
            cells = [str(cell) for cell in _csv_row(entry)]
        yield writer.writerow([excel_safe(cell) for cell in cells]).encode()


def _csv_row(entry: AuditEntry) -> list[str]:
    return [
        clock.local(entry.occurred_at).strftime("%Y-%m-%d %H:%M:%S"),
        entry.get_actor_kind_display(),
        entry.actor_label,
        entry.action_label,
        entry.action,
        entry.target_type,
        entry.target_id,
        entry.target_label,
        entry.details_text,
        entry.source_ip or "",
        str(entry.pk),
        str(entry.seal_seq or ""),
    ]
