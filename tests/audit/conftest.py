"""Helpers for the audit-log tests: an auditor persona, audited activity made with a
real action, and an "attacker" who can switch the database's refusals off."""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import override_settings

from tests.conftest import make_staff
from yakuba.audit.models import AuditSeal
from yakuba.directory.actions.staff import do_create_department, do_grant_role
from yakuba.directory.models import Department, Role, User

# A fixed test key (raw Ed25519 seed), so no test writes a key file under var/.
SIGNING_SEED = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"
GUARDED_TABLES = (
    "audit_auditentry",
    "audit_auditseal",
    "audit_auditcheckpoint",
    "audit_auditpruneanchor",
)


@pytest.fixture(autouse=True)
def _signing_key() -> Iterator[None]:
    with override_settings(AUDIT_SIGNING_KEY=SIGNING_SEED):
        yield


@pytest.fixture
def auditor(ward: dict[str, Department]) -> User:
    """Daisuke audits (監査 role, read-only)."""
    user = make_staff(
        "daisuke", "土井", "大輔", ward["somu_ka"], number="30001", kana=("どい", "だいすけ")
    )
    do_grant_role(user, Role.AUDITOR, acting_user=None)
    return user


def make_activity(user: User, count: int, *, prefix: str = "T") -> None:
    """``count`` audited actions by ``user`` (departments created through the action)."""
    for number in range(count):
        do_create_department(
            code=f"{prefix}{number:04d}",
            name=f"検証用係{number}",
            level="kakari",
            acting_user=user,
        )


def audit(*args: str) -> str:
    """Run `yakuba audit …` and return what it printed."""
    out = io.StringIO()
    call_command("audit", *args, stdout=out)
    return out.getvalue()


def seal_of(seq: int) -> AuditSeal:
    return AuditSeal.objects.get(seq=seq)


@contextmanager
def as_attacker() -> Iterator[None]:
    """Someone with full rights on the database switches the refusals off (inside the
    test's transaction, so the triggers come back when the test ends)."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # Deferred foreign-key checks must fire before a table can be altered.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            for table in GUARDED_TABLES:
                cursor.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
        else:
            cursor.execute(
                "SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE '%%_no_%%'"
            )
            for (name,) in cursor.fetchall():
                cursor.execute(f"DROP TRIGGER {name}")
    yield


def run_sql(sql: str, params: Sequence[Any] = ()) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql, list(params))
