"""Room management: CSV import and export, the room form and its photo, out of service,
who may do it, and the admin pages."""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from PIL import Image

from tests.conftest import make_staff
from yakuba.audit.models import AuditEntry
from yakuba.audit.record import Actor
from yakuba.directory.actions.staff import do_grant_role, do_invite_guest
from yakuba.directory.models import Department, Role, User
from yakuba.lib import clock
from yakuba.realtime import topics
from yakuba.rooms.csv_io import COLUMNS, CsvRejected, check_import_rooms, export_rooms
from yakuba.rooms.models import Building, Floor, Room

HEADER = ",".join(COLUMNS)
GOOD = (
    f"{HEADER}\n"
    "HQ,本庁舎,3階,3,R301,第1会議室,8,1,0,○,あり,1,,,0,8:30,20:00,0,1\n"
    "AN,第二庁舎,地下1階,-1,B101,防災会議室,24,true,false,×,なし,0,階段のみ,110;210,要,09:00,18:00,10,0\n"
)


@pytest.fixture(autouse=True)
def _media(settings: Any, tmp_path: Path) -> None:
    settings.MEDIA_ROOT = tmp_path / "media"


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_it_imports_rooms_from_utf8_with_a_bom(ward: dict[str, Department], dave: User) -> None:
    result = check_import_rooms(("\ufeff" + GOOD).encode("utf-8"), acting_user=dave)
    assert result.created == ["R301", "B101"]
    r301, b101 = Room.objects.get(code="R301"), Room.objects.get(code="B101")
    assert (r301.floor.building.name, r301.floor.level, r301.capacity) == ("本庁舎", 3, 8)
    assert (r301.has_display, r301.has_projector, r301.has_web_meeting_kit) == (True, False, True)
    assert r301.open_to_all
    assert r301.auto_release
    assert b101.floor.level == -1
    assert not b101.open_to_all
    assert sorted(b101.allowed_departments.values_list("code", flat=True)) == ["110", "210"]
    assert b101.requires_approval
    assert not b101.auto_release
    assert b101.buffer_minutes == 10
    assert f"{b101.opens_at:%H:%M}" == "09:00"
    [entry] = AuditEntry.objects.filter(action="rooms.imported")
    assert entry.details["created"] == 2
    assert entry.actor_id == dave.pk


def test_it_imports_shift_jis_and_updates_existing_rooms(
    ward: dict[str, Department], dave: User
) -> None:
    check_import_rooms(GOOD.encode("utf-8"), acting_user=dave)
    changed = GOOD.replace("第1会議室,8,", "第1会議室（改装後）,10,")
    result = check_import_rooms(changed.encode("cp932"), acting_user=dave)
    assert (result.created, result.changed, result.unchanged) == ([], ["R301"], ["B101"])
    room = Room.objects.get(code="R301")
    assert (room.name, room.capacity) == ("第1会議室（改装後）", 10)
    assert Building.objects.count() == 2
    assert Floor.objects.count() == 2
    assert AuditEntry.objects.filter(action="rooms.imported").count() == 2


def test_it_imports_nothing_when_any_row_is_bad_and_names_every_line(
    ward: dict[str, Department], dave: User
) -> None:
    bad = (
        f"{HEADER}\n"
        "HQ,本庁舎,3階,3,R301,第1会議室,8,1,0,1,1,1,,,0,8:30,20:00,0,1\n"
        "HQ,本庁舎,3階,3,R302,第2会議室,八,1,0,1,1,1,,,0,8:30,20:00,0,1\n"
        "HQ,本庁舎,3階,3,R303,第3会議室,8,たぶん,0,1,1,1,,,0,8:30,20:00,0,1\n"
        "HQ,本庁舎,3階,3,R301,重複,8,1,0,1,1,1,,,0,8:30,20:00,0,1\n"
        "HQ,本庁舎,3階,3,R305,第5会議室,8,1,0,1,1,1,,999,0,8:30,25:00,0,1\n"
        "HQ,本庁舎,3階,3,R306,,8,1,0,1,1,1,,,0,8:30,20:00,0,1\n"
    )
    with pytest.raises(CsvRejected) as rejected:
        check_import_rooms(bad.encode("utf-8"), acting_user=dave)
    lines = [str(error) for error in rejected.value.errors]
    assert any(line.startswith("3行目: 定員") for line in lines), lines
    assert any(line.startswith("4行目: ディスプレイ") for line in lines), lines
    assert any(line.startswith("5行目") and "2行目と重複" in line for line in lines), lines
    assert any(line.startswith("6行目") and "999" in line for line in lines), lines
    assert any(line.startswith("6行目: 利用終了") for line in lines), lines
    assert any(line.startswith("7行目: 会議室名") for line in lines), lines
    assert not any(line.startswith("2行目") for line in lines)
    assert not Room.objects.exists()
    assert not Building.objects.exists()
    assert not AuditEntry.objects.filter(action="rooms.imported").exists()


def test_it_reports_a_line_that_is_not_utf8_or_shift_jis(
    ward: dict[str, Department], dave: User
) -> None:
    data = GOOD.encode("utf-8") + "HQ,本庁舎,3階,3,R309,".encode() + b"\xff\xfe\xfa" + b",8\n"
    with pytest.raises(CsvRejected) as rejected:
        check_import_rooms(data, acting_user=dave)
    assert any(str(e).startswith("4行目: 文字コード") for e in rejected.value.errors)
    assert not Room.objects.exists()


def test_it_imports_an_export_back_unchanged(ward: dict[str, Department], dave: User) -> None:
    check_import_rooms(GOOD.encode("utf-8"), acting_user=dave)
    for encoding in ("utf-8-sig", "cp932"):
        result = check_import_rooms(export_rooms(encoding), acting_user=dave)
        assert (result.created, result.changed) == ([], [])
        assert sorted(result.unchanged) == ["B101", "R301"]


def test_it_lists_import_errors_for_a_facility_manager_only(
    ward: dict[str, Department], dave: User, alice: User
) -> None:
    bad = f"{HEADER}\nHQ,本庁舎,3階,3,R301,第1会議室,0,1,0,1,1,1,,,0,8:30,20:00,0,1\n"
    upload = SimpleUploadedFile("rooms.csv", bad.encode("cp932"), content_type="text/csv")
    response = signed_in(dave).post("/rooms/manage/import/", {"file": upload, "encoding": "auto"})
    assert response.status_code == 400
    assert "2行目: 定員は1以上" in response.content.decode()
    assert not Room.objects.exists()

    good = SimpleUploadedFile("rooms.csv", GOOD.encode("utf-8"), content_type="text/csv")
    response = signed_in(dave).post("/rooms/manage/import/", {"file": good, "encoding": "auto"})
    assert response.status_code == 302
    assert Room.objects.count() == 2
    export = signed_in(dave).get("/rooms/manage/export.csv")
    assert export.status_code == 200
    assert "第1会議室" in export.content.decode("utf-8-sig")

    for path in ("/rooms/manage/", "/rooms/manage/import/", "/rooms/manage/export.csv"):
        assert signed_in(alice).get(path).status_code == 403
    assert AuditEntry.objects.filter(action="auth.denied", actor_id=alice.pk).count() == 3


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def _form(room: Room | None = None, **extra: Any) -> dict[str, Any]:
    floor = room.floor if room else Floor.objects.first()
    assert floor is not None
    data: dict[str, Any] = {
        "floor": floor.pk,
        "code": room.code if room else "R777",
        "name": room.name if room else "新会議室",
        "capacity": 6,
        "accessibility_note": "",
        "opens_at": "08:30",
        "closes_at": "20:00",
        "buffer_minutes": 0,
        "auto_release": "on",
        "is_active": "on",
        "out_of_service_note": "",
    }
    data.update(extra)
    return data


def test_it_refuses_a_text_file_named_jpg_and_keeps_the_input(
    rooms: dict[str, Room], dave: User
) -> None:
    fake = SimpleUploadedFile("photo.jpg", b"not an image at all", content_type="image/jpeg")
    response = signed_in(dave).post("/rooms/manage/new/", _form(new_photo=fake, name="打合せ室X"))
    assert response.status_code == 400
    page = response.content.decode()
    assert "JPEG・PNG・WebP" in page
    assert 'value="打合せ室X"' in page
    assert not Room.objects.filter(code="R777").exists()


def test_it_adds_a_room_with_a_photo_that_staff_can_see(
    rooms: dict[str, Room], ward: dict[str, Department], dave: User, alice: User
) -> None:
    photo = SimpleUploadedFile("x.jpg", _png(), content_type="image/jpeg")
    response = signed_in(dave).post(
        "/rooms/manage/new/",
        _form(new_photo=photo, has_display="on", allowed_departments=[ward["somu_ka"].pk]),
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    room = Room.objects.get(code="R777")
    assert room.photo.name.endswith(".png")
    assert not room.open_to_all
    entry = AuditEntry.objects.get(action="rooms.room_created")
    assert entry.details["allowed_departments"] == ["110"]
    served = signed_in(alice).get(f"/rooms/{room.pk}/photo")
    assert served.status_code == 200
    assert served["Content-Type"] == "image/png"
    assert b"".join(served.streaming_content).startswith(b"\x89PNG")  # type: ignore[attr-defined]  # FileResponse
    assert Client().get(f"/rooms/{room.pk}/photo").status_code == 302
    # People outside the ward (guests) see no rooms, so no photos either.
    guest = do_invite_guest(
        name="五味 ジーナ",
        organisation="みどり交通株式会社",
        email="gina@bus.example.jp",
        expires_at=clock.now() + dt.timedelta(days=30),
        username="gina",
        password="not-used-here-1234",
        acting_user=Actor.system("test"),
    )
    assert signed_in(guest).get(f"/rooms/{room.pk}/photo").status_code == 403


def test_it_changes_a_room_and_takes_it_out_of_service(
    rooms: dict[str, Room],
    dave: User,
    alice: User,
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Any,
) -> None:
    room = rooms["r301"]
    listing = signed_in(dave).get("/rooms/manage/")
    assert listing.status_code == 200
    assert f'href="/rooms/manage/{room.pk}/"' in listing.content.decode()
    edit_page = signed_in(dave).get(f"/rooms/manage/{room.pk}/")
    assert 'value="会議室301"' in edit_page.content.decode()
    response = signed_in(dave).post(f"/rooms/manage/{room.pk}/", _form(room, capacity=9))
    assert response.status_code == 302
    change = AuditEntry.objects.get(action="rooms.room_changed")
    assert change.details["changed"]["capacity"] == [8, 9]

    published: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(topics, "_publish", lambda topic, event: published.append((topic, event)))
    with django_capture_on_commit_callbacks(execute=True):
        stop = signed_in(dave).post(
            f"/rooms/manage/{room.pk}/service", {"out_of_service": "1", "note": "工事"}
        )
    # The floor boards refetch the room, after commit.
    assert published == [
        (f"rooms.floor.{room.floor_id}", {"type": "rooms", "op": "occupancy", "room_id": room.pk})
    ]
    assert stop.status_code == 302
    room.refresh_from_db()
    assert room.out_of_service
    assert room.out_of_service_note == "工事"
    assert AuditEntry.objects.filter(action="rooms.room_changed").count() == 2
    assert signed_in(alice).post(f"/rooms/manage/{room.pk}/service", {}).status_code == 403
    assert signed_in(alice).get(f"/rooms/manage/{room.pk}/").status_code == 403


def test_it_loads_the_admin_pages_for_an_it_administrator(
    rooms: dict[str, Room], ward: dict[str, Department], alice: User
) -> None:
    ida = make_staff("ida", "井田", "一郎", ward["somu_ka"], number="30001")
    do_grant_role(ida, Role.IT_ADMIN, acting_user=Actor.system("test"))
    client = signed_in(ida)
    for model in ("building", "floor", "room", "holiday", "booking", "bookingseries"):
        assert client.get(f"/admin/rooms/{model}/").status_code == 200, model
    assert client.get(f"/admin/rooms/room/{rooms['r301'].pk}/change/").status_code == 200
    assert client.get("/admin/rooms/booking/add/").status_code == 403
    # Rooms and bookings are read-only here: their writes go through the actions.
    room = rooms["r301"]
    response = client.post(f"/admin/rooms/room/{room.pk}/change/", {"name": "改名", "capacity": 99})
    assert response.status_code == 403
    assert client.post(f"/admin/rooms/room/{room.pk}/delete/", {"post": "yes"}).status_code == 403
    room.refresh_from_db()
    assert (room.name, room.capacity) == ("会議室301", 8)
    page = client.get(f"/admin/rooms/room/{room.pk}/change/").content.decode()
    assert room.checkin_secret not in page
    assert room.feed_secret not in page
    response = client.post(
        "/admin/rooms/building/add/", {"code": "AN", "name": "第二庁舎", "sort_order": 2}
    )
    assert response.status_code == 302
    assert AuditEntry.objects.filter(action="admin.change", target_type="rooms.building").exists()
    assert signed_in(alice).get("/admin/rooms/room/").status_code == 403


@pytest.mark.parametrize(
    ("content", "encoding", "message"),
    [
        (b"", "auto", "ファイルが空です"),
        ("建物コード,階\r\n".encode("utf-16"), "auto", "UTF-16 のファイルは読めません"),
        (GOOD.encode(), "latin-1", "文字コード latin-1 は扱えません"),
        (f'{HEADER}\n"HQ,本庁舎\n'.encode(), "auto", "2行目"),
        (
            f"{HEADER}\nHQ,本庁舎,3階,3,R301,第1会議室,99999999999999999999,1,0,1,1,1,,,0,8:30,20:00,0,1\n".encode(),
            "auto",
            "定員は1以上",
        ),
        (
            f"{HEADER}\nHQ,本庁舎,3階,3,R301,第1会議室,8,1,0,1,1,1,,,0,25:99,20:00,0,1\n".encode(),
            "auto",
            "利用開始「25:99」",
        ),
        (b"x" * (1024 * 1024 + 1), "auto", "1MBまで"),
    ],
)
def test_it_refuses_malformed_csv_files_with_a_message(
    ward: dict[str, Department], dave: User, content: bytes, encoding: str, message: str
) -> None:
    upload = SimpleUploadedFile("rooms.csv", content, content_type="text/csv")
    response = signed_in(dave).post("/rooms/manage/import/", {"file": upload, "encoding": encoding})
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not Room.objects.exists()
    assert not AuditEntry.objects.filter(action="rooms.imported").exists()


def test_it_asks_for_a_csv_file(dave: User) -> None:
    response = signed_in(dave).post("/rooms/manage/import/", {"encoding": "auto"})
    assert response.status_code == 400
    assert "CSVファイルを選んでください。" in response.content.decode()


def test_it_clears_release_deadlines_when_a_room_opts_out_and_sets_them_again(
    rooms: dict[str, Room], alice: User, dave: User
) -> None:
    from yakuba.lib import clock
    from yakuba.rooms.actions.rooms import do_change_room
    from yakuba.rooms.models import Booking

    from .conftest import at, book

    with clock.frozen_at(at(11, "09:00")):
        booking = book(rooms["r301"], alice, at(12, "10:00"), at(12, "11:00"))
        assert booking.release_due_at == at(12, "10:10")
        do_change_room(rooms["r301"], {"auto_release": False}, acting_user=dave)
        assert Booking.objects.get(pk=booking.pk).release_due_at is None
        do_change_room(rooms["r301"], {"auto_release": True}, acting_user=dave)
        assert Booking.objects.get(pk=booking.pk).release_due_at == at(12, "10:10")


def test_it_clears_release_deadlines_when_a_csv_import_opts_a_room_out(
    ward: dict[str, Department], alice: User, dave: User
) -> None:
    from .conftest import at, book

    with clock.frozen_at(at(11, "09:00")):
        check_import_rooms(GOOD.encode("utf-8"), acting_user=dave)
        booking = book(Room.objects.get(code="R301"), alice, at(12, "10:00"), at(12, "11:00"))
        assert booking.release_due_at is not None
        opted_out = GOOD.replace("0,8:30,20:00,0,1\n", "0,8:30,20:00,0,0\n")
        check_import_rooms(opted_out.encode("utf-8"), acting_user=dave)
    booking.refresh_from_db()
    assert booking.release_due_at is None
