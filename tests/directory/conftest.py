"""Personas of the directory tests: an IT administrator and a guest, beside the shared
alice, bob and charlie.  Set up through the real actions."""

from __future__ import annotations

import datetime as dt
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from tests.conftest import PASSWORD, make_department, make_staff
from yakuba.audit.record import Actor
from yakuba.directory.actions.staff import do_grant_role, do_invite_guest
from yakuba.directory.models import Department, Role, User
from yakuba.lib import clock


@pytest.fixture
def joho(ward: dict[str, Department]) -> Department:
    """情報政策課 under 総務部."""
    return make_department("120", "情報政策課", "ka", ward["somu_bu"])


@pytest.fixture
def ida(joho: Department) -> User:
    """Ida is an IT administrator in 情報政策課."""
    user = make_staff("ida", "井田", "一郎", joho, number="30001", kana=("いだ", "いちろう"))
    do_grant_role(user, Role.IT_ADMIN, acting_user=Actor.system("test"))
    user.refresh_from_db()
    return user


@pytest.fixture
def gina(db: None) -> User:
    """Gina is a guest from the bus company, invited for a month."""
    return do_invite_guest(
        name="五味 ジーナ",
        organisation="みどり交通株式会社",
        email="gina@bus.example.jp",
        expires_at=clock.now() + dt.timedelta(days=30),
        username="gina",
        password=PASSWORD,
        acting_user=Actor.system("test"),
    )


def write_csv(tmp_path: Path, text: str, *, encoding: str = "utf-8", name: str = "in.csv") -> Path:
    """``text`` (lines joined with CRLF, like Excel) written in ``encoding``."""
    path = tmp_path / name
    path.write_bytes(text.strip("\n").replace("\n", "\r\n").encode(encoding) + b"\r\n")
    return path


def run_command(command: str, *args: str) -> str:
    """Run a ``yakuba`` command; returns what it printed."""
    out = StringIO()
    call_command(command, *args, stdout=out)
    return out.getvalue()


def import_file(command: str, path: Path, *args: str) -> str:
    """Run a CSV command on ``path``."""
    return run_command(command, str(path), *args)
