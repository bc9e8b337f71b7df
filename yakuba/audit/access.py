"""Permissioned reads of the audit log (監査ログ検索).

Who may read it: auditors (``auditor`` role, 監査: read-only) and IT administrators
(``it_admin`` role, or a superuser).  Anyone else is refused with 403, and the refusal
is itself logged.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet

from yakuba.audit.models import AuditEntry
from yakuba.audit.record import record_denial
from yakuba.directory.models import Role, RoleGrant, User
from yakuba.lib import clock


def can_read_audit_log(user: User | AnonymousUser) -> bool:
    """Auditors and IT administrators (one query: the menu asks on every page)."""
    if not isinstance(user, User) or not user.is_active:
        return False
    return user.is_superuser or (
        RoleGrant.objects.filter(user=user, role__in=(Role.AUDITOR, Role.IT_ADMIN)).exists()
    )


def access_audit_log(user: User | AnonymousUser, what: str = "audit.search") -> None:
    """Refuse (403, audited) anyone but auditors and IT administrators."""
    if not can_read_audit_log(user):
        record_denial(actor=user if isinstance(user, User) else None, what=what)
        raise PermissionDenied("監査ログは監査担当とシステム管理者だけが閲覧できます。")


@dataclass(frozen=True)
class AuditFilters:
    """A search on the auditor's page; empty fields do not filter."""

    person: str = ""
    action: str = ""
    target: str = ""
    date_from: dt.date | None = None
    date_to: dt.date | None = None

    def as_details(self) -> dict[str, str]:
        """The filters as they are written into the audit entry of the search."""
        return {
            "person": self.person,
            "action": self.action,
            "target": self.target,
            "date_from": self.date_from.isoformat() if self.date_from else "",
            "date_to": self.date_to.isoformat() if self.date_to else "",
        }


def search_audit_log(user: User | AnonymousUser, filters: AuditFilters) -> QuerySet[AuditEntry]:
    """Entries matching ``filters``, newest first (dates are whole days in JST)."""
    access_audit_log(user)
    entries = AuditEntry.objects.select_related("seal").order_by("-occurred_at", "-id")
    if filters.person:
        entries = entries.filter(actor_label__icontains=filters.person)
    if filters.action:
        entries = entries.filter(action=filters.action)
    if filters.target:
        entries = entries.filter(
            Q(target_label__icontains=filters.target)
            | Q(target_id=filters.target)
            | Q(target_type=filters.target)
        )
    if filters.date_from:
        entries = entries.filter(occurred_at__gte=_tokyo_midnight(filters.date_from))
    if filters.date_to:
        next_day = filters.date_to + dt.timedelta(days=1)
        entries = entries.filter(occurred_at__lt=_tokyo_midnight(next_day))
    return entries


def _tokyo_midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=clock.TOKYO)
