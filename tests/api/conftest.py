"""Callers of the JSON API beside the staff personas: a guest and a bot."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from django.core.cache import cache

from tests.conftest import PASSWORD
from yakuba.directory.models import GuestProfile, User
from yakuba.lib import clock


@pytest.fixture(autouse=True)
def _fresh_rate_counters() -> Iterator[None]:
    # The API throttle counts in the cache, which outlives each test's database.
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def dave(db: None, alice: User) -> User:
    """Dave is a guest from a bus company (災害時協定の相手方): outside the ward."""
    user = User.objects.create_user(
        "dave", PASSWORD, display_name="出口 大輔", kind=User.Kind.GUEST
    )
    GuestProfile.objects.create(
        user=user,
        name="出口 大輔",
        organisation="みなと交通株式会社",
        email="dave@example.invalid",
        expires_at=clock.now() + dt.timedelta(days=30),
        invited_by=alice,
    )
    return user


@pytest.fixture
def roster_bot(db: None) -> User:
    """A bot that keeps a phone directory in sync with the ward's staff list."""
    return User.objects.create_user(
        "roster-bot", None, display_name="内線名簿同期", kind=User.Kind.BOT
    )
