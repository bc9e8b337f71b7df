"""Never a double booking: real concurrency on a real database, no mocks.

Threads (each with its own database connection) and, on PostgreSQL, separate processes
send overlapping bookings for the same rooms at the same instant.  Afterwards every
request has ended in a booking or a ``BookingConflict``, no two live bookings of a room
overlap (checked with SQL over ``[block_start, block_end)``), and the bookings made are
what a serial schedule allows: a set without overlaps in which every refused request
overlaps a booking that was made (so those bookings first, the refusals after, is a
serial run giving the same answers).

The times are real (a day a few days ahead), not a frozen clock: the other processes
read the real clock.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import random
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from django.db import IntegrityError, connection, transaction

from tests.realtime.conftest import process_env
from yakuba.directory.models import User
from yakuba.lib import clock
from yakuba.rooms.actions.booking import (
    BookingConflict,
    BookingRequest,
    check_change_booking,
    check_create_booking,
)
from yakuba.rooms.models import Booking, Floor, Room

from .conftest import book

ROOT = Path(__file__).resolve().parents[2]
THREADS = 12
PROCESSES = 4

OVERLAPS_SQL = """
SELECT count(*) FROM rooms_booking a JOIN rooms_booking b
  ON a.room_id = b.room_id AND a.id < b.id
 AND a.block_start < b.block_end AND b.block_start < a.block_end
WHERE a.status IN ('pending', 'confirmed') AND b.status IN ('pending', 'confirmed')
"""


def overlapping_live_rows() -> int:
    with connection.cursor() as cursor:
        cursor.execute(OVERLAPS_SQL)
        (count,) = cursor.fetchone()
    return int(count)


def day_ahead(days: int = 3) -> dt.date:
    return clock.local(clock.now()).date() + dt.timedelta(days=days)


def local(day: dt.date, minutes: int) -> dt.datetime:
    """``minutes`` after midnight of ``day``, Tokyo time."""
    return dt.datetime.combine(day, dt.time(0), tzinfo=clock.TOKYO) + dt.timedelta(minutes=minutes)


@dataclass(frozen=True)
class Slot:
    room_id: int
    starts_at: dt.datetime
    ends_at: dt.datetime

    def overlaps(self, booking: Booking) -> bool:
        return (
            booking.room_id == self.room_id
            and booking.block_start < self.ends_at
            and self.starts_at < booking.block_end
        )


@dataclass
class Outcome:
    booked: list[int] = field(default_factory=list)
    conflicts: list[tuple[Slot, BookingConflict]] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)


def run_threads(count: int, work: Callable[[int], None]) -> None:
    """``work(n)`` in ``count`` threads that start together; each thread's database
    connection is its own and is closed when it ends."""
    barrier = threading.Barrier(count)

    def body(n: int) -> None:
        try:
            barrier.wait(timeout=30)
            work(n)
        finally:
            connection.close()

    threads = [threading.Thread(target=body, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a booking thread hangs"


def send_in_threads(plans: list[list[Slot]], users: list[User]) -> Outcome:
    outcome = Outcome()
    lock = threading.Lock()

    def work(n: int) -> None:
        user = User.objects.get(pk=users[n % len(users)].pk)
        rooms = {room.pk: room for room in Room.objects.all()}
        for slot in plans[n]:
            request = BookingRequest(
                room=rooms[slot.room_id],
                starts_at=slot.starts_at,
                ends_at=slot.ends_at,
                title=f"打合せ{n}",
                organiser=user,
            )
            try:
                made = check_create_booking(request, acting_user=user)
            except BookingConflict as conflict:
                with lock:
                    outcome.conflicts.append((slot, conflict))
            except BaseException as exc:  # every other ending is a failure of the test
                with lock:
                    outcome.errors.append(exc)
            else:
                with lock:
                    outcome.booked.append(made.pk)

    run_threads(len(plans), work)
    return outcome


def assert_serial(outcome: Outcome, requested: int) -> list[Booking]:
    """Every request answered; no overlap; the bookings made are a serial schedule's."""
    assert outcome.errors == []
    assert len(outcome.booked) + len(outcome.conflicts) == requested
    assert overlapping_live_rows() == 0
    live = list(Booking.objects.filter(status__in=Booking.LIVE))
    assert sorted(b.pk for b in live) == sorted(outcome.booked)
    held = {(b.starts_at, b.ends_at) for b in live}
    for slot, conflict in outcome.conflicts:
        # Refused only for a booking that was made, and the answer names its time.
        assert any(slot.overlaps(b) for b in live), slot
        assert conflict.conflicts
        assert {(c.starts_at, c.ends_at) for c in conflict.conflicts} <= held
        assert "打合せ" not in conflict.message
    return live


@pytest.fixture
def many_rooms(floors: dict[str, Floor]) -> list[Room]:
    return [
        Room.objects.create(floor=floors["3F"], code=f"RACE{n}", name=f"会議室R{n}", capacity=8)
        for n in range(3)
    ]


@pytest.fixture
def staff(alice: User, bob: User, charlie: User, dave: User) -> list[User]:
    return [alice, bob, charlie, dave]


@pytest.mark.django_db(transaction=True)
def test_it_never_double_books_with_twelve_threads_at_once(
    many_rooms: list[Room], staff: list[User]
) -> None:
    day = day_ahead()
    grid_rooms, free_room = many_rooms[:2], many_rooms[2]
    # Rooms 1 and 2: every thread asks for the same eight hour slots (a serial run books
    # each once).  Room 3: random overlapping slots (15-minute steps, 30 to 90 minutes).
    grid = [
        Slot(room.pk, local(day, 9 * 60 + 60 * h), local(day, 10 * 60 + 60 * h))
        for room in grid_rooms
        for h in range(4)
    ]
    rng = random.Random(3)
    plans = []
    for _ in range(THREADS):
        start = [9 * 60 + 15 * rng.randrange(0, 24) for _ in range(3)]
        own = [
            Slot(free_room.pk, local(day, s), local(day, s + rng.choice((30, 60, 90))))
            for s in start
        ]
        plans.append(rng.sample(grid + own, len(grid) + len(own)))
    outcome = send_in_threads(plans, staff)
    live = assert_serial(outcome, sum(len(plan) for plan in plans))
    assert len([b for b in live if b.room_id != free_room.pk]) == len(grid)
    assert any(b.room_id == free_room.pk for b in live)
    # One audit entry per booking made, none for a refusal.
    from yakuba.audit.models import AuditEntry

    created = AuditEntry.objects.filter(action="rooms.booking_created")
    assert sorted(int(e.target_id) for e in created) == sorted(outcome.booked)


# --- processes (PostgreSQL) ---------------------------------------------------------------

CHILD = r"""
import datetime as dt, json, os, sys
import django
django.setup()
from django.db import connection
from yakuba.directory.models import User
from yakuba.rooms.actions.booking import BookingConflict, BookingRequest, check_create_booking
from yakuba.rooms.models import Room

plan = json.loads(sys.argv[1])
user = User.objects.get(pk=plan["user"])
rooms = {room.pk: room for room in Room.objects.all()}
connection.close()
print("ready", flush=True)
sys.stdin.readline()  # "go": every process starts at once
answers = []
for room_id, start, end in plan["slots"]:
    request = BookingRequest(
        room=rooms[room_id],
        starts_at=dt.datetime.fromisoformat(start),
        ends_at=dt.datetime.fromisoformat(end),
        title="打合せ",
        organiser=user,
    )
    try:
        answers.append(["booked", check_create_booking(request, acting_user=user).pk])
    except BookingConflict as conflict:
        answers.append(["conflict", conflict.details["conflicts"]])
    except Exception as exc:
        answers.append(["error", repr(exc)])
print(json.dumps(answers), flush=True)
"""


def postgresql_only() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only (scripts/test-postgresql)")


@pytest.mark.django_db(transaction=True)
def test_it_never_double_books_with_processes_at_once_on_postgresql(
    many_rooms: list[Room], staff: list[User]
) -> None:
    postgresql_only()
    day = day_ahead(4)
    rng = random.Random(5)
    slots = [
        Slot(room.pk, local(day, 9 * 60 + 30 * h), local(day, 10 * 60 + 30 * h))
        for room in many_rooms
        for h in range(8)
    ]  # one-hour slots every half hour: each overlaps its neighbours
    plans = [rng.sample(slots, len(slots)) for _ in range(PROCESSES)]
    env = process_env()
    children = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                CHILD,
                json.dumps(
                    {
                        "user": staff[n % len(staff)].pk,
                        "slots": [
                            [s.room_id, s.starts_at.isoformat(), s.ends_at.isoformat()]
                            for s in plan
                        ],
                    }
                ),
            ],
            env=env,
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for n, plan in enumerate(plans)
    ]
    try:
        for child in children:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "ready"
        for child in children:
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        answers = []
        for child in children:
            out, _ = child.communicate(timeout=90)
            assert child.returncode == 0
            answers.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
    outcome = Outcome()
    for plan, answered in zip(plans, answers, strict=True):
        assert len(answered) == len(plan)
        for slot, (kind, value) in zip(plan, answered, strict=True):
            if kind == "booked":
                outcome.booked.append(value)
            elif kind == "conflict":
                conflict = BookingConflict([])
                conflict.conflicts = [_conflict(c["starts_at"], c["ends_at"]) for c in value]
                outcome.conflicts.append((slot, conflict))
            else:
                outcome.errors.append(RuntimeError(value))
    assert_serial(outcome, len(slots) * PROCESSES)
    # A maximal set of these slots holds at least three per room (9:30, 11:00, 12:30).
    assert len(outcome.booked) >= len(many_rooms) * 3


def _conflict(start: str, end: str) -> Any:
    from yakuba.rooms.actions.booking import Conflict

    return Conflict(dt.datetime.fromisoformat(start), dt.datetime.fromisoformat(end))


# --- the constraint is the backstop (PostgreSQL) -----------------------------------------------


def test_the_exclusion_constraint_refuses_an_overlap_that_skips_the_actions(
    many_rooms: list[Room], alice: User, bob: User
) -> None:
    postgresql_only()
    day = day_ahead()
    room = many_rooms[0]
    made = book(room, alice, local(day, 600), local(day, 660))

    def insert(status: str, start: int, end: int) -> Booking:
        return Booking.objects.create(
            room=room,
            organiser=bob,
            booked_by=bob,
            title="直接",
            starts_at=local(day, start),
            ends_at=local(day, end),
            block_start=local(day, start),
            block_end=local(day, end),
            status=status,
        )

    with pytest.raises(IntegrityError) as refused, transaction.atomic():
        insert(Booking.Status.CONFIRMED, 630, 690)
    assert "booking_no_overlap" in str(refused.value)
    with pytest.raises(IntegrityError), transaction.atomic():
        insert(Booking.Status.PENDING, 599, 601)
    # Touching ends do not overlap ([) ranges); dead bookings may overlap.
    assert insert(Booking.Status.CONFIRMED, 660, 720).pk
    for status in (Booking.Status.CANCELLED, Booking.Status.RELEASED, Booking.Status.REJECTED):
        assert insert(status, 600, 660).pk
    assert overlapping_live_rows() == 0
    # Cancelling the first frees its time for a new live booking.
    assert made.pk
    Booking.objects.filter(pk=made.pk).update(status=Booking.Status.CANCELLED)
    assert insert(Booking.Status.CONFIRMED, 600, 660).pk
    assert Booking.objects.filter(room=room, status__in=Booking.LIVE).count() == 2


# --- a change against a new booking ------------------------------------------------------------


def _one_side(
    n: int, first: Callable[[int], None], second: Callable[[int], None], side: int
) -> None:
    (first if side == 0 else second)(n)


@pytest.mark.django_db(transaction=True)
def test_a_move_and_a_new_booking_for_the_same_slot_one_wins(
    many_rooms: list[Room], alice: User, bob: User
) -> None:
    day = day_ahead(5)
    target_room = many_rooms[1]
    rounds = 6
    moves = []
    for n in range(rounds):
        # Half the moves change only the time, half change the room too.
        from_room = many_rooms[0] if n % 2 else target_room
        moves.append(
            book(from_room, alice, local(day, 9 * 60 + 60 * n), local(day, 9 * 60 + 30 + 60 * n))
        )
    targets = [
        Slot(target_room.pk, local(day, 14 * 60 + 60 * n), local(day, 15 * 60 + 60 * n))
        for n in range(rounds)
    ]
    results: dict[str, list[Any]] = {"move": [], "book": []}
    lock = threading.Lock()

    def answer_of(act: Callable[[], Booking]) -> tuple[str, Any]:
        try:
            return ("won", act().pk)
        except BookingConflict as conflict:
            return ("conflict", conflict)
        except BaseException as exc:  # every other ending is a failure of the test
            return ("error", exc)

    def move(n: int) -> None:
        slot = targets[n]
        room = Room.objects.get(pk=slot.room_id)
        booking = Booking.objects.select_related("room").get(pk=moves[n].pk)
        answer = answer_of(
            lambda: check_change_booking(
                booking,
                acting_user=alice,
                room=room,
                starts_at=slot.starts_at,
                ends_at=slot.ends_at,
            )
        )
        with lock:
            results["move"].append(answer)

    def book_new(n: int) -> None:
        slot = targets[n]
        request = BookingRequest(
            room=Room.objects.get(pk=slot.room_id),
            starts_at=slot.starts_at,
            ends_at=slot.ends_at,
            title="新規",
            organiser=bob,
        )
        answer = answer_of(lambda: check_create_booking(request, acting_user=bob))
        with lock:
            results["book"].append(answer)

    for n in range(rounds):
        run_threads(2, functools.partial(_one_side, n, move, book_new))
    assert [a for a in results["move"] + results["book"] if a[0] == "error"] == []
    for n in range(rounds):
        outcomes = {results["move"][n][0], results["book"][n][0]}
        assert outcomes == {"won", "conflict"}, n
        holders = Booking.objects.filter(
            room=target_room, status__in=Booking.LIVE, starts_at=targets[n].starts_at
        )
        assert holders.count() == 1
        moved = Booking.objects.get(pk=moves[n].pk)
        if results["move"][n][0] == "won":
            assert holders.get().pk == moves[n].pk
            assert moved.starts_at == targets[n].starts_at
        else:
            assert holders.get().organiser_id == bob.pk
            # The loser of the move keeps its old time.
            assert moved.starts_at == moves[n].starts_at
    assert overlapping_live_rows() == 0
