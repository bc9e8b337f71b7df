"""The rules of ``rooms.access`` that pages, the API, the board and the feeds share:
which rooms a user may book, and who sees a booking's details."""

from __future__ import annotations

import datetime as dt
from typing import Any

from yakuba.audit.record import Actor
from yakuba.directory.actions.staff import do_invite_guest
from yakuba.directory.models import ConcurrentPost, Department, User
from yakuba.lib import clock
from yakuba.rooms.access import (
    bookable_rooms,
    may_book,
    may_see_details,
    shows_details,
    user_department_ids,
)
from yakuba.rooms.models import Booking, Room

from .conftest import at, book, restrict_to


def _guest() -> User:
    return do_invite_guest(
        name="五味 ジーナ",
        organisation="みどり交通株式会社",
        email="gina@bus.example.jp",
        expires_at=clock.now() + dt.timedelta(days=30),
        username="gina",
        password="not-used-here-1234",
        acting_user=Actor.system("test"),
    )


def _bot() -> User:
    return User.objects.create_user("kiosk", None, display_name="受付端末", kind=User.Kind.BOT)


def _limit(room: Room, *departments: Department) -> None:
    restrict_to(room, *departments)


def test_it_reads_the_departments_above_every_post_in_one_query(
    ward: dict[str, Department], alice: User, charlie: User, django_assert_num_queries: Any
) -> None:
    ConcurrentPost.objects.create(staff=charlie.staff, department=ward["somu_ka"])
    with django_assert_num_queries(1):
        alices = user_department_ids(alice)
    assert alices == {ward["bunsho"].pk, ward["somu_ka"].pk, ward["somu_bu"].pk}
    assert user_department_ids(charlie) == {
        ward["koseki"].pk,
        ward["kumin_bu"].pk,
        ward["somu_ka"].pk,  # 兼務
        ward["somu_bu"].pk,
    }


def test_bookable_rooms_agrees_with_may_book_for_everyone(
    frozen_now: dt.datetime,
    rooms: dict[str, Room],
    ward: dict[str, Department],
    alice: User,
    charlie: User,
    dave: User,
) -> None:
    _limit(rooms["r301"], ward["somu_bu"])  # Alice's 係 lies below it
    _limit(rooms["r302"], ward["koseki"])
    closed = Room.objects.create(
        floor=rooms["r301"].floor, code="R399", name="旧会議室", capacity=4, is_active=False
    )
    everyone = [alice, charlie, dave, _guest(), _bot()]
    every_room = [*rooms.values(), closed]
    for user in everyone:
        found = {room.code for room in bookable_rooms(user, Room.objects.all())}
        assert found == {room.code for room in every_room if may_book(user, room)}, user
    codes = {u.username: {r.code for r in bookable_rooms(u, Room.objects.all())} for u in everyone}
    assert codes == {
        "alice": {"R301", "R501"},
        "charlie": {"R302", "R501"},
        "dave": {"R301", "R302", "R501"},
        "gina": set(),
        "kiosk": set(),
    }


def test_bookable_rooms_is_one_filter_whatever_the_number_of_rooms(
    frozen_now: dt.datetime,
    rooms: dict[str, Room],
    ward: dict[str, Department],
    alice: User,
    django_assert_num_queries: Any,
) -> None:
    for n in range(20):
        room = Room.objects.create(
            floor=rooms["r301"].floor, code=f"F{n:02d}", name=f"会議室F{n}", capacity=10
        )
        _limit(room, ward["somu_bu"] if n % 2 else ward["koseki"])
    # The two grant checks of is_facility_manager, the user's 所属, the rooms.
    with django_assert_num_queries(4):
        found = list(bookable_rooms(alice, Room.objects.all()))
    assert len(found) == 3 + 10


def test_shows_details_is_the_one_visibility_rule(
    frozen_now: dt.datetime,
    rooms: dict[str, Room],
    alice: User,
    bob: User,
    charlie: User,
    dave: User,
    django_assert_num_queries: Any,
) -> None:
    guest, bot = _guest(), _bot()
    private = book(
        rooms["r301"], alice, at(12, "10:00"), at(12, "11:00"), is_private=True,
        attendees=[bob, guest],
    )  # fmt: skip
    public = book(rooms["r302"], alice, at(12, "10:00"), at(12, "11:00"))
    everyone: list[User | None] = [None, alice, bob, charlie, dave, guest, bot]
    names = ["public", "alice", "bob", "charlie", "dave", "gina", "kiosk"]

    def seen(booking: Booking) -> dict[str, bool]:
        ids = {person.pk for person in booking.attendees.all()}
        return {
            name: shows_details(user, booking, attendee_ids=ids)
            for name, user in zip(names, everyone, strict=True)
        }

    assert seen(private) == {
        "public": False,
        "alice": True,
        "bob": True,
        "charlie": False,
        "dave": True,  # facility manager
        "gina": True,  # an attendee
        "kiosk": False,
    }
    assert seen(public) == {
        "public": True,
        "alice": True,
        "bob": True,
        "charlie": True,
        "dave": True,
        "gina": False,  # guests see no rooms but their own bookings
        "kiosk": True,  # a bot with the rooms scope books for staff
    }
    # From prefetched attendee ids and a known manager flag it asks nothing.
    with django_assert_num_queries(0):
        assert not shows_details(charlie, private, attendee_ids=set(), manager=False)
        assert shows_details(bob, private, attendee_ids={bob.pk}, manager=False)
    # One booking at a time (access_booking) gives the same answers, except that a bot
    # opens only what it booked (access_booking leads to change and cancel).
    for name, user in zip(names[1:], everyone[1:], strict=True):
        assert user is not None
        assert may_see_details(user, private) == seen(private)[name], name
        expected = seen(public)[name] and name != "kiosk"
        assert may_see_details(user, public) == expected, name
