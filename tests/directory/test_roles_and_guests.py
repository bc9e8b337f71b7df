"""Roles and guests: grants audited, it_admin opens the admin, guests expire."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.management import CommandError

from tests.directory.conftest import run_command
from yakuba.audit.models import AuditEntry
from yakuba.audit.record import Actor
from yakuba.directory.actions.staff import (
    DirectoryError,
    do_grant_role,
    do_revoke_role,
)
from yakuba.directory.middleware import guest_expired
from yakuba.directory.models import Role, RoleGrant, User
from yakuba.lib import clock
from yakuba.tasks.worker import run_once

SYSTEM = Actor.system("test")


def test_granting_and_revoking_it_admin_switches_admin_access(alice, ida):
    do_grant_role(alice, Role.IT_ADMIN, acting_user=ida)
    alice.refresh_from_db()
    assert alice.is_staff

    assert do_revoke_role(alice, Role.IT_ADMIN, acting_user=ida)
    alice.refresh_from_db()
    assert not alice.is_staff
    actions = list(
        AuditEntry.objects.filter(target_id=str(alice.pk), actor_id=ida.pk)
        .order_by("pk")
        .values_list("action", flat=True)
    )
    assert actions == ["directory.role_granted", "directory.role_revoked"]


def test_granting_a_held_role_again_changes_nothing(alice, ward):
    do_grant_role(alice, Role.SECTION_HEAD, department=ward["somu_ka"], acting_user=SYSTEM)
    do_grant_role(alice, Role.SECTION_HEAD, department=ward["somu_ka"], acting_user=SYSTEM)

    assert RoleGrant.objects.filter(user=alice, role=Role.SECTION_HEAD).count() == 1
    assert AuditEntry.objects.filter(action="directory.role_granted").count() == 1


def test_a_section_head_heads_a_department_and_a_guest_holds_no_role(alice, gina):
    with pytest.raises(DirectoryError, match="対象の所属が必要"):
        do_grant_role(alice, Role.SECTION_HEAD, acting_user=SYSTEM)
    with pytest.raises(DirectoryError, match="職員だけ"):
        do_grant_role(gina, Role.AUDITOR, acting_user=SYSTEM)
    assert not RoleGrant.objects.filter(role__in=[Role.SECTION_HEAD, Role.AUDITOR]).exists()


def test_the_worker_deactivates_a_guest_whose_invitation_ran_out(gina):
    assert not guest_expired(gina)
    run_once()
    gina.refresh_from_db()
    assert gina.is_active

    clock.advance(dt.timedelta(days=31))
    assert guest_expired(gina)
    run_once()
    run_once()

    gina.refresh_from_db()
    assert not gina.is_active
    entries = AuditEntry.objects.filter(action="directory.user_deactivated", target_id=str(gina.pk))
    assert entries.count() == 1
    assert entries.get().details["reason"] == "expired"


def test_a_guest_is_invited_from_the_command_line(db):
    with clock.frozen_at(dt.datetime(2025, 6, 1, 9, 0, tzinfo=clock.TOKYO)):
        out = run_command(
            "invite_guest",
            "--name",
            "小林 恵子",
            "--organisation",
            "デモ区社会福祉協議会",
            "--email",
            "kobayashi@shakyo.example.jp",
            "--expires",
            "2025-06-30",
        )
        guest = User.objects.get(kind="guest")
        assert guest.username == "guest0001"
        assert "guest0001" in out
        # Access ends when 30 June ends in Tokyo.
        assert guest.guest.expires_at == dt.datetime(2025, 7, 1, tzinfo=clock.TOKYO)
        assert not guest.has_usable_password()
    assert AuditEntry.objects.filter(action="directory.guest_invited").count() == 1


def test_the_guest_command_refuses_a_bad_address_or_a_missing_password_file(db, tmp_path):
    common = ["--name", "小林 恵子", "--expires", "2099-06-30"]

    with pytest.raises(CommandError, match="メールアドレスの形式ではありません"):
        run_command("invite_guest", *common, "--email", "kobayashi@")
    with pytest.raises(CommandError, match="パスワードのファイルを読めません"):
        run_command(
            "invite_guest",
            *common,
            "--email",
            "kobayashi@shakyo.example.jp",
            "--password-file",
            str(tmp_path / "missing.txt"),
        )

    assert not User.objects.filter(kind="guest").exists()
