"""Demo rooms for the demo ward: 本庁舎 (3 floors, 12 rooms) and 第二庁舎 (2 floors,
5 rooms), and a week of bookings made through the real actions so that the floor board,
the door panel and the utilisation pages have something to show.

``load_demo_rooms()`` needs the demo ward (``yakuba demo``: 総務課 and the named
accounts) and is idempotent: rooms that exist are left as they are, and the bookings of
the current week are made only when the demo rooms have none yet.

The week so far is replayed: the clock is stopped at Monday 08:00 of this week, the
bookings are made, then the clock steps through each past booking's start (a check-in
for most, the automatic release for the others) up to the real time.  The audit log
therefore shows those entries at the (past) moments they stand for; this is demo data.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field

from yakuba.audit.record import Actor
from yakuba.directory.models import Department, User
from yakuba.lib import clock
from yakuba.rooms.actions.booking import BookingError, BookingRequest, check_create_booking
from yakuba.rooms.actions.door import do_check_in, release_due
from yakuba.rooms.actions.rooms import RoomRecord, do_import_rooms, do_set_out_of_service
from yakuba.rooms.models import Booking, Room

SEED = 20250611
ORGANISERS = ("kacho", "shokuin", "kanri", "madoguchi", "admin")
DEPARTMENT_ONLY = "総務課"
OUT_OF_SERVICE = "HQ-402"

# (building code, building name, floor, level, code, name, capacity, equipment letters
#  D display P projector W web kit B whiteboard, wheelchair, approval, buffer)
ROOMS: tuple[tuple[str, str, str, int, str, str, int, str, bool, bool, int], ...] = (
    ("HQ", "本庁舎", "3階", 3, "HQ-301", "第1会議室", 8, "DB", True, False, 0),
    ("HQ", "本庁舎", "3階", 3, "HQ-302", "第2会議室", 8, "DWB", True, False, 0),
    ("HQ", "本庁舎", "3階", 3, "HQ-303", "第3会議室", 12, "PB", True, False, 0),
    ("HQ", "本庁舎", "3階", 3, "HQ-304", "打合せスペースA", 4, "", True, False, 0),
    ("HQ", "本庁舎", "3階", 3, "HQ-305", "総務課会議室", 10, "DB", True, False, 0),
    ("HQ", "本庁舎", "4階", 4, "HQ-401", "第4会議室", 16, "DPWB", True, False, 10),
    ("HQ", "本庁舎", "4階", 4, "HQ-402", "第5会議室", 16, "PB", True, False, 10),
    ("HQ", "本庁舎", "4階", 4, "HQ-403", "Web会議室", 6, "DW", True, False, 0),
    ("HQ", "本庁舎", "4階", 4, "HQ-404", "打合せスペースB", 4, "D", True, False, 0),
    ("HQ", "本庁舎", "5階", 5, "HQ-501", "特別会議室", 40, "DPWB", True, True, 15),
    ("HQ", "本庁舎", "5階", 5, "HQ-502", "第6会議室", 20, "DPB", True, False, 10),
    ("HQ", "本庁舎", "5階", 5, "HQ-503", "応接室", 6, "", True, False, 0),
    ("AN", "第二庁舎", "1階", 1, "AN-101", "区民相談室", 6, "B", True, False, 0),
    ("AN", "第二庁舎", "1階", 1, "AN-102", "防災会議室", 24, "DPWB", True, False, 10),
    ("AN", "第二庁舎", "2階", 2, "AN-201", "研修室", 30, "PB", False, False, 15),
    ("AN", "第二庁舎", "2階", 2, "AN-202", "第7会議室", 10, "DB", False, False, 0),
    ("AN", "第二庁舎", "2階", 2, "AN-203", "第8会議室", 10, "DW", False, False, 0),
)
TITLES = (
    "係内打合せ",
    "予算ヒアリング",
    "課長会",
    "庁内調整会議",
    "業者打合せ",
    "研修の準備",
    "システム更新の説明会",
    "防災訓練の打合せ",
    "窓口改善の検討",
    "定例会議",
)
# Start times (Tokyo) and lengths in minutes the week is drawn from.
SLOTS = ((9, 0), (9, 30), (10, 0), (10, 30), (11, 0), (13, 0), (13, 30), (14, 0), (15, 0), (16, 0))
LENGTHS = (30, 60, 60, 60, 90, 120)


class DemoRoomsError(RuntimeError):
    """The demo ward is missing (run ``yakuba demo`` first)."""


@dataclass
class DemoRoomsResult:
    rooms_created: list[str] = field(default_factory=list)
    bookings_created: int = 0
    checked_in: int = 0
    released: int = 0

    @property
    def has_changes(self) -> bool:
        return bool(self.rooms_created or self.bookings_created)


def load_demo_rooms() -> DemoRoomsResult:
    """Create the demo rooms (when missing) and this week's bookings (when the demo
    rooms have none this week).  Raises ``DemoRoomsError`` without the demo ward."""
    department = Department.objects.filter(name=DEPARTMENT_ONLY).first()
    people = {u.username: u for u in User.objects.filter(username__in=ORGANISERS, is_active=True)}
    if department is None or set(people) != set(ORGANISERS):
        raise DemoRoomsError(
            "デモ区の職員がいません。先に `yakuba demo` でデモ区を作成してください。"
        )
    actor = Actor.system("yakuba demo")
    result = DemoRoomsResult()
    codes = [row[4] for row in ROOMS]
    missing = set(codes) - set(Room.objects.filter(code__in=codes).values_list("code", flat=True))
    if missing:
        records = [_record(row, department) for row in ROOMS if row[4] in missing]
        result.rooms_created = do_import_rooms(records, acting_user=actor).created
        if OUT_OF_SERVICE in missing:
            do_set_out_of_service(
                Room.objects.get(code=OUT_OF_SERVICE),
                out_of_service=True,
                note="空調設備の工事のため（デモ）",
                acting_user=actor,
            )
    _load_week(people, result)
    return result


def _record(
    row: tuple[str, str, str, int, str, str, int, str, bool, bool, int], somu: Department
) -> RoomRecord:
    (
        building,
        building_name,
        floor,
        level,
        code,
        name,
        capacity,
        kit,
        wheelchair,
        approval,
        buffer,
    ) = row
    return RoomRecord(
        building_code=building,
        building_name=building_name,
        floor_name=floor,
        floor_level=level,
        values={
            "code": code,
            "name": name,
            "capacity": capacity,
            "has_display": "D" in kit,
            "has_projector": "P" in kit,
            "has_web_meeting_kit": "W" in kit,
            "has_whiteboard": "B" in kit,
            "wheelchair_accessible": wheelchair,
            "accessibility_note": "" if wheelchair else "エレベーターなし（階段のみ）",
            "requires_approval": approval,
            "buffer_minutes": buffer,
            "opens_at": dt.time(8, 30),
            "closes_at": dt.time(20, 0),
        },
        department_codes=(somu.code,) if name == "総務課会議室" else (),
    )


def _load_week(people: dict[str, User], result: DemoRoomsResult) -> None:
    real_now = clock.now()
    today = clock.local(real_now).date()
    monday = today - dt.timedelta(days=today.weekday())
    week_start = dt.datetime.combine(monday, dt.time(8, 0), tzinfo=clock.TOKYO)
    week_end = week_start + dt.timedelta(days=7)
    rooms = list(
        Room.objects.filter(code__in=[row[4] for row in ROOMS], out_of_service=False).order_by(
            "code"
        )
    )
    if Booking.objects.filter(
        room__in=rooms, starts_at__gte=week_start, starts_at__lt=week_end
    ).exists():
        return
    chooser = random.Random(SEED)  # noqa: S311 (demo data, not security)
    organisers = [people[name] for name in ORGANISERS]
    made: list[Booking] = []
    # The bookings were made on Monday morning, before any of them started.
    with clock.frozen_at(min(week_start, real_now)):
        for offset in range(5):
            day = monday + dt.timedelta(days=offset)
            for room in rooms:
                for hour, minute in chooser.sample(SLOTS, k=chooser.randint(1, 4)):
                    start = dt.datetime.combine(day, dt.time(hour, minute), tzinfo=clock.TOKYO)
                    end = start + dt.timedelta(minutes=chooser.choice(LENGTHS))
                    organiser = chooser.choice(organisers)
                    if room.code == "HQ-305":
                        organiser = people[chooser.choice(("kacho", "shokuin"))]
                    request = BookingRequest(
                        room=room,
                        starts_at=start,
                        ends_at=end,
                        title=chooser.choice(TITLES),
                        organiser=organiser,
                        attendees=[p for p in organisers if p != organiser][
                            : chooser.randint(0, 3)
                        ],
                        is_private=chooser.random() < 0.1,
                        wants_web_meeting=room.has_web_meeting_kit and chooser.random() < 0.5,
                    )
                    try:
                        made.append(check_create_booking(request, acting_user=organiser))
                    except BookingError:
                        continue  # overlaps another draw: the week is full enough
        result.bookings_created = len(made)
        # Replay the week up to now: most people check in, the rest are released.
        for booking in sorted(made, key=lambda b: b.starts_at):
            moment = booking.starts_at + dt.timedelta(minutes=2)
            if moment >= real_now:
                break
            if moment > clock.now():
                clock.advance(moment - clock.now())
            result.released += release_due(clock.now())
            if booking.status == Booking.Status.CONFIRMED and chooser.random() < 0.75:
                try:
                    if do_check_in(booking, acting_user=booking.organiser, method=_method(chooser)):
                        result.checked_in += 1
                except BookingError:
                    continue
        if real_now > clock.now():
            clock.advance(real_now - clock.now())
        result.released += release_due(clock.now())


def _method(chooser: random.Random) -> str:
    return chooser.choice(
        (Booking.CheckInMethod.PANEL, Booking.CheckInMethod.QR, Booking.CheckInMethod.WEB)
    )
