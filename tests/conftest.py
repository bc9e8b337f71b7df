"""Shared fixtures: named personas, the clock, and the external services.

Services (PostgreSQL, Redis) are optional on a user's machine: tests that need them
skip with a message.  With YAKUBA_TEST_SERVICES=required (CI) a missing service fails.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

import pytest
from django.contrib.auth.hashers import Argon2PasswordHasher
from django.db import transaction
from pytest_django.fixtures import Settings as SettingsWrapper

from tests.smtp import Sink, free_port
from yakuba.directory.models import Department, StaffProfile, User
from yakuba.lib import clock

SERVICES_REQUIRED = os.environ.get("YAKUBA_TEST_SERVICES", "optional") == "required"
REDIS_TEST_URL = os.environ.get("YAKUBA_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
PASSWORD = "correct-horse-battery-9"


def service_missing(message: str) -> None:
    """Skip, or fail when the services are required."""
    if SERVICES_REQUIRED:
        pytest.fail(f"{message} (YAKUBA_TEST_SERVICES=required)")
    pytest.skip(message)


@pytest.fixture
def redis_url() -> str:
    import redis

    try:
        redis.Redis.from_url(REDIS_TEST_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        service_missing(f"Redis not reachable at {REDIS_TEST_URL}: {exc}")
    return REDIS_TEST_URL


class CheapArgon2PasswordHasher(Argon2PasswordHasher):
    """Argon2 at its lowest cost, for tests only: the production parameters take a good
    part of a second per password on a shared 2-core machine.  Still Argon2, so the
    tests see the same hash format and verification path as production."""

    time_cost = 1
    memory_cost = 1024
    parallelism = 1


@pytest.fixture
def smtp_sink(settings: SettingsWrapper) -> Iterator[Sink]:
    """A real SMTP server on loopback that the mail settings point at (mail enabled)."""
    from aiosmtpd.controller import Controller

    sink = Sink()
    controller = Controller(sink, hostname="127.0.0.1", port=free_port())
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = controller.port
    settings.EMAIL_USE_TLS = False
    settings.EMAIL_HOST_USER = ""
    settings.MAIL_ENABLED = True
    try:
        yield sink
    finally:
        controller.stop()


@pytest.fixture(autouse=True)
def _cheap_argon2(settings: SettingsWrapper) -> None:
    settings.PASSWORD_HASHERS = ["tests.conftest.CheapArgon2PasswordHasher"]


@pytest.fixture(autouse=True)
def _real_clock() -> Iterator[None]:
    clock.reset()
    yield
    clock.reset()


@pytest.fixture(autouse=True, scope="session")
def _audit_tables_flushable() -> Iterator[None]:
    """Transactional tests empty every table afterwards (``DELETE FROM`` on SQLite), and
    the audit tables refuse DELETE: the flush alone runs as audit maintenance."""
    from django.db.backends.base.operations import BaseDatabaseOperations

    from yakuba.audit.guard import maintenance

    original = BaseDatabaseOperations.execute_sql_flush

    def flush(self: BaseDatabaseOperations, sql_list: Iterable[str]) -> None:
        with maintenance():
            original(self, sql_list)

    BaseDatabaseOperations.execute_sql_flush = flush  # type: ignore[method-assign]  # tests only
    yield
    BaseDatabaseOperations.execute_sql_flush = original  # type: ignore[method-assign]  # restore


def make_department(
    code: str, name: str, level: str = "ka", parent: Department | None = None
) -> Department:
    return Department.objects.create(code=code, name=name, level=level, parent=parent)


def make_staff(
    username: str,
    family: str,
    given: str,
    department: Department,
    *,
    number: str,
    kana: tuple[str, str] = ("やまだ", "たろう"),
    title: str = "",
) -> User:
    with transaction.atomic():
        user = User.objects.create_user(username, PASSWORD, display_name=f"{family} {given}")
        StaffProfile.objects.create(
            user=user,
            employee_number=number,
            family_name=family,
            given_name=given,
            family_kana=kana[0],
            given_kana=kana[1],
            department=department,
            title=title,
        )
    return user


@pytest.fixture
def ward(db: None) -> dict[str, Department]:
    """A small ward: 総務部 > 総務課 > 文書係, and 区民部 > 戸籍住民課."""
    somu_bu = make_department("100", "総務部", "bu")
    somu_ka = make_department("110", "総務課", "ka", somu_bu)
    bunsho = make_department("111", "文書係", "kakari", somu_ka)
    kumin_bu = make_department("200", "区民部", "bu")
    koseki = make_department("210", "戸籍住民課", "ka", kumin_bu)
    return {
        "somu_bu": somu_bu,
        "somu_ka": somu_ka,
        "bunsho": bunsho,
        "kumin_bu": kumin_bu,
        "koseki": koseki,
    }


@pytest.fixture
def alice(ward: dict[str, Department]) -> User:
    """Alice works in 総務課 文書係."""
    return make_staff(
        "alice", "青木", "愛", ward["bunsho"], number="10001", kana=("あおき", "あい")
    )


@pytest.fixture
def bob(ward: dict[str, Department]) -> User:
    """Bob is on Alice's team."""
    return make_staff(
        "bob", "坂東", "歩", ward["bunsho"], number="10002", kana=("ばんどう", "あゆむ")
    )


@pytest.fixture
def charlie(ward: dict[str, Department]) -> User:
    """Charlie works elsewhere (戸籍住民課) and must be refused what is Alice's."""
    return make_staff(
        "charlie", "千葉", "茶太郎", ward["koseki"], number="20001", kana=("ちば", "ちゃたろう")
    )
