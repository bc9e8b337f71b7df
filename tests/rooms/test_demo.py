"""The demo rooms: made after the demo ward, with a believable week, and idempotent."""

from __future__ import annotations

import datetime as dt

import pytest

from yakuba.audit.models import AuditEntry
from yakuba.audit.sealer import seal_pending
from yakuba.audit.verify import verify_database
from yakuba.directory.demo_data import do_load_demo
from yakuba.directory.models import User
from yakuba.lib import clock
from yakuba.rooms.access import may_book
from yakuba.rooms.demo import DemoRoomsError, load_demo_rooms
from yakuba.rooms.models import Booking, Building, Room

# A Thursday afternoon: the week so far has past bookings, the rest is ahead.
THURSDAY = dt.datetime(2025, 6, 12, 14, 5, tzinfo=clock.TOKYO)


def test_it_refuses_clearly_without_the_demo_ward(db: None) -> None:
    with pytest.raises(DemoRoomsError) as refused:
        load_demo_rooms()
    assert "yakuba demo" in str(refused.value)
    assert not Room.objects.exists()


def test_it_loads_the_rooms_and_a_week_of_bookings_once(db: None) -> None:
    with clock.frozen_at(THURSDAY):
        do_load_demo(staff_count=30)
        first = load_demo_rooms()
        bookings = Booking.objects.count()
        second = load_demo_rooms()

    assert dict(Building.objects.values_list("code", "name")) == {"HQ": "本庁舎", "AN": "第二庁舎"}
    assert Room.objects.filter(floor__building__code="HQ").count() == 12
    assert Room.objects.filter(floor__building__code="AN").count() == 5
    assert Room.objects.get(code="HQ-501").requires_approval
    assert Room.objects.get(code="HQ-402").out_of_service
    somu_room = Room.objects.get(code="HQ-305")
    assert not somu_room.open_to_all
    assert may_book(User.objects.get(username="shokuin"), somu_room)
    assert not may_book(User.objects.get(username="madoguchi"), somu_room)

    assert first.bookings_created == bookings > 40
    assert first.checked_in > 0
    assert first.released > 0
    assert Booking.objects.filter(status="released").count() == first.released
    assert Booking.objects.filter(checked_in_at__isnull=False).count() == first.checked_in
    assert Booking.objects.filter(status="pending", room__code="HQ-501").exists()
    assert Booking.objects.filter(starts_at__gt=THURSDAY, status="confirmed").exists()
    assert not Booking.objects.filter(room__code="HQ-402").exists()

    assert not second.has_changes
    assert Booking.objects.count() == bookings
    assert AuditEntry.objects.filter(action="rooms.imported").count() == 1


def test_it_keeps_the_audit_chain_verifiable_after_the_replay(db: None) -> None:
    # The replay writes entries dated in the past after ones dated now: the chain
    # follows the seal order, so the sealer and ``yakuba audit verify`` must not mind.
    with clock.frozen_at(THURSDAY):
        do_load_demo(staff_count=30)
        load_demo_rooms()
    times = list(AuditEntry.objects.order_by("pk").values_list("occurred_at", flat=True))
    assert times != sorted(times)  # the replay really wrote out of order
    assert seal_pending() == len(times)
    report = verify_database()
    assert report.ok, report.problem
    assert (report.checked, report.pending) == (len(times), 0)
