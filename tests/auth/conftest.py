"""Helpers for the sign-in tests: sign in through the pages, read a TOTP secret off the
enrolment page, and the IT administrator persona (Dana, 情報政策)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client

from tests.conftest import PASSWORD, make_staff
from yakuba.audit.models import AuditEntry
from yakuba.audit.record import Actor
from yakuba.directory.actions.staff import do_grant_role
from yakuba.directory.models import Department, Role, User


def sign_in(
    client: Client, username: str, password: str = PASSWORD, *, next: str = "", **headers: Any
) -> Any:
    """Post the sign-in form (``headers`` as WSGI keys, e.g. ``HTTP_USER_AGENT``)."""
    data = {"username": username, "password": password}
    if next:
        data["next"] = next
    return client.post("/login/", data, **headers)


def session_key(client: Client) -> str:
    return client.cookies["yakuba_session"].value


def enrol_secret(page: str) -> str:
    """The base32 secret shown (in groups of four) for manual entry."""
    match = re.search(r'id="totp-secret">([A-Z2-7 ]+)<', page)
    assert match, "the enrolment page shows the secret"
    return match.group(1).replace(" ", "")


def audit_actions(**filters: object) -> list[str]:
    return list(
        AuditEntry.objects.filter(**filters).order_by("pk").values_list("action", flat=True)
    )


@pytest.fixture
def dana(ward: dict[str, Department]) -> User:
    """Dana is an IT administrator (情報政策) in 総務課."""
    user = make_staff(
        "dana", "土井", "奈々", ward["somu_ka"], number="10009", kana=("どい", "なな")
    )
    do_grant_role(user, Role.IT_ADMIN, acting_user=Actor.system("test"))
    return user
