"""Directory pages: staff search, the department tree, staff details, and the CSV
import/export page for IT administrators.  Views parse the request, fetch through
``access_*`` and write through the actions."""

from __future__ import annotations

import datetime as dt

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from yakuba.directory import access, csv_io
from yakuba.directory.actions import staff as actions
from yakuba.directory.csv_io import CsvExportError, CsvRejected
from yakuba.directory.models import User

PAGE_SIZE = 50
IMPORT_KINDS = {
    "staff": "職員",
    "departments": "所属",
    "transfers": "人事異動",
}


@login_required
@require_GET
def search(request: HttpRequest) -> HttpResponse:
    query = request.GET.get("q", "").strip()[:100]
    department_code = request.GET.get("department", "").strip()[:20]
    include_retired = request.GET.get("retired") == "1"
    results = access.search_staff(
        request.user,
        query=query,
        department_code=department_code,
        include_retired=include_retired,
    )
    searched = bool(query or department_code)
    page = Paginator(results, PAGE_SIZE).get_page(request.GET.get("page")) if searched else None
    return render(
        request,
        "directory/search.html",
        {
            "active_nav": "directory",
            "is_it_admin": access.is_it_admin(request.user),
            "query": query,
            "department_code": department_code,
            "include_retired": include_retired,
            "tree": access.department_tree(),
            "page": page,
            "searched": searched,
        },
    )


@login_required
@require_GET
def departments(request: HttpRequest) -> HttpResponse:
    access.access_directory(request.user)
    return render(
        request,
        "directory/departments.html",
        {
            "active_nav": "directory",
            "is_it_admin": access.is_it_admin(request.user),
            "tree": access.department_tree(),
        },
    )


@login_required
@require_GET
def staff_detail(request: HttpRequest, employee_number: str) -> HttpResponse:
    staff = access.access_staff(request.user, employee_number)
    return render(
        request,
        "directory/staff_detail.html",
        {
            "active_nav": "directory",
            "is_it_admin": access.is_it_admin(request.user),
            "staff": staff,
            "concurrent_posts": list(staff.concurrent_posts.all()),
        },
    )


@login_required
def import_csv(request: HttpRequest) -> HttpResponse:
    """Upload a CSV of staff, departments or transfers: every bad row is listed with its
    line number and nothing is imported, or everything is."""
    access.access_directory_admin(request.user, "directory.import")
    context: dict[str, object] = {
        "active_nav": "directory",
        "is_it_admin": True,
        "kinds": IMPORT_KINDS,
        "kind": request.POST.get("kind", "staff"),
        "encoding": request.POST.get("encoding", "auto"),
        "name": request.POST.get("name", ""),
        "effective_on": request.POST.get("effective_on", ""),
        "dry_run": request.POST.get("dry_run") == "1",
        "errors": [],
    }
    if request.method != "POST":
        return render(request, "directory/import.html", context)
    upload = request.FILES.get("file")
    kind = str(context["kind"])
    problems = _form_problems(kind, upload is not None, str(context["effective_on"]))
    if problems:
        context["errors"] = problems
        return render(request, "directory/import.html", context, status=400)
    assert upload is not None
    user = request.user if isinstance(request.user, User) else None
    try:
        message = _run_import(kind, upload.read(), upload.name or "", context, user)
    except CsvRejected as exc:
        context["errors"] = [str(error) for error in exc.errors]
        context["rejected"] = True
        return render(request, "directory/import.html", context, status=400)
    except ValueError as exc:  # unknown encoding, empty batch
        context["errors"] = [str(exc)]
        return render(request, "directory/import.html", context, status=400)
    messages.success(request, message)
    return redirect("directory:import")


def _form_problems(kind: str, has_file: bool, effective_on: str) -> list[str]:
    problems = []
    if kind not in IMPORT_KINDS:
        problems.append(_("取り込む内容を選んでください。"))
    if not has_file:
        problems.append(_("CSVファイルを選んでください。"))
    if kind == "transfers":
        try:
            dt.date.fromisoformat(effective_on)
        except ValueError:
            problems.append(_("発令日を 2026-04-01 の形式で入力してください。"))
    return problems


def _run_import(
    kind: str, data: bytes, file_name: str, form: dict[str, object], user: User | None
) -> str:
    encoding = str(form["encoding"])
    if kind == "transfers" and form["dry_run"]:
        # Only a check: registering a batch is the write that 試行のみ promises not to do.
        records = csv_io.parse_transfers(data, encoding=encoding)
        return _("試行のみ（登録していません）: %(count)d名の異動に誤りはありません。") % {
            "count": len(records)
        }
    if kind == "transfers":
        effective_on = dt.date.fromisoformat(str(form["effective_on"]))
        batch = actions.check_schedule_transfers(
            data,
            name=str(form["name"]) or f"人事異動 {effective_on.isoformat()}",
            effective_on=effective_on,
            encoding=encoding,
            acting_user=user,
        )
        return _("人事異動「%(name)s」を登録しました（%(count)d名）。") % {
            "name": batch.name,
            "count": batch.transfers.count(),
        }
    check = actions.check_import_staff if kind == "staff" else actions.check_import_departments
    outcome = check(
        data,
        encoding=encoding,
        dry_run=bool(form["dry_run"]),
        file_name=file_name,
        acting_user=user,
    )
    result = outcome.result
    text = _("新規 %(created)d 件、更新 %(changed)d 件、変更なし %(unchanged)d 件") % {
        "created": len(result.created),
        "changed": len(result.changed),
        "unchanged": result.unchanged,
    }
    if outcome.dry_run:
        return _("試行のみ（取り込んでいません）: ") + text
    return _("取り込みました: ") + text


@login_required
@require_GET
def export_csv(request: HttpRequest, kind: str) -> HttpResponse:
    if kind not in {"staff", "departments"}:
        raise Http404
    access.access_directory_admin(request.user, f"directory.export.{kind}")
    encoding = "cp932" if request.GET.get("encoding") == "cp932" else "utf-8-sig"
    user = request.user if isinstance(request.user, User) else None
    export = actions.do_export_staff if kind == "staff" else actions.do_export_departments
    try:
        data = export(encoding=encoding, acting_user=user)
    except CsvExportError as exc:
        messages.error(request, str(exc))
        return redirect("directory:import")
    charset = "shift_jis" if encoding == "cp932" else "utf-8"
    response = HttpResponse(data, content_type=f"text/csv; charset={charset}")
    response["Content-Disposition"] = f'attachment; filename="{kind}.csv"'
    return response
