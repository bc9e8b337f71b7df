"""``yakuba demo``: a believable ward, every role present, idempotent."""

from __future__ import annotations

import time

from django.contrib.auth import authenticate
from django.db.models import Count

from tests.directory.conftest import run_command
from yakuba.audit.models import AuditEntry
from yakuba.directory.demo_data import DEMO_PASSWORD, build_departments
from yakuba.directory.models import (
    ConcurrentPost,
    Department,
    GuestProfile,
    Role,
    RoleGrant,
    StaffProfile,
    User,
)


def snapshot() -> dict[str, object]:
    """Everything the demo writes, in a comparable form."""
    return {
        "departments": list(Department.objects.order_by("code").values()),
        "staff": list(StaffProfile.objects.order_by("employee_number").values()),
        "users": list(User.objects.order_by("username").values()),
        "posts": list(ConcurrentPost.objects.order_by("pk").values()),
        "roles": list(RoleGrant.objects.order_by("pk").values()),
        "guests": list(GuestProfile.objects.order_by("pk").values()),
    }


def test_running_the_demo_twice_changes_nothing(db):
    first = run_command("demo", "--staff", "250")
    before = snapshot()

    second = run_command("demo", "--staff", "250")

    assert "デモ区を作成・更新しました" in first
    assert "no changes" in second
    assert snapshot() == before
    assert AuditEntry.objects.filter(action="system.demo_loaded").count() == 1


def test_the_demo_ward_has_every_role_and_the_named_accounts(db):
    out = run_command("demo", "--staff", "250")

    held = set(RoleGrant.objects.values_list("role", flat=True))
    assert held == set(Role.values)
    sections = Department.objects.filter(level="ka")
    heads = RoleGrant.objects.filter(role=Role.SECTION_HEAD, department__level="ka")
    assert heads.count() == sections.count()  # one 所属長 for each 課
    assert set(
        RoleGrant.objects.filter(role=Role.AUDITOR).values_list(
            "user__staff__department__name", flat=True
        )
    ) == {"監査課"}
    for username in ("admin", "kanri", "kansa", "kacho", "shokuin", "madoguchi", "guest"):
        assert username in out
    admin = authenticate(username="admin", password=DEMO_PASSWORD)
    assert admin is not None
    assert admin.is_superuser
    assert admin.is_staff
    kacho = RoleGrant.objects.get(user__username="kacho", role=Role.SECTION_HEAD)
    assert kacho.department is not None
    assert kacho.department.name == "総務課"
    assert User.objects.get(username="madoguchi").role_grants.filter(role=Role.COUNTER_STAFF)
    assert User.objects.get(username="guest").kind == "guest"
    assert GuestProfile.objects.count() == 3
    # Everyone else has no usable password (hashing 2,300 with Argon2 would be slow).
    assert not User.objects.get(username="100200").has_usable_password()


def test_the_full_demo_ward_is_the_size_the_ward_asked_for_and_fast(db):
    started = time.monotonic()
    run_command("demo")
    elapsed = time.monotonic() - started

    bu = Department.objects.filter(level="bu")
    assert 14 <= bu.count() <= 16
    assert 95 <= Department.objects.count() <= 110
    assert StaffProfile.objects.count() == 2300
    assert {"総務部", "区民部", "防災危機管理室", "監査事務局", "区議会事務局"} <= set(
        bu.values_list("name", flat=True)
    )
    assert ConcurrentPost.objects.count() > 30
    assert StaffProfile.objects.values("family_kana").annotate(n=Count("pk")).count() > 50
    assert elapsed < 30, f"the demo took {elapsed:.1f}s"


def test_the_department_list_has_unique_codes_and_parents_first():
    records = build_departments()
    codes = [record.code for record in records]
    assert len(codes) == len(set(codes))
    seen: set[str] = set()
    for record in records:
        assert not record.parent_code or record.parent_code in seen
        seen.add(record.code)


def test_a_second_demo_run_reads_in_a_few_queries(db, django_assert_max_num_queries):
    run_command("demo", "--staff", "200")

    # Departments, staff, 兼務, users, roles, the named accounts and guests are each read
    # in one query or a few, and so are the demo rooms and meetings (22); chat reads its
    # 所属 channels and their members in a dozen (savepoints included), and each of its
    # seven demo conversations in three (the conversation, its demo messages, its read
    # pointers), plus the 総務課 channel's owner (one more on PostgreSQL: the membership
    # sync's advisory lock); nothing is read per person.
    with django_assert_max_num_queries(57):
        run_command("demo", "--staff", "200")
