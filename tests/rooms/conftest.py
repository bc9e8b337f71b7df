"""Rooms fixtures: a building with two floors and three rooms, and a clock frozen on a
working day (Wednesday 2025-06-11, 09:00 in Tokyo) so that times in tests read plainly.

``at(day, "HH:MM")`` makes an aware Tokyo datetime; ``book(...)`` places a booking
through the real action.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest

from yakuba.directory.models import Department, Role, RoleGrant, User
from yakuba.lib import clock
from yakuba.rooms.actions.booking import BookingRequest, check_create_booking
from yakuba.rooms.models import Booking, Building, Floor, Room

from ..conftest import make_staff

NOW = dt.datetime(2025, 6, 11, 9, 0, tzinfo=clock.TOKYO)


def at(day: dt.date | int, hhmm: str) -> dt.datetime:
    """A Tokyo time on ``day`` (a date, or a day of June 2025)."""
    date = dt.date(2025, 6, day) if isinstance(day, int) else day
    hour, minute = (int(part) for part in hhmm.split(":"))
    return dt.datetime.combine(date, dt.time(hour, minute), tzinfo=clock.TOKYO)


@pytest.fixture
def frozen_now() -> Iterator[dt.datetime]:
    with clock.frozen_at(NOW):
        yield NOW


@pytest.fixture
def building(db: None) -> Building:
    return Building.objects.create(code="HQ", name="本庁舎", sort_order=1)


@pytest.fixture
def floors(building: Building) -> dict[str, Floor]:
    return {
        "3F": Floor.objects.create(building=building, name="3階", level=3),
        "5F": Floor.objects.create(building=building, name="5階", level=5),
    }


@pytest.fixture
def rooms(floors: dict[str, Floor]) -> dict[str, Room]:
    """会議室301 (8 people, display), 会議室302 (20, projector, web kit, 10-minute
    buffer), 特別会議室 (40, approval required)."""
    return {
        "r301": Room.objects.create(
            floor=floors["3F"], code="R301", name="会議室301", capacity=8, has_display=True
        ),
        "r302": Room.objects.create(
            floor=floors["3F"],
            code="R302",
            name="会議室302",
            capacity=20,
            has_projector=True,
            has_web_meeting_kit=True,
            buffer_minutes=10,
        ),
        "special": Room.objects.create(
            floor=floors["5F"], code="R501", name="特別会議室", capacity=40, requires_approval=True
        ),
    }


@pytest.fixture
def dave(ward: dict[str, Department]) -> User:
    """Dave is the facility manager (施設管理者)."""
    user = make_staff("dave", "土井", "大", ward["somu_ka"], number="10009", kana=("どい", "だい"))
    RoleGrant.objects.create(user=user, role=Role.FACILITY_MANAGER)
    return user


def book(room: Room, user: User, start: dt.datetime, end: dt.datetime, **fields: Any) -> Booking:
    request = BookingRequest(
        room=room,
        starts_at=start,
        ends_at=end,
        title=fields.pop("title", "打合せ"),
        organiser=fields.pop("organiser", user),
        **fields,
    )
    return check_create_booking(request, acting_user=user)


def restrict_to(room: Room, *departments: Department) -> None:
    """Make ``room`` bookable only by the given 所属 (and those under them)."""
    room.open_to_all = False
    room.save(update_fields=["open_to_all"])
    room.allowed_departments.set(departments)
