"""Writes of the rooms themselves (facility managers): create, change, take out of
service, and the CSV import.  Each action audits in its transaction; a change that
affects what the floor boards show (out of service, name, floor) refreshes them after
commit."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.core.files import File
from django.db import transaction

from yakuba.audit.models import AuditAction
from yakuba.audit.record import record
from yakuba.directory.models import Department
from yakuba.lib import clock
from yakuba.rooms import events
from yakuba.rooms.actions.booking import ActingUser, release_due_at
from yakuba.rooms.models import Booking, Building, Floor, Room

# The Room fields a facility manager edits (the form, the CSV and the audit use these).
EDITABLE_FIELDS = (
    "floor",
    "code",
    "name",
    "capacity",
    "has_display",
    "has_projector",
    "has_web_meeting_kit",
    "has_whiteboard",
    "wheelchair_accessible",
    "accessibility_note",
    "requires_approval",
    "opens_at",
    "closes_at",
    "buffer_minutes",
    "auto_release",
    "out_of_service",
    "out_of_service_note",
    "is_active",
)
# Changes of these make the floor boards refetch the room.
BOARD_FIELDS = frozenset({"floor", "name", "out_of_service", "is_active", "capacity"})


def _json(value: Any) -> Any:
    if isinstance(value, Floor | Department):
        return {"id": value.pk, "label": str(value)[:100]}
    if isinstance(value, dt.time | dt.date):
        return value.isoformat()
    if isinstance(value, File):
        return value.name or ""
    return value


def _apply(room: Room, values: Mapping[str, Any]) -> dict[str, list[Any]]:
    """Set ``values`` on ``room``; {field: [before, after]} for those that differ."""
    changed: dict[str, list[Any]] = {}
    for name, value in values.items():
        if name == "photo":
            continue
        if name not in EDITABLE_FIELDS:
            raise ValueError(f"not an editable room field: {name}")
        before = getattr(room, name)
        if before != value:
            changed[name] = [_json(before), _json(value)]
            setattr(room, name, value)
    return changed


def _set_photo(room: Room, photo: Any, changed: dict[str, list[Any]]) -> None:
    """``photo``: an uploaded file, False to remove the photo, None to keep it."""
    if photo is None:
        return
    before = room.photo.name or ""
    storage = room.photo.storage
    if photo is False:
        if before:
            room.photo = ""  # FieldFile accepts a name
            changed["photo"] = [before, ""]
    else:
        room.photo.save(getattr(photo, "name", "photo") or "photo", photo, save=False)
        changed["photo"] = [before, room.photo.name]
    if before and before != room.photo.name:
        # The old file goes only once the change is committed, so a rollback keeps it.
        transaction.on_commit(lambda: storage.delete(before))


def _set_departments(
    room: Room, departments: Sequence[Department] | None, changed: dict[str, list[Any]]
) -> None:
    """``None`` keeps the list; an empty list opens the room to all."""
    if departments is None:
        return
    before = sorted(room.allowed_departments.values_list("code", flat=True))
    after = sorted(d.code for d in departments)
    open_to_all = not departments
    if room.open_to_all != open_to_all:
        changed["open_to_all"] = [room.open_to_all, open_to_all]
        room.open_to_all = open_to_all
        room.save(update_fields=["open_to_all"])
    if before != after:
        room.allowed_departments.set(list(departments))
        changed["allowed_departments"] = [before, after]


def do_create_room(
    values: Mapping[str, Any],
    *,
    allowed_departments: Sequence[Department] = (),
    photo: Any = None,
    acting_user: ActingUser,
) -> Room:
    """Create a room (audited ``ROOM_CREATED``).  ``values`` holds ``EDITABLE_FIELDS``
    (at least floor, code, name, capacity); no 所属 listed means open to all."""
    with transaction.atomic():
        room = Room(**{name: value for name, value in values.items() if name != "photo"})
        room.open_to_all = not allowed_departments
        room.full_clean(exclude=["checkin_secret", "feed_secret", "photo"])
        changed: dict[str, list[Any]] = {}
        _set_photo(room, photo, changed)
        room.save()
        if allowed_departments:
            room.allowed_departments.set(list(allowed_departments))
        record(
            AuditAction.ROOM_CREATED,
            actor=acting_user,
            target=room,
            details={
                "code": room.code,
                "floor": str(room.floor),
                "capacity": room.capacity,
                "allowed_departments": sorted(d.code for d in allowed_departments),
                "photo": room.photo.name or "",
            },
        )
        events.notify_occupancy_changed(room)
    return room


def do_change_room(
    room: Room,
    values: Mapping[str, Any],
    *,
    allowed_departments: Sequence[Department] | None = None,
    photo: Any = None,
    acting_user: ActingUser,
) -> dict[str, list[Any]]:
    """Change a room; returns {field: [before, after]} (empty: nothing changed, nothing
    audited).  Audited ``ROOM_CHANGED`` with those fields.  Taking a room out of service
    does not touch its bookings: the facility manager decides about them; new bookings
    are refused by ``check_booking_rules``."""
    with transaction.atomic():
        old_floor = room.floor
        changed = _apply(room, values)
        _set_photo(room, photo, changed)
        if changed:
            room.save(
                update_fields=[
                    name for name in changed if name in EDITABLE_FIELDS or name == "photo"
                ]
            )
        _set_departments(room, allowed_departments, changed)
        if not changed:
            return changed
        record(
            AuditAction.ROOM_CHANGED,
            actor=acting_user,
            target=room,
            details={"code": room.code, "changed": changed},
        )
        if "auto_release" in changed:
            _redo_release_deadlines(room)
        if BOARD_FIELDS & set(changed):
            events.notify_occupancy_changed(room)
            if "floor" in changed:
                events.notify_occupancy_changed(Room(pk=room.pk, floor=old_floor))
    return changed


def _redo_release_deadlines(room: Room) -> None:
    """The room opted out of (or back into) the release of no-shows: its coming bookings
    nobody checked in to get their deadline cleared (or set as if booked now), so pages,
    the API and the utilisation figures show the rule that applies."""
    now = clock.now()
    coming = Booking.objects.filter(
        room=room, status__in=Booking.LIVE, checked_in_at__isnull=True, starts_at__gt=now
    )
    if not room.auto_release:
        coming.update(release_due_at=None)
        return
    for booking in coming.only("pk", "starts_at", "ends_at"):
        Booking.objects.filter(pk=booking.pk).update(
            release_due_at=release_due_at(room, booking.starts_at, booking.ends_at, now)
        )


def do_set_out_of_service(
    room: Room, *, out_of_service: bool, note: str = "", acting_user: ActingUser
) -> bool:
    """Toggle 利用停止 (audited as a ``ROOM_CHANGED``); False when nothing changed."""
    changed = do_change_room(
        room,
        {
            "out_of_service": out_of_service,
            "out_of_service_note": note[:200] if out_of_service else "",
        },
        acting_user=acting_user,
    )
    return "out_of_service" in changed


# --- the CSV import ------------------------------------------------------------------


@dataclass(frozen=True)
class RoomRecord:
    """One valid row of a room CSV (see ``yakuba.rooms.csv_io``)."""

    building_code: str
    building_name: str
    floor_name: str
    floor_level: int
    values: dict[str, Any]  # EDITABLE_FIELDS except floor
    department_codes: tuple[str, ...] = ()


@dataclass
class ImportResult:
    created: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


def do_import_rooms(records: Iterable[RoomRecord], *, acting_user: ActingUser) -> ImportResult:
    """Create or update (by 会議室コード) every room of a checked file, making buildings
    and floors as needed, in one transaction; audited once (``ROOMS_IMPORTED``, counts),
    with no entry per room."""
    records = list(records)
    result = ImportResult()
    codes = {code for r in records for code in r.department_codes}
    departments = {d.code: d for d in Department.objects.filter(code__in=codes)}
    with transaction.atomic():
        buildings = {b.code: b for b in Building.objects.all()}
        floors = {(f.building_id, f.name): f for f in Floor.objects.all()}
        existing = {
            r.code: r
            for r in Room.objects.filter(code__in=[r.values["code"] for r in records])
            .select_related("floor")
            .prefetch_related("allowed_departments")
        }
        touched: list[Room] = []
        for row in records:
            building = buildings.get(row.building_code)
            if building is None:
                building = Building.objects.create(code=row.building_code, name=row.building_name)
                buildings[building.code] = building
            elif row.building_name and building.name != row.building_name:
                building.name = row.building_name
                building.save(update_fields=["name"])
            floor = floors.get((building.pk, row.floor_name))
            if floor is None:
                floor = Floor.objects.create(
                    building=building, name=row.floor_name, level=row.floor_level
                )
                floors[(building.pk, floor.name)] = floor
            elif floor.level != row.floor_level:
                floor.level = row.floor_level
                floor.save(update_fields=["level"])
            wanted = [departments[code] for code in row.department_codes]
            values = {**row.values, "floor": floor}
            room = existing.get(row.values["code"])
            if room is None:
                room = Room(**values, open_to_all=not wanted)
                room.save()
                if wanted:
                    room.allowed_departments.set(wanted)
                result.created.append(room.code)
                touched.append(room)
                continue
            changed = _apply(room, values)
            if changed:
                room.save(update_fields=list(changed))
            if "auto_release" in changed:
                _redo_release_deadlines(room)
            _set_departments(room, wanted, changed)
            (result.changed if changed else result.unchanged).append(room.code)
            if changed:
                touched.append(room)
        record(
            AuditAction.ROOMS_IMPORTED,
            actor=acting_user,
            details={
                "created": len(result.created),
                "changed": len(result.changed),
                "unchanged": len(result.unchanged),
                "codes": (result.created + result.changed)[:200],
            },
        )
        for floor_id in {room.floor_id for room in touched}:
            events.notify_occupancy_changed(next(r for r in touched if r.floor_id == floor_id))
    return result
