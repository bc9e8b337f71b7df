"""The JSON API under ``/api/`` (django-ninja), described at ``/api/openapi.json``.

There is deliberately no interactive docs page: ninja's Swagger UI loads its scripts
from a CDN, and Yakuba runs in a closed network.  ``/api/openapi.json`` is the
description; any OpenAPI viewer installed inside the network can read it.

Every error answers in the one format of ``yakuba.lib.api_errors``; lists are
cursor-paginated by ``yakuba.lib.api_pagination``; callers authenticate by session
(with CSRF on unsafe methods) or bearer token (``yakuba.lib.api_auth``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.http import Http404, HttpRequest, HttpResponseBase
from django.urls import URLPattern, URLResolver
from ninja import NinjaAPI, Query, Router, Schema

from yakuba.directory.access import access_directory, access_staff, search_staff
from yakuba.directory.models import Department, RoleGrant, StaffProfile, User
from yakuba.lib import api_errors
from yakuba.lib.api_auth import BearerTokenAuth, CallerRateThrottle, SessionAuth, caller
from yakuba.lib.api_errors import ApiError
from yakuba.lib.api_pagination import MAX_LIMIT, paginate

api = NinjaAPI(
    title="Yakuba API",
    version="1",
    description='役場 (Yakuba) JSON API. Errors: {"error": {code, message, message_en, fields}}.',
    urls_namespace="api",
    docs_url=None,
    auth=[BearerTokenAuth(), SessionAuth()],
    throttle=[CallerRateThrottle()],
)
api_errors.install(api)

directory = Router(tags=["directory"])


# --- Schemas ------------------------------------------------------------------------


class DepartmentRef(Schema):
    code: str
    name: str
    full_name: str


class RoleOut(Schema):
    role: str
    label: str
    department: str | None


class MeOut(Schema):
    username: str
    name: str
    kind: str
    language: str
    employee_number: str | None
    department: DepartmentRef | None
    concurrent_departments: list[DepartmentRef]
    title: str
    organisation: str | None
    roles: list[RoleOut]


class DepartmentOut(Schema):
    code: str
    name: str
    kana: str
    level: str
    parent: str | None
    full_name: str
    depth: int


class DepartmentPage(Schema):
    items: list[DepartmentOut]
    next_cursor: str | None


class StaffOut(Schema):
    employee_number: str
    name: str
    kana: str
    department: DepartmentRef
    title: str
    extension: str
    email: str


class StaffDetailOut(StaffOut):
    concurrent_departments: list[DepartmentRef]


class StaffPage(Schema):
    items: list[StaffOut]
    next_cursor: str | None


class PageQuery(Schema):
    cursor: str | None = None
    limit: int = Query(50, ge=1, description=f"最大 {MAX_LIMIT} 件")  # type: ignore[type-arg]


class StaffQuery(PageQuery):
    q: str = Query("", max_length=100)  # type: ignore[type-arg]
    department: str | None = None


# --- Endpoints ----------------------------------------------------------------------


@api.get("/me", response=MeOut, tags=["me"], summary="呼び出した利用者自身")
def me(request: HttpRequest) -> MeOut:
    user = caller(request)
    staff = (
        StaffProfile.objects.select_related("department__parent__parent")
        .prefetch_related("concurrent_posts__department__parent__parent")
        .filter(user=user)
        .first()
    )
    guest = getattr(user, "guest", None) if user.kind == User.Kind.GUEST else None
    grants = RoleGrant.objects.filter(user=user).select_related("department")
    return MeOut(
        username=user.username,
        name=user.display_name,
        kind=user.kind,
        language=user.language,
        employee_number=staff.employee_number if staff else None,
        department=_department_ref(staff.department) if staff else None,
        concurrent_departments=_concurrent(staff) if staff else [],
        title=staff.title if staff else "",
        organisation=guest.organisation if guest else None,
        roles=[
            RoleOut(
                role=grant.role,
                label=grant.get_role_display(),
                department=grant.department.code if grant.department else None,
            )
            for grant in grants
        ],
    )


@directory.get("/departments", response=DepartmentPage, summary="所属の一覧（ツリー）")
def departments(request: HttpRequest, params: Query[PageQuery]) -> DepartmentPage:
    """Every active 所属 in code order, each with its ``parent`` code and ``depth``, so
    that a client can build the 部/課/係 tree."""
    access_directory(caller(request))
    rows = Department.objects.filter(is_active=True).select_related("parent__parent")
    page = paginate(rows, ordering=["code"], cursor=params.cursor, limit=params.limit)
    return DepartmentPage(
        items=[_department_out(row) for row in page.items], next_cursor=page.next_cursor
    )


@directory.get("/staff", response=StaffPage, summary="職員の検索")
def staff_list(request: HttpRequest, params: Query[StaffQuery]) -> StaffPage:
    """Serving staff in 職員番号 order, matched by ``q`` against name, ふりがな (spaces
    ignored), 内線 or 職員番号, within ``department`` (a code) and the 所属 under it."""
    rows = search_staff(caller(request), query=params.q, department_code=params.department or "")
    page = paginate(rows, ordering=["employee_number"], cursor=params.cursor, limit=params.limit)
    return StaffPage(items=[_staff_out(row) for row in page.items], next_cursor=page.next_cursor)


@directory.get("/staff/{employee_number}", response=StaffDetailOut, summary="職員の詳細")
def staff_detail(request: HttpRequest, employee_number: str) -> StaffDetailOut:
    try:
        row = access_staff(caller(request), employee_number)
    except Http404:
        raise ApiError(
            "not_found",
            message=f"職員番号 {employee_number} の職員は見つかりません。",
            message_en=f"No staff member has the employee number {employee_number}.",
        ) from None
    return StaffDetailOut(**_staff_out(row).model_dump(), concurrent_departments=_concurrent(row))


api.add_router("/", directory)

from yakuba.rooms.api import router as rooms_router  # noqa: E402  (after the core routes)

api.add_router("/rooms/", rooms_router)

from yakuba.chat.api import router as chat_router  # noqa: E402  (after the core routes)

api.add_router("/chat/", chat_router)


def _with_json_405(view: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
    """Ninja answers a wrong method with a plain-text 405; this answers it in the one
    error format instead (keeping ``Allow``).  ``wraps`` keeps ninja's ``csrf_exempt``."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        response = view(request, *args, **kwargs)
        if response.status_code != 405:
            return response
        answer = api_errors.error_response(405, "method_not_allowed")
        answer["Allow"] = response.get("Allow", "")
        return answer

    return wrapper


def urls() -> tuple[list[URLPattern | URLResolver], str, str]:
    """``api.urls`` for ``yakuba.urls``, with the one error format for 405 too."""
    patterns, app_name, namespace = api.urls
    wrapped: list[URLPattern | URLResolver] = []
    for pattern in patterns:
        if isinstance(pattern, URLPattern):
            pattern.callback = _with_json_405(pattern.callback)
        wrapped.append(pattern)
    return wrapped, app_name, namespace


# --- Helpers ------------------------------------------------------------------------


def _department_ref(department: Department) -> DepartmentRef:
    return DepartmentRef(
        code=department.code, name=department.name, full_name=department.full_name()
    )


def _department_out(department: Department) -> DepartmentOut:
    path = department.path()
    return DepartmentOut(
        code=department.code,
        name=department.name,
        kana=department.kana,
        level=department.level,
        parent=department.parent.code if department.parent else None,
        full_name=" ".join(node.name for node in path),
        depth=len(path) - 1,
    )


def _staff_out(staff: StaffProfile) -> StaffOut:
    return StaffOut(
        employee_number=staff.employee_number,
        name=staff.full_name,
        kana=staff.full_kana,
        department=_department_ref(staff.department),
        title=staff.title,
        extension=staff.extension,
        email=staff.email,
    )


def _concurrent(staff: StaffProfile) -> list[DepartmentRef]:
    # ``access_staff`` prefetches the posts with their departments; ``all()`` reuses that.
    return [_department_ref(post.department) for post in staff.concurrent_posts.all()]
