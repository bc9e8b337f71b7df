"""Callers of the JSON API beside the staff personas: a guest and a bot."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from django.core.cache import cache

from tests.conftest import PASSWORD
from yakuba.directory.actions.staff import do_invite_guest
from yakuba.directory.models import User
from yakuba.lib import clock


@pytest.fixture(autouse=True)
def _fresh_rate_counters() -> Iterator[None]:
    # The API throttle counts in the cache, which outlives each test's database.
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def dave(db: None, alice: User) -> User:
    """Dave is a guest from a bus company (災害時協定の相手方), invited by Alice."""
    return do_invite_guest(
        name="出口 大輔",
        organisation="みなと交通株式会社",
        email="dave@example.invalid",
        expires_at=clock.now() + dt.timedelta(days=30),
        username="dave",
        password=PASSWORD,
        acting_user=alice,
    )


@pytest.fixture
def roster_bot(db: None) -> User:
    """A bot that keeps a phone directory in sync with the ward's staff list.  (Made
    directly: the directory has no action that creates bot accounts yet.)"""
    return User.objects.create_user(
        "roster-bot", None, display_name="内線名簿同期", kind=User.Kind.BOT
    )
