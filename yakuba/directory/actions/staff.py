"""Every write to departments, staff, roles, guests and personnel transfers.

Each ``do_*`` writes inside one ``transaction.atomic()`` and records its audit entry
there; ``check_*`` validates input (a CSV file) first and then writes all or nothing.
``acting_user`` is the person (or ``Actor.system(...)`` for the CLI and the worker)
on whose behalf the change is made.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth.hashers import make_password
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction

from yakuba.audit.models import AuditAction
from yakuba.audit.record import Actor, record
from yakuba.directory import csv_io
from yakuba.directory.actions.auth import do_deactivate_user, do_reactivate_user
from yakuba.directory.csv_io import DepartmentRecord, StaffRecord, TransferRecord
from yakuba.directory.models import (
    ConcurrentPost,
    Department,
    GuestProfile,
    Role,
    RoleGrant,
    StaffProfile,
    Transfer,
    TransferBatch,
    User,
)
from yakuba.directory.signals import memberships_changed
from yakuba.lib import clock
from yakuba.realtime.send import send_event_on_commit

Acting = User | Actor


class DirectoryError(ValueError):
    """Input the directory cannot accept; the message is Japanese and says what to fix."""


def _acting_user(acting: Acting | None) -> User | None:
    return acting if isinstance(acting, User) else None


# What changes the department channels a person belongs to.
MEMBERSHIP_FIELDS = {"department", "concurrent_posts", "status"}


def notify_memberships_changed(user_ids: Sequence[int]) -> None:
    """Tell whoever follows the directory that these people's 所属, 兼務 or 在職状況
    changed: receivers of ``signals.memberships_changed`` now, in the caller's transaction
    (所属 chat channels), and the people themselves after commit (open pages refresh)."""
    if user_ids:
        memberships_changed.send(sender=StaffProfile, user_ids=list(user_ids))
        send_event_on_commit({"type": "directory", "op": "memberships_changed"}, list(user_ids))


# --- Departments ------------------------------------------------------------------------


DEPARTMENT_FIELDS = ("code", "name", "kana", "level", "parent", "sort_order", "is_active")


def do_create_department(
    *,
    code: str,
    name: str,
    level: str,
    parent: Department | None = None,
    kana: str = "",
    sort_order: int = 0,
    acting_user: Acting | None,
) -> Department:
    with transaction.atomic():
        department = Department.objects.create(
            code=code, name=name, kana=kana, level=level, parent=parent, sort_order=sort_order
        )
        record(
            AuditAction.DEPARTMENT_CREATED,
            actor=acting_user,
            target=department,
            details={"code": code, "parent": parent.code if parent else None},
        )
    return department


def _changed_fields(
    obj: Any, changes: dict[str, Any], allowed: Iterable[str]
) -> dict[str, tuple[object, object]]:
    """``{field: (old label, new label)}`` for the fields ``changes`` really changes."""
    unknown = set(changes) - set(allowed)
    if unknown:
        raise TypeError(f"not {type(obj).__name__} fields: {sorted(unknown)}")
    return {
        name: (_label(getattr(obj, name)), _label(value))
        for name, value in changes.items()
        if getattr(obj, name) != value
    }


def do_change_department(
    department: Department, *, acting_user: Acting | None, **changes: Any
) -> list[str]:
    """Apply ``changes`` (any of DEPARTMENT_FIELDS); returns the fields that changed."""
    changed = _changed_fields(department, changes, DEPARTMENT_FIELDS)
    if not changed:
        return []
    with transaction.atomic():
        for name in changed:
            setattr(department, name, changes[name])
        department.save(update_fields=list(changed))
        record(
            AuditAction.DEPARTMENT_CHANGED,
            actor=acting_user,
            target=department,
            details={"changes": changed},
        )
    return list(changed)


def _label(value: object) -> object:
    """A JSON-friendly form of a field value for audit details."""
    if isinstance(value, Department):
        return value.code
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


# --- Staff ------------------------------------------------------------------------------------


STAFF_FIELDS = (
    "employee_number",
    "family_name",
    "given_name",
    "family_kana",
    "given_kana",
    "department",
    "title",
    "extension",
    "email",
)


def do_create_staff(
    *,
    employee_number: str,
    family_name: str,
    given_name: str,
    family_kana: str,
    given_kana: str,
    department: Department,
    title: str = "",
    extension: str = "",
    email: str = "",
    username: str | None = None,
    acting_user: Acting | None,
) -> StaffProfile:
    """A new staff member with a User (username = 職員番号 unless given) that has no
    usable password until one is set (or LDAP/OIDC signs them in)."""
    with transaction.atomic():
        user = User.objects.create_user(
            username or employee_number,
            None,
            kind=User.Kind.STAFF,
            display_name=f"{family_name} {given_name}",
            email=email,
        )
        staff = StaffProfile.objects.create(
            user=user,
            employee_number=employee_number,
            family_name=family_name,
            given_name=given_name,
            family_kana=family_kana,
            given_kana=given_kana,
            department=department,
            title=title,
            extension=extension,
            email=email,
        )
        RoleGrant.objects.create(user=user, role=Role.STAFF)
        notify_memberships_changed([user.pk])
        record(
            AuditAction.STAFF_CREATED,
            actor=acting_user,
            target=staff,
            details={"employee_number": employee_number, "department": department.code},
        )
    return staff


def do_change_staff(
    staff: StaffProfile, *, acting_user: Acting | None, **changes: Any
) -> list[str]:
    """Apply ``changes`` (any of STAFF_FIELDS); keeps the user's display name and e-mail
    in step.  Returns the fields that changed."""
    changed = _changed_fields(staff, changes, STAFF_FIELDS)
    if not changed:
        return []
    with transaction.atomic():
        for name in changed:
            setattr(staff, name, changes[name])
        staff.save(update_fields=list(changed))
        _sync_user_fields(staff)
        record(
            AuditAction.STAFF_CHANGED, actor=acting_user, target=staff, details={"changes": changed}
        )
        if "department" in changed:
            notify_memberships_changed([staff.user_id])
    return list(changed)


def _sync_user_fields(staff: StaffProfile) -> list[str]:
    user = staff.user
    wanted = {"display_name": staff.full_name, "email": staff.email}
    changed = [name for name, value in wanted.items() if getattr(user, name) != value]
    for name in changed:
        setattr(user, name, wanted[name])
    if changed:
        user.save(update_fields=changed)
    return changed


def do_set_concurrent_posts(
    staff: StaffProfile, departments: Iterable[Department], *, acting_user: Acting | None
) -> bool:
    """Replace the person's 兼務 with ``departments``; returns whether anything changed."""
    with transaction.atomic():
        before = _concurrent_codes(staff)
        if not _replace_concurrent_posts(staff, departments):
            return False
        after = _concurrent_codes(staff)
        record(
            AuditAction.STAFF_CHANGED,
            actor=acting_user,
            target=staff,
            details={"changes": {"concurrent_posts": [before, after]}},
        )
        notify_memberships_changed([staff.user_id])
    return True


def _replace_concurrent_posts(staff: StaffProfile, departments: Iterable[Department]) -> bool:
    """Make the person's 兼務 exactly ``departments`` (less the primary 所属); True when
    that changed anything.  Runs inside the caller's transaction; no audit of its own."""
    wanted = {d.pk: d for d in departments if d.pk != staff.department_id}
    posts = ConcurrentPost.objects.filter(staff=staff)
    held = set(posts.values_list("department_id", flat=True))
    deleted, _ = posts.exclude(department_id__in=list(wanted)).delete()
    added = ConcurrentPost.objects.bulk_create(
        [ConcurrentPost(staff=staff, department=d) for pk, d in wanted.items() if pk not in held]
    )
    return bool(deleted or added)


def _concurrent_codes(staff: StaffProfile) -> list[str]:
    return sorted(
        ConcurrentPost.objects.filter(staff=staff).values_list("department__code", flat=True)
    )


def _retire(staff: StaffProfile, retired_on: dt.date, *, acting_user: Acting | None) -> None:
    """退職: status retired, 兼務 ended, and the account stops at once (audited by the
    sign-in action as ``USER_DEACTIVATED``).  Runs inside the caller's transaction."""
    staff.status = StaffProfile.Status.RETIRED
    staff.retired_on = retired_on
    staff.save(update_fields=["status", "retired_on"])
    ConcurrentPost.objects.filter(staff=staff).delete()
    do_deactivate_user(staff.user, acting_user=acting_user, reason="retired")


# --- Roles ---------------------------------------------------------------------------------


def do_grant_role(
    user: User, role: Role, *, department: Department | None = None, acting_user: Acting | None
) -> RoleGrant:
    """Grant ``role``; a section head's grant names the department they head.  Granting
    ``it_admin`` opens the admin pages (``is_staff``).  Granting a held role is a no-op."""
    if role == Role.SECTION_HEAD and department is None:
        raise DirectoryError("所属長のロールには対象の所属が必要です。")
    if role != Role.SECTION_HEAD and department is not None:
        raise DirectoryError("対象の所属を指定できるのは所属長のロールだけです。")
    if user.kind != User.Kind.STAFF:
        raise DirectoryError("ロールを付与できるのは職員だけです。")
    with transaction.atomic():
        grant, created = RoleGrant.objects.get_or_create(
            user=user, role=role, department=department
        )
        if not created:
            return grant
        if role == Role.IT_ADMIN and not user.is_staff:
            user.is_staff = True
            user.save(update_fields=["is_staff"])
        record(
            AuditAction.ROLE_GRANTED,
            actor=acting_user,
            target=user,
            details={"role": role.value, "department": department.code if department else None},
        )
    return grant


def do_revoke_role(
    user: User, role: Role, *, department: Department | None = None, acting_user: Acting | None
) -> bool:
    """Take ``role`` away; returns False when the user did not hold it.  Losing the last
    ``it_admin`` grant closes the admin pages unless the user is a superuser."""
    with transaction.atomic():
        deleted, _ = RoleGrant.objects.filter(user=user, role=role, department=department).delete()
        if not deleted:
            return False
        if (
            role == Role.IT_ADMIN
            and user.is_staff
            and not user.is_superuser
            and not RoleGrant.objects.filter(user=user, role=Role.IT_ADMIN).exists()
        ):
            user.is_staff = False
            user.save(update_fields=["is_staff"])
        record(
            AuditAction.ROLE_REVOKED,
            actor=acting_user,
            target=user,
            details={"role": role.value, "department": department.code if department else None},
        )
    return True


# --- Guests ---------------------------------------------------------------------------------


def do_invite_guest(
    *,
    name: str,
    organisation: str,
    email: str,
    expires_at: dt.datetime,
    username: str | None = None,
    password: str | None = None,
    acting_user: Acting | None,
) -> User:
    """A guest account (kind ``guest``) that can sign in until ``expires_at``, and only
    to what it is invited to.  Without ``password`` it cannot sign in until one is set."""
    if expires_at <= clock.now():
        raise DirectoryError("有効期限には未来の日時を指定してください。")
    with transaction.atomic():
        username = username or _next_guest_username()
        if User.objects.filter(username=username).exists():
            raise DirectoryError(f"ユーザー名 {username} は既に使われています。")
        user = User(username=username, kind=User.Kind.GUEST, display_name=name, email=email)
        if password is not None:
            try:
                validate_password(password, user)
            except ValidationError as exc:
                raise DirectoryError(" ".join(exc.messages)) from exc
        user.set_password(password)
        user.save()
        GuestProfile.objects.create(
            user=user,
            name=name,
            organisation=organisation,
            email=email,
            expires_at=expires_at,
            invited_by=_acting_user(acting_user),
        )
        record(
            AuditAction.GUEST_INVITED,
            actor=acting_user,
            target=user,
            details={"organisation": organisation, "expires_at": expires_at.isoformat()},
        )
    return user


def _next_guest_username() -> str:
    count = User.objects.filter(kind=User.Kind.GUEST).count() + 1
    while User.objects.filter(username=f"guest{count:04d}").exists():
        count += 1
    return f"guest{count:04d}"


def do_change_guest_expiry(
    guest: GuestProfile, expires_at: dt.datetime, *, acting_user: Acting | None
) -> None:
    """Move a guest's expiry; a guest extended into the future may sign in again."""
    with transaction.atomic():
        before = guest.expires_at
        guest.expires_at = expires_at
        guest.save(update_fields=["expires_at"])
        if expires_at > clock.now():
            do_reactivate_user(guest.user, acting_user=acting_user, reason="guest_extended")
        record(
            AuditAction.GUEST_CHANGED,
            actor=acting_user,
            target=guest.user,
            details={"expires_at": [before.isoformat(), expires_at.isoformat()]},
        )


def do_deactivate_expired_guests() -> int:
    """Deactivate every active guest past expiry; returns how many.  Safe to run in two
    workers at once: deactivating an inactive user changes nothing."""
    due = list(
        User.objects.filter(
            kind=User.Kind.GUEST, is_active=True, guest__expires_at__lte=clock.now()
        ).order_by("pk")
    )
    for user in due:
        do_deactivate_user(user, acting_user=Actor.system("ゲスト期限切れ"), reason="expired")
    return len(due)


# --- Bulk synchronisation (CSV import, demo ward) ------------------------------------------


@dataclass
class SyncResult:
    """What an import changed: new keys, changed keys with their field names."""

    created: list[str] = field(default_factory=list)
    changed: dict[str, list[str]] = field(default_factory=dict)
    unchanged: int = 0

    @property
    def has_changes(self) -> bool:
        return bool(self.created or self.changed)

    def details(self) -> dict[str, Any]:
        return {"created": self.created, "changed": self.changed, "unchanged": self.unchanged}


def sync_departments(records: Sequence[DepartmentRecord]) -> SyncResult:
    """Upsert departments by code, parents first.  No audit: the caller records one entry
    for the whole file.  Must run inside the caller's transaction."""
    result = SyncResult()
    # parent is compared below: fetch it with the row, not one query per department.
    by_code = {d.code: d for d in Department.objects.select_related("parent")}
    ordered = sorted(records, key=lambda r: csv_io.LEVEL_RANK[Department.Level(r.level)])
    for rec in ordered:
        parent = by_code[rec.parent_code] if rec.parent_code else None
        wanted: dict[str, Any] = {
            "name": rec.name,
            "kana": rec.kana,
            "level": rec.level,
            "parent": parent,
            "sort_order": rec.sort_order,
        }
        department = by_code.get(rec.code)
        if department is None:
            department = Department.objects.create(code=rec.code, **wanted)
            by_code[rec.code] = department
            result.created.append(rec.code)
            continue
        changed = [name for name, value in wanted.items() if getattr(department, name) != value]
        if changed:
            for name in changed:
                setattr(department, name, wanted[name])
            department.save(update_fields=changed)
            result.changed[rec.code] = changed
        else:
            result.unchanged += 1
    return result


def sync_staff(records: Sequence[StaffRecord], *, acting_user: Acting | None) -> SyncResult:
    """Upsert staff by 職員番号 in bulk (new people: a User with an unusable password and
    the ``staff`` role).  Retiring someone deactivates their account.  No audit entry of
    its own: the caller records one for the whole batch.  Must run inside a transaction."""
    result = SyncResult()
    departments = {d.code: d for d in Department.objects.all()}
    existing = {
        s.employee_number: s for s in StaffProfile.objects.select_related("user", "department")
    }
    posts: dict[int, set[str]] = defaultdict(set)
    for staff_id, code in ConcurrentPost.objects.values_list("staff_id", "department__code"):
        posts[staff_id].add(code)
    fresh = [r for r in records if r.employee_number not in existing]
    moved = _create_staff_in_bulk(fresh, departments)
    result.created = [r.employee_number for r in fresh]
    for rec in records:
        staff = existing.get(rec.employee_number)
        if staff is None:
            continue
        changed = _update_staff(staff, rec, departments, posts[staff.pk], acting_user)
        if changed:
            result.changed[rec.employee_number] = changed
        else:
            result.unchanged += 1
        if MEMBERSHIP_FIELDS & set(changed):
            moved.append(staff.user_id)
    notify_memberships_changed(moved)
    return result


def _create_staff_in_bulk(
    records: Sequence[StaffRecord], departments: dict[str, Department]
) -> list[int]:
    """Create the people of ``records``; returns their user ids."""
    now = clock.now()
    users = [
        User(
            username=r.username or r.employee_number,
            kind=User.Kind.STAFF,
            display_name=f"{r.family_name} {r.given_name}",
            email=r.email,
            is_active=r.status == StaffProfile.Status.ACTIVE,
            # Unusable: "!" and random characters, cheap to make (no Argon2 run).
            password=make_password(None),
            date_joined=now,
        )
        for r in records
    ]
    User.objects.bulk_create(users, batch_size=500)
    profiles = [
        StaffProfile(
            user=user,
            employee_number=r.employee_number,
            family_name=r.family_name,
            given_name=r.given_name,
            family_kana=r.family_kana,
            given_kana=r.given_kana,
            department=departments[r.department_code],
            title=r.title,
            extension=r.extension,
            email=r.email,
            status=r.status,
            retired_on=_retired_on(r),
        )
        for user, r in zip(users, records, strict=True)
    ]
    StaffProfile.objects.bulk_create(profiles, batch_size=500)
    ConcurrentPost.objects.bulk_create(
        [
            ConcurrentPost(staff=profile, department=departments[code])
            for profile, r in zip(profiles, records, strict=True)
            for code in r.concurrent_codes or ()
        ],
        batch_size=500,
    )
    RoleGrant.objects.bulk_create(
        [RoleGrant(user=user, role=Role.STAFF, granted_at=now) for user in users], batch_size=500
    )
    return [user.pk for user in users]


def _retired_on(rec: StaffRecord) -> dt.date | None:
    if rec.status != StaffProfile.Status.RETIRED:
        return None
    return rec.retired_on or clock.today()


def _update_staff(
    staff: StaffProfile,
    rec: StaffRecord,
    departments: dict[str, Department],
    held: set[str],
    acting_user: Acting | None,
) -> list[str]:
    wanted: dict[str, Any] = {
        "family_name": rec.family_name,
        "given_name": rec.given_name,
        "family_kana": rec.family_kana,
        "given_kana": rec.given_kana,
        "department": departments[rec.department_code],
        "title": rec.title,
        "extension": rec.extension,
        "email": rec.email,
    }
    changed = [name for name, value in wanted.items() if getattr(staff, name) != value]
    for name in changed:
        setattr(staff, name, wanted[name])
    if changed:
        staff.save(update_fields=changed)
        changed += _sync_user_fields(staff)
    if rec.username and staff.user.username != rec.username:
        staff.user.username = rec.username
        staff.user.save(update_fields=["username"])
        changed.append("username")
    changed += _update_status(staff, rec, acting_user)
    # ``held`` was read for everyone in one query: most rows change no 兼務 and cost none.
    # Without a 兼務 column the 兼務 stay, less one in the department that became primary.
    codes = held if rec.concurrent_codes is None else set(rec.concurrent_codes)
    if codes != held or rec.department_code in held:
        _replace_concurrent_posts(staff, [departments[code] for code in codes])
        changed.append("concurrent_posts")
    return changed


def _update_status(staff: StaffProfile, rec: StaffRecord, acting_user: Acting | None) -> list[str]:
    if rec.status == StaffProfile.Status.RETIRED:
        retired_on = rec.retired_on or staff.retired_on or clock.today()
        if staff.status == rec.status and staff.retired_on == retired_on:
            return []
        if staff.status != rec.status:
            _retire(staff, retired_on, acting_user=acting_user)
        else:
            staff.retired_on = retired_on
            staff.save(update_fields=["retired_on"])
        return ["status"]
    if staff.status == StaffProfile.Status.ACTIVE:
        return []
    staff.status = StaffProfile.Status.ACTIVE
    staff.retired_on = None
    staff.save(update_fields=["status", "retired_on"])
    do_reactivate_user(staff.user, acting_user=acting_user, reason="rehired")
    return ["status"]


# --- CSV import and export ----------------------------------------------------------------


@dataclass
class ImportOutcome:
    kind: str
    result: SyncResult
    dry_run: bool


def check_import_departments(
    data: bytes,
    *,
    encoding: str = "auto",
    dry_run: bool = False,
    file_name: str = "",
    acting_user: Acting | None,
) -> ImportOutcome:
    """Import a departments CSV: all rows or none (``CsvRejected`` lists every bad row).
    ``dry_run`` validates and reports what would change, then rolls back."""
    with transaction.atomic():
        records = csv_io.parse_departments(data, encoding=encoding)
        result = sync_departments(records)
        _record_import("departments", result, file_name, acting_user)
        if dry_run:
            transaction.set_rollback(True)
    return ImportOutcome("departments", result, dry_run)


def check_import_staff(
    data: bytes,
    *,
    encoding: str = "auto",
    dry_run: bool = False,
    file_name: str = "",
    acting_user: Acting | None,
) -> ImportOutcome:
    """Import a staff CSV: all rows or none (``CsvRejected`` lists every bad row)."""
    with transaction.atomic():
        records = csv_io.parse_staff(data, encoding=encoding)
        result = sync_staff(records, acting_user=acting_user)
        _record_import("staff", result, file_name, acting_user)
        if dry_run:
            transaction.set_rollback(True)
    return ImportOutcome("staff", result, dry_run)


def _record_import(kind: str, result: SyncResult, file_name: str, acting: Acting | None) -> None:
    record(
        AuditAction.CSV_IMPORTED,
        actor=acting,
        target=("directory.csv", kind, file_name or kind),
        details={"kind": kind, "file": file_name, **result.details()},
    )


def do_export_departments(*, encoding: str = "utf-8-sig", acting_user: Acting | None) -> bytes:
    """The departments CSV; the export itself is audited (it is personal-data adjacent)."""
    with transaction.atomic():
        data = csv_io.export_departments(encoding)
        record(
            AuditAction.CSV_EXPORTED,
            actor=acting_user,
            target=("directory.csv", "departments", "departments"),
            details={"kind": "departments", "encoding": encoding},
        )
    return data


def do_export_staff(*, encoding: str = "utf-8-sig", acting_user: Acting | None) -> bytes:
    """The staff CSV (personal data: who exported it is audited)."""
    with transaction.atomic():
        data = csv_io.export_staff(encoding)
        record(
            AuditAction.CSV_EXPORTED,
            actor=acting_user,
            target=("directory.csv", "staff", "staff"),
            details={"kind": "staff", "encoding": encoding},
        )
    return data


# --- Personnel transfers (人事異動) --------------------------------------------------------


def check_schedule_transfers(
    data: bytes,
    *,
    name: str,
    effective_on: dt.date,
    encoding: str = "auto",
    acting_user: Acting | None,
) -> TransferBatch:
    """A scheduled batch from a transfers CSV, all rows or none (``CsvRejected``)."""
    with transaction.atomic():
        records = csv_io.parse_transfers(data, encoding=encoding)
        return do_schedule_transfers(
            records, name=name, effective_on=effective_on, acting_user=acting_user
        )


def do_schedule_transfers(
    records: Sequence[TransferRecord],
    *,
    name: str,
    effective_on: dt.date,
    acting_user: Acting | None,
) -> TransferBatch:
    """Store a dated batch; the worker applies it on ``effective_on`` (or at its next
    run when that date has already passed)."""
    if not records:
        raise DirectoryError("異動の明細が1件もありません。")
    with transaction.atomic():
        staff = {s.employee_number: s for s in StaffProfile.objects.all()}
        departments = {d.code: d for d in Department.objects.all()}
        batch = TransferBatch.objects.create(
            name=name, effective_on=effective_on, created_by=_acting_user(acting_user)
        )
        Transfer.objects.bulk_create(
            [
                Transfer(
                    batch=batch,
                    staff=staff[r.employee_number],
                    new_department=departments.get(r.new_department_code),
                    new_title=r.new_title,
                    concurrent_department_codes=list(r.concurrent_codes),
                    retire=r.retire,
                )
                for r in records
            ]
        )
        record(
            AuditAction.TRANSFER_SCHEDULED,
            actor=acting_user,
            target=batch,
            details={"effective_on": effective_on.isoformat(), "count": len(records)},
        )
    return batch


def do_cancel_transfer_batch(batch: TransferBatch, *, acting_user: Acting | None) -> bool:
    """Cancel a batch that has not been applied; False when it was applied already."""
    with transaction.atomic():
        cancelled = TransferBatch.objects.filter(
            pk=batch.pk, status=TransferBatch.Status.SCHEDULED
        ).update(status=TransferBatch.Status.CANCELLED)
        if cancelled:
            record(AuditAction.TRANSFER_CANCELLED, actor=acting_user, target=batch)
    batch.refresh_from_db(fields=["status"])
    return bool(cancelled)


def do_apply_transfer_batch(batch_id: int, *, acting_user: Acting | None) -> bool:
    """Apply one due batch in one transaction; False when it is not due, already applied
    or cancelled.

    Concurrency: the batch is claimed with a conditional UPDATE (status scheduled →
    applied).  On PostgreSQL a second worker's UPDATE waits for the first transaction and
    then matches no row; on SQLite BEGIN IMMEDIATE serialises the two.  Either way the
    batch is applied exactly once.
    """
    with transaction.atomic():
        claimed = TransferBatch.objects.filter(
            pk=batch_id, status=TransferBatch.Status.SCHEDULED, effective_on__lte=clock.today()
        ).update(status=TransferBatch.Status.APPLIED, applied_at=clock.now())
        if not claimed:
            return False
        batch = TransferBatch.objects.get(pk=batch_id)
        transfers = list(
            batch.transfers.select_related("staff__user", "staff__department", "new_department")
        )
        departments = {d.code: d for d in Department.objects.all()}
        details = [_apply_transfer(t, batch, departments, acting_user) for t in transfers]
        record(
            AuditAction.TRANSFER_APPLIED,
            actor=acting_user,
            target=batch,
            details={"effective_on": batch.effective_on.isoformat(), "transfers": details},
        )
        moved = [t.staff.user_id for t in transfers]
        memberships_changed.send(sender=StaffProfile, user_ids=moved)
        send_event_on_commit(
            {"type": "directory", "op": "transfers_applied", "batch_id": batch.pk}, moved
        )
    return True


def _apply_transfer(
    transfer: Transfer,
    batch: TransferBatch,
    departments: dict[str, Department],
    acting_user: Acting | None,
) -> dict[str, Any]:
    staff = transfer.staff
    before = _post_of(staff)
    if staff.status != StaffProfile.Status.ACTIVE:
        # Retired after the batch was registered: nothing left to move.
        return {"employee_number": staff.employee_number, "before": before, "skipped": "retired"}
    if transfer.retire:
        # Retirement takes effect the day before the 発令日: a batch dated 4月1日
        # retires people as of 3月31日, the usual 年度末 retirement date.
        _retire(staff, batch.effective_on - dt.timedelta(days=1), acting_user=acting_user)
        return {"employee_number": staff.employee_number, "before": before, "retired": True}
    changed = []
    if transfer.new_department is not None and transfer.new_department != staff.department:
        staff.department = transfer.new_department
        changed.append("department")
    if transfer.new_title and transfer.new_title != staff.title:
        staff.title = transfer.new_title
        changed.append("title")
    if changed:
        staff.save(update_fields=changed)
    codes = transfer.concurrent_department_codes
    missing = [code for code in codes if code not in departments]
    _replace_concurrent_posts(staff, [departments[code] for code in codes if code in departments])
    entry: dict[str, Any] = {
        "employee_number": staff.employee_number,
        "before": before,
        "after": _post_of(staff),
    }
    if missing:
        entry["missing_codes"] = missing
    return entry


def _post_of(staff: StaffProfile) -> dict[str, Any]:
    return {
        "department": staff.department.code,
        "title": staff.title,
        "concurrent": _concurrent_codes(staff),
    }


def do_apply_due_transfers(*, acting_user: Acting | None = None) -> list[int]:
    """Apply every scheduled batch whose date has come, oldest first; returns their ids.
    A batch whose date passed while no worker ran is applied now."""
    acting = acting_user or Actor.system("人事異動の発令")
    due = TransferBatch.objects.filter(
        status=TransferBatch.Status.SCHEDULED, effective_on__lte=clock.today()
    ).order_by("effective_on", "pk")
    applied = []
    for batch_id in due.values_list("pk", flat=True):
        if do_apply_transfer_batch(batch_id, acting_user=acting):
            applied.append(batch_id)
    return applied
