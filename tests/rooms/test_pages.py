"""The booking pages: book, see it on my page, conflicts and refusals, approvals, booking
for someone else, change, cancel, check-in, the finder and "find a time" pages."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.test import Client

from tests.conftest import PASSWORD
from yakuba.audit.models import AuditEntry
from yakuba.audit.record import Actor
from yakuba.directory.actions.staff import do_invite_guest
from yakuba.directory.models import Department, User
from yakuba.lib import clock
from yakuba.rooms.models import Booking, Holiday, Room

from .conftest import at, book, restrict_to

pytestmark = pytest.mark.django_db


def form(room: Room, day: int, start: str, end: str, **fields: Any) -> dict[str, Any]:
    return {
        "title": "定例打合せ",
        "room": room.pk,
        "date": f"2025-06-{day:02d}",
        "start": start,
        "end": end,
        **fields,
    }


def test_it_books_through_the_page_and_shows_it_on_home(
    client: Client, frozen_now: dt.datetime, rooms: dict[str, Room], alice: User, bob: User
) -> None:
    client.force_login(alice)

    response = client.post(
        "/rooms/book/",
        form(rooms["r301"], 12, "10:00", "11:00", title="予算の打合せ", attendees="bob"),
    )

    booking = Booking.objects.get(title="予算の打合せ")
    assert response.status_code == 302
    assert response["Location"] == f"/rooms/bookings/{booking.pk}/"
    assert booking.status == Booking.Status.CONFIRMED
    assert booking.starts_at == at(12, "10:00")
    assert list(booking.attendees.all()) == [bob]
    assert AuditEntry.objects.filter(
        action="rooms.booking_created", actor_id=alice.pk, target_id=str(booking.pk)
    ).exists()
    page = client.get("/rooms/").content.decode()
    assert "予算の打合せ" in page
    assert "会議室301" in page
    assert "予約済" in page
    assert "令和7年6月11日(水)" in page  # today, in 和暦
    client.force_login(bob)
    assert "予算の打合せ" in client.get("/rooms/").content.decode()  # as an attendee


def test_it_prefills_the_form_from_a_finder_link(
    client: Client, frozen_now: dt.datetime, rooms: dict[str, Room], alice: User
) -> None:
    client.force_login(alice)

    page = client.get(
        "/rooms/book/",
        {"room": str(rooms["r302"].pk), "start": "2025-06-12T13:00", "end": "2025-06-12T14:30"},
    ).content.decode()

    assert f'<option value="{rooms["r302"].pk}" selected>' in page
    assert 'value="2025-06-12"' in page
    assert 'value="13:00"' in page
    assert 'value="14:30"' in page


def test_a_conflict_rerenders_with_409_naming_only_the_time_and_keeping_the_title(
    client: Client, frozen_now: dt.datetime, rooms: dict[str, Room], alice: User, charlie: User
) -> None:
    book(
        rooms["r301"],
        alice,
        at(12, "10:00"),
        at(12, "11:00"),
        title="人事の内緒話",
        is_private=True,
    )
    client.force_login(charlie)

    response = client.post(
        "/rooms/book/", form(rooms["r301"], 12, "10:30", "11:30", title="窓口の振り返り")
    )

    page = response.content.decode()
    assert response.status_code == 409
    assert "2025-06-12 10:00〜11:00" in page
    assert "内緒" not in page
    assert 'value="窓口の振り返り"' in page
    assert Booking.objects.filter(organiser=charlie).count() == 0


def test_it_refuses_outside_the_hours_with_400_and_keeps_what_was_typed(
    client: Client, frozen_now: dt.datetime, rooms: dict[str, Room], alice: User
) -> None:
    client.force_login(alice)

    response = client.post(
        "/rooms/book/", form(rooms["r301"], 12, "19:30", "21:00", note="資料は各自")
    )

    page = response.content.decode()
    assert response.status_code == 400
    assert "08:30〜20:00" in page
    assert "資料は各自" in page
    assert not Booking.objects.exists()


def test_it_refuses_bad_input_with_400(
    client: Client, frozen_now: dt.datetime, rooms: dict[str, Room], alice: User
) -> None:
    client.force_login(alice)

    response = client.post(
        "/rooms/book/", form(rooms["r301"], 12, "11:00", "10:00", attendees="nobody-here")
    )

    page = response.content.decode()
    assert response.status_code == 400
    assert "終了時刻は開始時刻より後にしてください。" in page
    assert "「nobody-here」に当てはまる人が見つかりません。" in page
    assert not Booking.objects.exists()


def test_a_department_only_room_refuses_charlie_with_403_and_an_audit_row(
    client: Client,
    frozen_now: dt.datetime,
    rooms: dict[str, Room],
    ward: dict[str, Department],
    alice: User,
    charlie: User,
) -> None:
    room = rooms["r301"]
    restrict_to(room, ward["somu_ka"])
    client.force_login(charlie)

    response = client.post("/rooms/book/", form(room, 12, "10:00", "11:00"))

    assert response.status_code == 403
    assert not Booking.objects.exists()
    denial = AuditEntry.objects.get(action="auth.denied", actor_id=charlie.pk)
    assert denial.details["what"] == "rooms.book"
    assert denial.target_id == str(room.pk)
    # Alice's 文書係 is under the listed 総務課: she may book it.
    client.force_login(alice)
    assert client.post("/rooms/book/", form(room, 12, "10:00", "11:00")).status_code == 302


def test_an_approval_room_is_pending_until_dave_approves(
    client: Client, frozen_now: dt.datetime, rooms: dict[str, Room], alice: User, dave: User
) -> None:
    client.force_login(alice)
    client.post("/rooms/book/", form(rooms["special"], 13, "13:00", "15:00", title="区長説明"))
    booking = Booking.objects.get(title="区長説明")
    assert booking.status == Booking.Status.PENDING
    assert "承認待ち" in client.get("/rooms/").content.decode()
    assert client.get("/rooms/approvals/").status_code == 403

    client.force_login(dave)
    assert "区長説明" in client.get("/rooms/approvals/").content.decode()
    response = client.post(
        f"/rooms/bookings/{booking.pk}/decide/", {"decision": "approve", "note": "了解です"}
    )

    assert response.status_code == 302
    booking.refresh_from_db()
    assert booking.status == Booking.Status.CONFIRMED
    assert booking.decided_by == dave
    approval = AuditEntry.objects.get(action="rooms.booking_approved", target_id=str(booking.pk))
    assert approval.actor_id == dave.pk
    after = client.get("/rooms/approvals/").content.decode()
    assert "「区長説明」を承認しました。" in after
    assert "承認待ちの予約はありません。" in after
    client.force_login(alice)
    page = client.get(f"/rooms/bookings/{booking.pk}/").content.decode()
    assert "予約済" in page
    assert "了解です" in page


def test_alice_books_for_bob(
    client: Client, frozen_now: dt.datetime, rooms: dict[str, Room], alice: User, bob: User
) -> None:
    client.force_login(alice)

    client.post("/rooms/book/", form(rooms["r302"], 16, "09:00", "10:00", organiser="坂東歩"))

    booking = Booking.objects.get()
    assert booking.organiser == bob
    assert booking.booked_by == alice
    entry = AuditEntry.objects.get(action="rooms.booking_created")
    assert entry.actor_id == alice.pk
    assert entry.details["organiser_id"] == bob.pk
    client.force_login(bob)
    page = client.get("/rooms/").content.decode()
    assert "定例打合せ" in page
    assert "主催" in page


def test_alice_cancels_her_booking(
    client: Client, frozen_now: dt.datetime, rooms: dict[str, Room], alice: User, charlie: User
) -> None:
    booking = book(rooms["r301"], alice, at(12, "10:00"), at(12, "11:00"))
    client.force_login(charlie)
    assert client.post(f"/rooms/bookings/{booking.pk}/cancel/").status_code == 403

    client.force_login(alice)
    response = client.post(f"/rooms/bookings/{booking.pk}/cancel/", {"reason": "延期"})

    assert response.status_code == 302
    booking.refresh_from_db()
    assert booking.status == Booking.Status.CANCELLED
    entry = AuditEntry.objects.get(action="rooms.booking_cancelled", target_id=str(booking.pk))
    assert entry.details["reason"] == "延期"
    assert "を取り消しました" in client.get("/rooms/").content.decode()


def test_alice_changes_the_time_of_her_booking(
    client: Client, frozen_now: dt.datetime, rooms: dict[str, Room], alice: User, bob: User
) -> None:
    booking = book(rooms["r301"], alice, at(12, "10:00"), at(12, "11:00"))
    book(rooms["r301"], bob, at(12, "14:00"), at(12, "15:00"))
    client.force_login(alice)
    page = client.get(f"/rooms/bookings/{booking.pk}/edit/").content.decode()
    assert 'value="10:00"' in page

    refused = client.post(
        f"/rooms/bookings/{booking.pk}/edit/", form(rooms["r301"], 12, "14:30", "15:30")
    )
    assert refused.status_code == 409
    response = client.post(
        f"/rooms/bookings/{booking.pk}/edit/",
        form(rooms["r301"], 12, "13:00", "14:00", title="打合せ（時間変更）"),
    )

    assert response.status_code == 302
    booking.refresh_from_db()
    assert (booking.starts_at, booking.ends_at) == (at(12, "13:00"), at(12, "14:00"))
    assert booking.title == "打合せ（時間変更）"
    assert (
        AuditEntry.objects.filter(action="rooms.booking_changed", target_id=str(booking.pk)).count()
        == 1
    )


def test_a_participant_checks_in_from_the_detail_page(
    client: Client, rooms: dict[str, Room], alice: User, bob: User, charlie: User
) -> None:
    with clock.frozen_at(at(11, "09:00")):
        booking = book(rooms["r301"], alice, at(11, "10:00"), at(11, "11:00"), attendees=[bob])
    with clock.frozen_at(at(11, "09:55")):
        client.force_login(bob)
        assert "チェックインする" in client.get(f"/rooms/bookings/{booking.pk}/").content.decode()
        client.force_login(charlie)
        assert client.post(f"/rooms/bookings/{booking.pk}/check-in/").status_code == 403
        client.force_login(bob)
        response = client.post(f"/rooms/bookings/{booking.pk}/check-in/")

    assert response.status_code == 302
    booking.refresh_from_db()
    assert booking.checked_in_by == bob
    assert booking.check_in_method == Booking.CheckInMethod.WEB
    assert AuditEntry.objects.filter(
        action="rooms.checked_in", actor_id=bob.pk, target_id=str(booking.pk)
    ).exists()


def test_the_check_in_button_waits_for_the_window(
    client: Client, frozen_now: dt.datetime, rooms: dict[str, Room], alice: User
) -> None:
    booking = book(rooms["r301"], alice, at(12, "10:00"), at(12, "11:00"))
    client.force_login(alice)

    assert "チェックインする" not in client.get(f"/rooms/bookings/{booking.pk}/").content.decode()
    client.post(f"/rooms/bookings/{booking.pk}/check-in/")

    booking.refresh_from_db()
    assert booking.checked_in_at is None


def test_the_form_flags_a_holiday(
    client: Client, frozen_now: dt.datetime, rooms: dict[str, Room], alice: User
) -> None:
    Holiday.objects.update_or_create(date=dt.date(2025, 6, 20), defaults={"name": "庁舎点検日"})
    client.force_login(alice)

    page = client.get(
        "/rooms/book/", {"room": str(rooms["r301"].pk), "start": "2025-06-20T10:00"}
    ).content.decode()

    assert "庁舎点検日" in page
    assert "庁舎点検日" not in client.get("/rooms/book/").content.decode()


def test_the_finder_page_lists_free_rooms_with_a_prefilled_book_link(
    client: Client, frozen_now: dt.datetime, rooms: dict[str, Room], alice: User, bob: User
) -> None:
    book(rooms["r301"], bob, at(12, "10:00"), at(12, "11:00"))
    client.force_login(alice)

    response = client.get(
        "/rooms/find/", {"date": "2025-06-12", "start": "10:00", "end": "11:00", "people": "4"}
    )

    page = response.content.decode()
    assert response.status_code == 200
    assert "会議室301" not in page
    assert "会議室302" in page
    assert f"/rooms/book/?room={rooms['r302'].pk}&amp;start=2025-06-12T10%3A00%2B09%3A00" in page
    partial = client.get(
        "/rooms/find/",
        {"date": "2025-06-12", "start": "10:00", "end": "11:00", "people": "4"},
        headers={"HX-Request": "true"},
    ).content.decode()
    assert "会議室302" in partial
    assert "<html" not in partial
    bad = client.get("/rooms/find/", {"date": "2025-06-12", "start": "11:00", "end": "10:00"})
    assert bad.status_code == 400


def test_the_find_a_time_page_skips_an_attendees_busy_time(
    client: Client, frozen_now: dt.datetime, rooms: dict[str, Room], alice: User, bob: User
) -> None:
    book(rooms["r302"], bob, at(11, "09:15"), at(11, "10:00"))
    client.force_login(alice)

    response = client.get(
        "/rooms/find-time/",
        {
            "attendees": "alice, 坂東歩",
            "duration": "30",
            "first_day": "2025-06-11",
            "last_day": "2025-06-11",
            "room": str(rooms["r301"].pk),
        },
    )

    page = response.content.decode()
    assert response.status_code == 200
    assert 'datetime="2025-06-11T09:00+09:00"' not in page  # 09:00–09:30 clashes with bob
    assert 'datetime="2025-06-11T10:00+09:00"' in page
    assert "/rooms/book/?room=" in page


def test_it_pins_the_query_count_of_home(
    client: Client,
    frozen_now: dt.datetime,
    rooms: dict[str, Room],
    alice: User,
    bob: User,
    dave: User,
    django_assert_max_num_queries: Any,
) -> None:
    for day in range(12, 18):
        book(rooms["r301"], alice, at(day, "10:00"), at(day, "11:00"), attendees=[bob])
        book(rooms["special"], bob, at(day, "13:00"), at(day, "14:00"), attendees=[alice])
    client.force_login(alice)
    client.get("/rooms/")  # warm the session

    # 1 session, 2 user, 3 my bookings (one query whatever their number: rooms, floors,
    # buildings and organisers joined), 4-5 is_facility_manager (facility-manager grant,
    # then IT-administrator grant), 6 the navigation's audit-log entry, 7 the header's
    # staff profile.
    with django_assert_max_num_queries(7):
        page = client.get("/rooms/").content.decode()
    assert page.count("/rooms/bookings/") == 12

    client.force_login(dave)
    client.get("/rooms/")
    # As above, but one role query (dave holds the facility-manager grant) and one more
    # for the count of pending bookings shown on the approvals link.
    with django_assert_max_num_queries(7):
        page = client.get("/rooms/").content.decode()
    assert "承認待ちの予約（6）" in page


def test_a_guest_is_refused_the_pages(
    client: Client, frozen_now: dt.datetime, rooms: dict[str, Room], alice: User
) -> None:
    guest = do_invite_guest(
        name="五味 ジーナ",
        organisation="みどり交通株式会社",
        email="gina@bus.example.jp",
        expires_at=clock.now() + dt.timedelta(days=30),
        username="gina",
        password=PASSWORD,
        acting_user=Actor.system("test"),
    )
    client.force_login(guest)

    assert client.get("/rooms/").status_code == 403
    assert client.post("/rooms/book/", form(rooms["r301"], 12, "10:00", "11:00")).status_code == 403
    assert not Booking.objects.exists()


def weekly(room: Room, **fields: Any) -> dict[str, Any]:
    """Thursdays 10:00–11:00 from 12 June, four times."""
    return form(
        room,
        12,
        "10:00",
        "11:00",
        title="週次定例",
        frequency="weekly",
        weekdays=["4"],
        count=4,
        interval=1,
        **fields,
    )


def test_it_books_a_weekly_series_through_the_page(
    client: Client, frozen_now: dt.datetime, rooms: dict[str, Room], alice: User
) -> None:
    client.force_login(alice)

    response = client.post("/rooms/book/", weekly(rooms["r301"]))

    bookings = list(Booking.objects.order_by("starts_at"))
    assert [b.starts_at for b in bookings] == [at(day, "10:00") for day in (12, 19, 26)] + [
        at(dt.date(2025, 7, 3), "10:00")
    ]
    assert response["Location"] == f"/rooms/bookings/{bookings[0].pk}/"
    assert AuditEntry.objects.filter(action="rooms.series_created", actor_id=alice.pk).count() == 1
    page = client.get(response["Location"]).content.decode()
    assert "4回分登録しました" in page
    assert "毎週" in page


def test_a_series_conflict_is_409_unless_taken_dates_are_skipped(
    client: Client, frozen_now: dt.datetime, rooms: dict[str, Room], alice: User, bob: User
) -> None:
    book(rooms["r301"], bob, at(19, "10:30"), at(19, "11:30"))
    client.force_login(alice)

    refused = client.post("/rooms/book/", weekly(rooms["r301"]))
    assert refused.status_code == 409
    assert "2025-06-19 10:30〜11:30" in refused.content.decode()
    assert not Booking.objects.filter(organiser=alice).exists()

    response = client.post("/rooms/book/", weekly(rooms["r301"], skip_conflicts="on"))

    assert response.status_code == 302
    assert Booking.objects.filter(organiser=alice).count() == 3
    assert "予約済みのため飛ばした日: 6/19" in client.get(response["Location"]).content.decode()


def test_it_cancels_this_and_the_following_occurrences(
    client: Client, frozen_now: dt.datetime, rooms: dict[str, Room], alice: User
) -> None:
    client.force_login(alice)
    client.post("/rooms/book/", weekly(rooms["r301"]))
    second = Booking.objects.order_by("starts_at")[1]

    page = client.get(f"/rooms/bookings/{second.pk}/").content.decode()
    assert 'value="following"' in page
    client.post(f"/rooms/bookings/{second.pk}/cancel/", {"scope": "following"})

    statuses = list(Booking.objects.order_by("starts_at").values_list("status", flat=True))
    assert statuses == ["confirmed", "cancelled", "cancelled", "cancelled"]
    assert AuditEntry.objects.filter(action="rooms.series_cancelled").count() == 1


def test_it_cancels_one_occurrence_only(
    client: Client, frozen_now: dt.datetime, rooms: dict[str, Room], alice: User
) -> None:
    client.force_login(alice)
    client.post("/rooms/book/", weekly(rooms["r301"]))
    second = Booking.objects.order_by("starts_at")[1]

    client.post(f"/rooms/bookings/{second.pk}/cancel/", {"scope": "this"})

    statuses = list(Booking.objects.order_by("starts_at").values_list("status", flat=True))
    assert statuses == ["confirmed", "cancelled", "confirmed", "confirmed"]
    assert second.series is not None
    second.series.refresh_from_db()
    assert second.series.excluded_dates == ["2025-06-19"]


def test_it_moves_every_occurrence_of_a_series(
    client: Client, frozen_now: dt.datetime, rooms: dict[str, Room], alice: User
) -> None:
    client.force_login(alice)
    client.post("/rooms/book/", weekly(rooms["r301"]))
    first = Booking.objects.order_by("starts_at").first()
    assert first is not None

    response = client.post(
        f"/rooms/bookings/{first.pk}/edit/",
        form(rooms["r301"], 12, "14:00", "15:00", title="週次定例", scope="all"),
    )

    assert response.status_code == 302
    assert {
        f"{clock.local(start):%H:%M}"
        for start in Booking.objects.values_list("starts_at", flat=True)
    } == {"14:00"}
    assert AuditEntry.objects.filter(action="rooms.series_changed").count() == 1


def test_the_people_search_finds_staff_by_name(
    client: Client, frozen_now: dt.datetime, alice: User, bob: User, charlie: User
) -> None:
    client.force_login(alice)

    page = client.get("/rooms/people/", {"q": "ばんどう"}).content.decode()

    assert "<code>bob</code>" in page
    assert "charlie" not in page


def test_only_facility_managers_decide(
    client: Client, frozen_now: dt.datetime, rooms: dict[str, Room], alice: User, bob: User
) -> None:
    hold = book(rooms["special"], bob, at(13, "13:00"), at(13, "15:00"))
    client.force_login(alice)

    response = client.post(f"/rooms/bookings/{hold.pk}/decide/", {"decision": "approve"})

    assert response.status_code == 403
    hold.refresh_from_db()
    assert hold.status == Booking.Status.PENDING
    denial = AuditEntry.objects.get(action="auth.denied", actor_id=alice.pk)
    assert denial.details["what"] == "rooms.decide"


@pytest.mark.parametrize(
    "url",
    [
        "/rooms/find-time/?attendees=alice&duration=60&first_day=9999-12-31&last_day=9999-12-31",
        "/rooms/find-time/?attendees=alice&duration=60&first_day=0001-01-01&last_day=0001-01-02",
        "/rooms/find/?date=9999-12-31&start=23:00&end=23:30&people=1",
        "/rooms/find/?date=2025-02-30&start=10:00&end=11:00&people=1",
        "/rooms/find/?date=2025-06-12&start=10:00&end=11:00&people=99999999999999999999",
        "/rooms/find-time/?attendees=alice&duration=abc&first_day=2025-06-12&last_day=2025-06-13",
    ],
)
def test_it_answers_odd_search_dates_and_numbers_with_400(
    client: Client, frozen_now: dt.datetime, rooms: dict[str, Room], alice: User, url: str
) -> None:
    client.force_login(alice)

    response = client.get(url)

    assert response.status_code == 400
    assert "入力内容を確かめてください。" in response.content.decode()


def test_it_ignores_an_impossible_time_in_a_booking_link(
    client: Client, frozen_now: dt.datetime, rooms: dict[str, Room], alice: User
) -> None:
    client.force_login(alice)

    for query in ("start=9999-12-31T23:30", "start=2025-02-30T10:00&end=zz&room=abc"):
        response = client.get(f"/rooms/book/?{query}")
        assert response.status_code == 200
        # The form falls back to the next quarter hour today.
        assert 'value="2025-06-11"' in response.content.decode()


def test_it_refuses_a_series_out_of_range_with_400_and_keeps_what_was_typed(
    client: Client, frozen_now: dt.datetime, rooms: dict[str, Room], alice: User
) -> None:
    client.force_login(alice)

    response = client.post(
        "/rooms/book/",
        form(
            rooms["r301"],
            12,
            "10:00",
            "11:00",
            title="週次会議",
            frequency="weekly",
            until_date="0001-01-01",
        ),
    )

    page = response.content.decode()
    assert response.status_code == 400
    assert "日付は2000-01-01〜2999-12-31の範囲で入力してください。" in page
    assert 'value="週次会議"' in page
    assert not Booking.objects.exists()


def test_a_department_only_room_refuses_charlie_a_series_with_403(
    client: Client,
    frozen_now: dt.datetime,
    rooms: dict[str, Room],
    ward: dict[str, Department],
    charlie: User,
) -> None:
    room = rooms["r301"]
    restrict_to(room, ward["somu_ka"])
    client.force_login(charlie)

    response = client.post(
        "/rooms/book/", form(room, 12, "10:00", "11:00", frequency="weekly", count="4")
    )

    assert response.status_code == 403
    assert not Booking.objects.exists()
    assert not AuditEntry.objects.filter(action="rooms.series_created").exists()
    denial = AuditEntry.objects.get(action="auth.denied", actor_id=charlie.pk)
    assert denial.details["what"] == "rooms.book"
    # Nor does "find a time" for that room tell charlie when it is free.
    refused = client.get(
        "/rooms/find-time/",
        {
            "attendees": "charlie",
            "duration": "60",
            "first_day": "2025-06-12",
            "last_day": "2025-06-13",
            "room": str(room.pk),
        },
    )
    assert refused.status_code == 403


def test_it_pins_the_query_count_of_the_finder(
    client: Client,
    frozen_now: dt.datetime,
    rooms: dict[str, Room],
    alice: User,
    django_assert_max_num_queries: Any,
) -> None:
    for n in range(30):
        room = Room.objects.create(
            floor=rooms["r301"].floor, code=f"F{n:02d}", name=f"会議室F{n}", capacity=10
        )
        if n % 2:
            book(room, alice, at(12, "10:00"), at(12, "11:00"))
    client.force_login(alice)
    query = {"date": "2025-06-12", "start": "10:00", "end": "11:00", "people": "4"}
    client.get("/rooms/find/", query)

    # 1 session, 2 user, 3-4 is_facility_manager (facility-manager grant, then
    # IT-administrator grant), 5 the user's 所属 and the departments above them, 6 the
    # rooms they may book (floors and buildings joined), 7 the bookings of all of them,
    # 8 the holiday of the day, 9 the navigation's role grant, 10 the header's staff
    # profile: the same for 3 rooms or 30.
    with django_assert_max_num_queries(10):
        page = client.get("/rooms/find/", query).content.decode()
    assert page.count("/rooms/book/?room=") == 15 + 3  # 15 free new rooms, 301, 302, 501
