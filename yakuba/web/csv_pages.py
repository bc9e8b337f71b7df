"""The upload-a-CSV page and the CSV download that several features share (会議室, the
ward dictionary): one behaviour everywhere.  An import either takes every row or names
every bad row with its line number and takes nothing (``CsvRejected``); the file's
encoding is UTF-8 or Shift_JIS/CP932, told or guessed (``"auto"``)."""

from __future__ import annotations

from collections.abc import Callable, Sized
from typing import Any, Protocol

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _

from yakuba.directory.csv_io import CsvExportError, CsvRejected


class ImportResult(Protocol):
    """What an import reports: the rows it created, changed and left as they were."""

    @property
    def created(self) -> Sized: ...

    @property
    def changed(self) -> Sized: ...

    @property
    def unchanged(self) -> Sized: ...


def csv_import_page(
    request: HttpRequest,
    *,
    template: str,
    context: dict[str, Any],
    run_import: Callable[[bytes, str], ImportResult],
    max_bytes: int,
    done_url: str,
) -> HttpResponse:
    """GET: the upload form.  POST: read the file (at most ``max_bytes``), call
    ``run_import(data, encoding)``, and answer the form again with every error (400),
    or redirect to ``done_url`` with the counts."""
    context = {**context, "encoding": request.POST.get("encoding", "auto"), "errors": []}
    if request.method != "POST":
        return render(request, template, context)

    def refuse(*errors: str, rejected: bool = False) -> HttpResponse:
        context.update(errors=list(errors), rejected=rejected)
        return render(request, template, context, status=400)

    upload = request.FILES.get("file")
    if upload is None:
        return refuse(_("CSVファイルを選んでください。"))
    data = upload.read(max_bytes + 1)
    if len(data) > max_bytes:
        return refuse(
            _("CSVファイルが大きすぎます（%(size)sまで）。") % {"size": _megabytes(max_bytes)}
        )
    try:
        result = run_import(data, context["encoding"])
    except CsvRejected as exc:
        return refuse(*(str(error) for error in exc.errors), rejected=True)
    except ValueError as exc:  # an encoding we do not read
        return refuse(str(exc))
    messages.success(
        request,
        _("取り込みました: 新規 %(created)d 件、更新 %(changed)d 件、変更なし %(unchanged)d 件")
        % {
            "created": len(result.created),
            "changed": len(result.changed),
            "unchanged": len(result.unchanged),
        },
    )
    return redirect(done_url)


def _megabytes(size: int) -> str:
    return f"{size // (1024 * 1024)}MB" if size >= 1024 * 1024 else f"{size // 1024}KB"


def csv_download(
    request: HttpRequest, *, export: Callable[[str], bytes], filename: str, error_url: str
) -> HttpResponse:
    """The CSV made by ``export(encoding)``, in UTF-8 with a BOM (Excel reads it) or in
    CP932 (``?encoding=cp932``, for older tools); a value that cannot be written in CP932
    sends the person back to ``error_url`` with the reason."""
    encoding = "cp932" if request.GET.get("encoding") == "cp932" else "utf-8-sig"
    try:
        data = export(encoding)
    except CsvExportError as exc:
        messages.error(request, str(exc))
        return redirect(error_url)
    charset = "shift_jis" if encoding == "cp932" else "utf-8"
    response = HttpResponse(data, content_type=f"text/csv; charset={charset}")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
