"""Permissioned reads of the directory.  A refusal is audited (``record_denial``) and
raised as ``PermissionDenied``, which Django answers with 403.

Who may see what:
- the staff directory (search, tree, staff pages): active staff accounts only; guests,
  bots and devices are refused;
- CSV import and export, the admin pages: IT administrators (``it_admin`` role, or a
  superuser).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import PermissionDenied
from django.db.models import F, Q, QuerySet, Value
from django.db.models.functions import Concat
from django.http import Http404, HttpRequest

from yakuba.audit.record import record_denial
from yakuba.directory.csv_io import to_hiragana
from yakuba.directory.models import Department, Role, RoleGrant, StaffProfile, User

AnyUser = User | AnonymousUser


def has_role(user: AnyUser, role: Role, department: Department | None = None) -> bool:
    """Whether an active ``user`` holds ``role`` (for a section head: over ``department``
    when given).  Every active staff account holds ``staff``."""
    if not isinstance(user, User) or not user.is_active:
        return False
    if role == Role.STAFF and user.kind == User.Kind.STAFF:
        return True
    grants = RoleGrant.objects.filter(user=user, role=role)
    if department is not None:
        grants = grants.filter(department=department)
    return grants.exists()


def is_it_admin(user: AnyUser) -> bool:
    """IT administrators (情報政策) run the admin pages and CSV import."""
    if not isinstance(user, User) or not user.is_active:
        return False
    return user.is_superuser or has_role(user, Role.IT_ADMIN)


def is_it_admin_request(request: HttpRequest) -> bool:
    """``is_it_admin`` for the request's user, asked of the database once per request:
    the admin pages ask it for every model and every permission (about 40 times)."""
    cached = getattr(request, "_yakuba_is_it_admin", None)
    if cached is None:
        cached = is_it_admin(request.user)
        setattr(request, "_yakuba_is_it_admin", cached)  # noqa: B010 (not an attribute mypy knows)
    return bool(cached)


def can_view_directory(user: AnyUser) -> bool:
    return isinstance(user, User) and user.is_active and user.kind == User.Kind.STAFF


def access_directory(user: AnyUser) -> None:
    """Refuse (403, audited) anyone but active staff: guests see only what they were
    invited to, and the directory is not such a thing."""
    if not can_view_directory(user):
        record_denial(actor=_actor(user), what="directory.view")
        raise PermissionDenied("職員名簿は職員だけが閲覧できます。")


def access_directory_admin(user: AnyUser, what: str) -> None:
    """Refuse (403, audited) anyone but IT administrators."""
    if not is_it_admin(user):
        record_denial(actor=_actor(user), what=what)
        raise PermissionDenied("この操作はシステム管理者（情報政策）だけが行えます。")


def _actor(user: AnyUser) -> User | None:
    return user if isinstance(user, User) else None


def access_staff(user: AnyUser, employee_number: str) -> StaffProfile:
    """A staff member's directory entry (404 when unknown)."""
    access_directory(user)
    staff = (
        StaffProfile.objects.select_related("department__parent__parent", "user")
        .prefetch_related("concurrent_posts__department__parent__parent")
        .filter(employee_number=employee_number)
        .first()
    )
    if staff is None:
        raise Http404("職員が見つかりません。")
    return staff


def access_department(user: AnyUser, code: str) -> Department:
    access_directory(user)
    department = Department.objects.select_related("parent__parent").filter(code=code).first()
    if department is None:
        raise Http404("所属が見つかりません。")
    return department


# --- Search -------------------------------------------------------------------------

SPACES = re.compile(r"[\s\u3000]+")


@dataclass(frozen=True)
class TreeNode:
    department: Department
    depth: int

    @property
    def indent(self) -> str:
        """Full-width spaces that show the depth in a list or a select box."""
        return "\u3000" * self.depth


def department_tree() -> list[TreeNode]:
    """Every active department in display order, each after its parent (one query)."""
    departments = list(Department.objects.filter(is_active=True))
    children: dict[int | None, list[Department]] = {}
    for department in departments:
        children.setdefault(department.parent_id, []).append(department)
    nodes: list[TreeNode] = []

    def walk(parent_id: int | None, depth: int) -> None:
        for department in children.get(parent_id, []):
            nodes.append(TreeNode(department, depth))
            walk(department.pk, depth + 1)

    walk(None, 0)
    return nodes


def descendant_ids(department: Department) -> list[int]:
    """The department and every department below it."""
    parents = dict(Department.objects.values_list("pk", "parent_id"))
    ids = {department.pk}
    changed = True
    while changed:
        below = {pk for pk, parent in parents.items() if parent in ids and pk not in ids}
        ids |= below
        changed = bool(below)
    return sorted(ids)


def search_staff(
    user: AnyUser,
    *,
    query: str = "",
    department_code: str = "",
    include_retired: bool = False,
) -> QuerySet[StaffProfile]:
    """Staff matching ``query`` on name or ふりがな (spaces ignored, katakana matches
    hiragana), 内線 or 職員番号, within ``department_code`` and everything below it
    (primary post or 兼務)."""
    access_directory(user)
    staff = StaffProfile.objects.select_related("department__parent__parent", "user")
    if not include_retired:
        staff = staff.filter(status=StaffProfile.Status.ACTIVE)
    if department_code:
        department = Department.objects.filter(code=department_code).first()
        if department is None:
            return staff.none()
        ids = descendant_ids(department)
        staff = staff.filter(
            Q(department_id__in=ids) | Q(concurrent_posts__department_id__in=ids)
        ).distinct()
    text = SPACES.sub("", query)
    if text:
        staff = staff.annotate(
            name_joined=Concat(F("family_name"), Value(""), F("given_name")),
            kana_joined=Concat(F("family_kana"), Value(""), F("given_kana")),
        ).filter(
            Q(name_joined__icontains=text)
            | Q(kana_joined__icontains=to_hiragana(text))
            | Q(extension__startswith=text)
            | Q(employee_number=text)
        )
    return staff.order_by("department__sort_order", "department__code", "family_kana", "pk")


def members_of_departments(codes: Iterable[str]) -> QuerySet[User]:
    """Active users whose primary post or 兼務 is in one of ``codes``: the membership
    that department channels follow (changed by personnel transfers)."""
    codes = list(codes)
    return (
        User.objects.filter(is_active=True)
        .filter(
            Q(staff__department__code__in=codes)
            | Q(staff__concurrent_posts__department__code__in=codes)
        )
        .distinct()
    )
