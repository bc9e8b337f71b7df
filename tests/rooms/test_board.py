"""The floor board: states as cards with text labels, the fragment, privacy, queries."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from yakuba.audit.models import AuditEntry
from yakuba.directory.models import User
from yakuba.lib import clock
from yakuba.rooms.actions.door import do_check_in, release_due
from yakuba.rooms.models import Booking, Floor, Room
from yakuba.rooms.occupancy import room_states

from .conftest import at, book

pytestmark = pytest.mark.django_db


def card(html: str, code: str) -> str:
    start = html.index(f'data-room="{code}"')
    return html[start : html.index("</li>", start)]


def test_the_fragment_shows_every_state_with_a_text_label(
    client: Client,
    frozen_now: dt.datetime,
    rooms: dict[str, Room],
    floors: dict[str, Floor],
    alice: User,
    bob: User,
) -> None:
    in_use = book(rooms["r301"], alice, at(11, "10:00"), at(11, "11:00"), title="予算ヒアリング")
    book(rooms["r302"], bob, at(11, "10:00"), at(11, "10:30"))
    late = Room.objects.create(floor=floors["3F"], code="R303", name="会議室303", capacity=6)
    book(late, bob, at(11, "09:45"), at(11, "10:45"))
    Room.objects.create(
        floor=floors["3F"], code="R304", name="会議室304", capacity=4, out_of_service=True
    )
    Room.objects.create(floor=floors["3F"], code="R305", name="会議室305", capacity=4)
    with clock.frozen_at(at(11, "10:05")):
        do_check_in(in_use, acting_user=alice, method=Booking.CheckInMethod.PANEL)
        release_due(clock.now())  # R303's 09:45 booking was due at 09:55
        client.force_login(bob)
        response = client.get(f"/rooms/board/fragment/?floor={floors['3F'].pk}")
    html = response.content.decode()
    assert response.status_code == 200
    assert 'data-state="in_use"' in card(html, "R301")
    assert "使用中" in card(html, "R301")
    assert "予算ヒアリング" in card(html, "R301")
    assert "あと55分で空きます" in card(html, "R301")
    assert "チェックイン待ち" in card(html, "R302")
    assert "解放済み" in card(html, "R303")
    assert "利用停止中" in card(html, "R304")
    assert 'data-state="free"' in card(html, "R305")
    assert "空き" in card(html, "R305")
    assert "R501" not in html  # another floor


def test_a_private_bookings_title_never_appears_on_the_board(
    client: Client,
    frozen_now: dt.datetime,
    rooms: dict[str, Room],
    floors: dict[str, Floor],
    alice: User,
    dave: User,
) -> None:
    book(
        rooms["r301"],
        alice,
        at(11, "09:00"),
        at(11, "10:00"),
        title="人事の内緒話",
        is_private=True,
    )
    book(
        rooms["r301"], alice, at(11, "13:00"), at(11, "14:00"), title="懲戒の相談", is_private=True
    )
    for viewer in (alice, dave):  # not even for its organiser or a facility manager
        client.force_login(viewer)
        page = client.get(f"/rooms/board/?floor={floors['3F'].pk}").content.decode()
        fragment = client.get(f"/rooms/board/fragment/?floor={floors['3F'].pk}").content.decode()
        for html in (page, fragment):
            assert "内緒" not in html
            assert "懲戒" not in html
            assert "予約あり" in card(html, "R301")


def test_the_board_page_watches_the_floor_topic(
    client: Client,
    frozen_now: dt.datetime,
    rooms: dict[str, Room],
    floors: dict[str, Floor],
    bob: User,
) -> None:
    client.force_login(bob)
    html = client.get("/rooms/board/").content.decode()
    assert f'data-realtime-topics="rooms.floor.{floors["3F"].pk}"' in html
    assert "yakuba/board.js" in html
    html = client.get(f"/rooms/board/?floor={floors['5F'].pk}").content.decode()
    assert f'data-realtime-topics="rooms.floor.{floors["5F"].pk}"' in html
    assert "特別会議室" in html
    assert client.get("/rooms/board/fragment/?floor=abc").status_code == 400
    assert client.get("/rooms/board/fragment/?floor=999999").status_code == 404


def test_only_staff_see_the_board(
    client: Client, frozen_now: dt.datetime, rooms: dict[str, Room], floors: dict[str, Floor]
) -> None:
    assert client.get("/rooms/board/").status_code == 302
    # A door panel's device account is no staff member (it has its own pages).
    device = User.objects.create_user("panel-x", None, display_name="端末", kind=User.Kind.DEVICE)
    client.force_login(device)
    assert client.get(f"/rooms/board/fragment/?floor={floors['3F'].pk}").status_code == 403
    assert AuditEntry.objects.filter(action="auth.denied", actor_id=device.pk).exists()


def test_room_states_reads_the_bookings_of_a_whole_floor_in_one_query(
    frozen_now: dt.datetime, rooms: dict[str, Room], floors: dict[str, Floor], alice: User
) -> None:
    for n in range(10):
        room = Room.objects.create(floor=floors["3F"], code=f"X{n}", name=f"会議室X{n}", capacity=4)
        book(room, alice, at(11, "10:00"), at(11, "11:00"))
    listed = list(Room.objects.filter(floor=floors["3F"]))
    with CaptureQueriesContext(connection) as queries:
        states = room_states(listed, at(11, "10:30"))
    # 1: the bookings of every listed room from now to the end of the day.
    assert len(queries.captured_queries) == 1
    assert len(states) == 12


def test_the_fragment_of_a_floor_of_30_rooms_takes_a_fixed_number_of_queries(
    client: Client, frozen_now: dt.datetime, floors: dict[str, Floor], alice: User
) -> None:
    floor = floors["5F"]
    for n in range(30):
        room = Room.objects.create(floor=floor, code=f"Q{n:02d}", name=f"会議室Q{n}", capacity=6)
        book(room, alice, at(11, "09:05"), at(11, "10:00"), title=f"打合せ{n}")
        book(room, alice, at(11, "13:00"), at(11, "14:00"), is_private=True, title="秘")
    client.force_login(alice)
    client.get(f"/rooms/board/fragment/?floor={floor.pk}")  # warm the session

    with CaptureQueriesContext(connection) as queries:
        html = client.get(f"/rooms/board/fragment/?floor={floor.pk}").content.decode()

    # 1 session, 2 user, 3 the floor with its building, 4 its rooms, 5 the bookings of
    # all of them, 6 a role grant (the page context): the same for 3 rooms or 30.
    assert len(queries.captured_queries) <= 6, [q["sql"] for q in queries.captured_queries]
    assert html.count('class="room-card ') == 30
    assert "打合せ29" in html
    assert "秘" not in html
