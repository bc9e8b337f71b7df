"""Meetings: registering one (from scratch or from a room booking), changing and deleting
it, the list of my meetings with where each record stands, and the demo meetings."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from tests.conftest import make_staff
from yakuba.audit.models import AuditEntry
from yakuba.audit.record import Actor
from yakuba.directory.actions.staff import do_invite_guest
from yakuba.directory.models import Department, User
from yakuba.lib import clock
from yakuba.minutes.actions.meetings import (
    MeetingError,
    do_change_meeting,
    do_create_meeting,
    do_delete_meeting,
)
from yakuba.minutes.models import Meeting, Minutes, Recording, Segment, TranscriptionJob
from yakuba.rooms.actions.booking import BookingRequest, check_create_booking
from yakuba.rooms.models import Booking, Building, Floor, Room

from .conftest import MEETING_START

pytestmark = pytest.mark.django_db


def form(**fields: Any) -> dict[str, Any]:
    return {
        "title": "予算要求の説明会",
        "date": "2025-06-11",
        "start": "10:00",
        "end": "11:30",
        "place": "本庁舎3階 会議室301",
        "attendees": "alice, bob",
        "absentees": "",
        "other_attendees": "",
        "agenda": "来年度の予算要求\n日程",
        **fields,
    }


def audited(action: str) -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(action=action).order_by("pk"))


def guest(username: str = "gina") -> User:
    return do_invite_guest(
        name="五味 ジーナ",
        organisation="みどり交通株式会社",
        email=f"{username}@bus.example.jp",
        expires_at=clock.now() + dt.timedelta(days=30),
        username=username,
        password="not-used-here-1234",
        acting_user=Actor.system("test"),
    )


def booking_for(organiser: User, *attendees: User, private: bool = False) -> Booking:
    building = Building.objects.create(code="HQ", name="本庁舎")
    floor = Floor.objects.create(building=building, name="3階", level=3)
    room = Room.objects.create(floor=floor, code="R301", name="会議室301", capacity=8)
    start = dt.datetime.combine(
        clock.today() + dt.timedelta(days=1), dt.time(10), tzinfo=clock.TOKYO
    )
    request = BookingRequest(
        room=room,
        starts_at=start,
        ends_at=start + dt.timedelta(hours=1),
        title="係内打合せ",
        organiser=organiser,
        attendees=list(attendees),
        is_private=private,
    )
    return check_create_booking(request, acting_user=organiser)


# --- registering --------------------------------------------------------------------------


def test_it_registers_a_meeting_through_the_page_and_lists_it(
    client: Client, ward: dict[str, Department], alice: User, bob: User
) -> None:
    client.force_login(alice)

    response = client.post("/minutes/new/", form())

    meeting = Meeting.objects.get(title="予算要求の説明会")
    assert response.status_code == 302
    assert response["Location"] == f"/minutes/{meeting.pk}/"
    assert meeting.organiser == alice
    assert meeting.created_by == alice
    assert meeting.department == ward["bunsho"]  # Alice's primary 所属
    assert meeting.starts_at == MEETING_START
    assert meeting.ends_at == MEETING_START + dt.timedelta(minutes=90)
    assert set(meeting.attendees.all()) == {alice, bob}
    assert meeting.agenda_items() == ["来年度の予算要求", "日程"]
    [entry] = audited("minutes.meeting_created")
    assert entry.actor_id == alice.pk
    assert entry.target_id == str(meeting.pk)
    assert entry.details["attendees"] == ["alice", "bob"]
    overview = client.get(f"/minutes/{meeting.pk}/").content.decode()
    assert "予算要求の説明会" in overview
    assert "令和7年6月11日(水) 10:00" in overview  # 和暦
    assert "2025年6月11日(水) 10:00" in overview  # and 西暦
    assert "総務部 総務課 文書係" in overview
    assert f"/minutes/{meeting.pk}/delete/" in overview  # the organiser may delete
    home = client.get("/minutes/").content.decode()
    assert "予算要求の説明会" in home
    assert "録音なし" in home
    client.force_login(bob)
    assert "予算要求の説明会" in client.get("/minutes/").content.decode()
    assert (
        f"/minutes/{meeting.pk}/delete/"
        not in client.get(f"/minutes/{meeting.pk}/").content.decode()
    )


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"title": "  "}, "このフィールドは必須です。"),
        ({"end": "09:00"}, "終了時刻は開始時刻より後にしてください。"),
        ({"date": "1999-01-01"}, "日付は2000-01-01〜2999-12-31の範囲で入力してください。"),
        ({"attendees": "alice, nobody-here"}, "「nobody-here」に当てはまる人が見つかりません。"),
        ({"absentees": "bob"}, "出席者と欠席者の両方に入っている人がいます（坂東 歩）"),
        ({"organiser": "alice, bob"}, "主催者は1人だけ指定してください。"),
        ({"absentees": "gina"}, "「gina」に当てはまる人が見つかりません。"),  # guests attend only
    ],
)
def test_it_refuses_bad_input_with_400_and_saves_nothing(
    client: Client, alice: User, bob: User, fields: dict[str, str], message: str
) -> None:
    guest()
    client.force_login(alice)

    response = client.post("/minutes/new/", form(**fields))

    assert response.status_code == 400
    assert message in response.content.decode()
    assert "予算要求の説明会" in response.content.decode() or fields.get("title") == "  "
    assert not Meeting.objects.exists()
    assert not audited("minutes.meeting_created")


def test_it_registers_a_meeting_for_another_organiser_in_their_department(
    client: Client, ward: dict[str, Department], alice: User, charlie: User
) -> None:
    client.force_login(alice)

    response = client.post("/minutes/new/", form(organiser="charlie", attendees="charlie"))

    meeting = Meeting.objects.get()
    assert response.status_code == 302
    assert meeting.organiser == charlie
    assert meeting.created_by == alice
    assert meeting.department == ward["koseki"]


def test_a_guest_attends_but_cannot_register_meetings(client: Client, alice: User) -> None:
    gina = guest()
    client.force_login(alice)
    client.post("/minutes/new/", form(attendees="alice, gina"))
    meeting = Meeting.objects.get()
    assert gina in meeting.attendees.all()

    client.force_login(gina)
    assert client.get("/minutes/new/").status_code == 403
    assert client.post("/minutes/new/", form(attendees="gina")).status_code == 403
    assert Meeting.objects.count() == 1
    assert "予算要求の説明会" in client.get("/minutes/").content.decode()
    assert "会議を登録する" not in client.get("/minutes/").content.decode()


def test_the_actions_validate_what_the_forms_cannot(alice: User, bob: User) -> None:
    start = MEETING_START
    retired = make_staff("retired", "退", "職", alice.staff.department, number="19999")
    retired.is_active = False
    retired.save(update_fields=["is_active"])
    base: dict[str, Any] = {"user": alice, "title": "会議", "starts_at": start}

    with pytest.raises(MeetingError) as same_time:
        do_create_meeting(**base, ends_at=start)
    with pytest.raises(MeetingError) as inactive:
        do_create_meeting(**base, ends_at=start + dt.timedelta(hours=1), attendees=[retired])
    with pytest.raises(MeetingError) as guest_organiser:
        do_create_meeting(**base, ends_at=start + dt.timedelta(hours=1), organiser=guest())
    with pytest.raises(ValueError, match="timezone-aware"):
        do_create_meeting(
            **{**base, "starts_at": dt.datetime(2025, 6, 11, 10)},  # noqa: DTZ001 (the point)
            ends_at=dt.datetime(2025, 6, 11, 11),  # noqa: DTZ001
        )

    assert same_time.value.field == "end"
    assert "終了日時は開始日時より後" in same_time.value.message
    assert str(same_time.value) == "The end must be after the start."
    assert inactive.value.field == "attendees"
    assert "退 職" in inactive.value.message
    assert guest_organiser.value.field == "organiser"
    assert not Meeting.objects.exists()


# --- changing ------------------------------------------------------------------------------


def test_an_attendee_changes_the_header_and_the_change_is_audited(
    client: Client, meeting: Meeting, alice: User, bob: User, dora: User
) -> None:
    client.force_login(bob)
    page = client.get(f"/minutes/{meeting.pk}/edit/").content.decode()
    assert "文書管理検討会議" in page
    assert "alice, bob" in page

    response = client.post(
        f"/minutes/{meeting.pk}/edit/",
        form(title="文書管理検討会議（第2回）", attendees="alice, bob", absentees="dora",
             start="10:00", end="11:00", place=meeting.place, agenda=meeting.agenda),
    )  # fmt: skip

    assert response.status_code == 302
    meeting.refresh_from_db()
    assert meeting.title == "文書管理検討会議（第2回）"
    assert list(meeting.absentees.all()) == [dora]
    assert meeting.organiser == alice  # an edit never moves the meeting
    [entry] = audited("minutes.meeting_changed")
    assert entry.actor_id == bob.pk
    assert entry.details["changed"] == ["title", "absentees"]
    assert entry.details["absentees"] == {"added": ["dora"], "removed": []}


def test_an_unchanged_header_writes_nothing(meeting: Meeting, alice: User, bob: User) -> None:
    assert do_change_meeting(meeting, user=alice, title=" 文書管理検討会議 ") == []
    assert do_change_meeting(meeting, user=alice, attendees=[bob, alice]) == []
    assert not audited("minutes.meeting_changed")


def test_a_bad_change_is_refused_with_400_and_nothing_changes(
    client: Client, meeting: Meeting, alice: User
) -> None:
    client.force_login(alice)

    response = client.post(
        f"/minutes/{meeting.pk}/edit/",
        form(title="新しい名前", attendees="alice, bob", absentees="bob"),
    )

    assert response.status_code == 400
    assert "出席者と欠席者の両方に入っている人がいます" in response.content.decode()
    meeting.refresh_from_db()
    assert meeting.title == "文書管理検討会議"
    assert not meeting.absentees.exists()
    assert not audited("minutes.meeting_changed")


def test_the_change_action_refuses_non_editors_and_unknown_fields(
    meeting: Meeting, charlie: User, alice: User
) -> None:
    from django.core.exceptions import PermissionDenied

    with pytest.raises(PermissionDenied):
        do_change_meeting(meeting, user=charlie, title="乗っ取り")
    with pytest.raises(TypeError, match="organiser"):
        do_change_meeting(meeting, user=alice, organiser=charlie)
    Minutes.objects.create(meeting=meeting, status=Minutes.Status.APPROVED)
    with pytest.raises(PermissionDenied):
        do_change_meeting(meeting, user=alice, title="承認後の変更")
    meeting.refresh_from_db()
    assert meeting.title == "文書管理検討会議"


# --- deleting ------------------------------------------------------------------------------


def _recording(meeting: Meeting, folder: Path, user: User) -> tuple[Path, Path]:
    """A recording stored as ``actions.recordings`` stores them (``meeting-<id>/``), its
    WAV beside it, and what an interrupted upload left."""
    (folder / f"meeting-{meeting.pk}").mkdir()
    original = folder / f"meeting-{meeting.pk}" / "rec.mp3"
    audio = folder / f"meeting-{meeting.pk}" / "rec.wav"
    original.write_bytes(b"ID3")
    audio.write_bytes(b"RIFF")
    (folder / f"meeting-{meeting.pk}" / ".abc.part").write_bytes(b"ID")
    Recording.objects.create(
        meeting=meeting,
        original_name="会議の録音.mp3",
        file_path=f"meeting-{meeting.pk}/rec.mp3",
        audio_path=f"meeting-{meeting.pk}/rec.wav",
        format="mp3",
        size_bytes=3,
        duration_ms=1000,
        sha256="0" * 64,
        uploaded_by=user,
    )
    return original, audio


def test_the_organiser_deletes_a_meeting_and_its_files_after_commit(
    client: Client,
    meeting: Meeting,
    alice: User,
    minutes_media: Path,
    django_capture_on_commit_callbacks: Any,
) -> None:
    original, audio = _recording(meeting, minutes_media, alice)
    keep = minutes_media / "other.wav"
    keep.write_bytes(b"RIFF")
    client.force_login(alice)
    confirm = client.get(f"/minutes/{meeting.pk}/delete/").content.decode()
    assert "録音 1 件" in confirm

    meeting_id = meeting.pk

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/minutes/{meeting.pk}/delete/")

    assert response.status_code == 302
    assert response["Location"] == "/minutes/"
    assert not Meeting.objects.filter(pk=meeting.pk).exists()
    assert not Recording.objects.exists()
    assert not original.exists()
    assert not audio.exists()
    assert not (minutes_media / f"meeting-{meeting_id}").exists()  # leftovers too
    assert keep.exists()
    [entry] = audited("minutes.meeting_deleted")
    assert entry.actor_id == alice.pk
    assert entry.details == {
        "title": "文書管理検討会議",
        "starts_at": MEETING_START.astimezone(dt.UTC).isoformat(),
        "recordings": 1,
    }


def test_files_stay_when_the_deletion_rolls_back(
    meeting: Meeting, alice: User, minutes_media: Path, django_capture_on_commit_callbacks: Any
) -> None:
    from django.db import transaction

    original, _audio = _recording(meeting, minutes_media, alice)
    meeting_id = meeting.pk

    def delete_then_fail() -> None:
        with transaction.atomic():
            do_delete_meeting(meeting, user=alice)
            raise RuntimeError("rolled back")

    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(RuntimeError),
    ):
        delete_then_fail()
    assert not callbacks
    assert original.exists()
    assert Meeting.objects.filter(pk=meeting_id).exists()


def test_only_the_organiser_deletes_and_never_approved_minutes(
    client: Client, meeting: Meeting, alice: User, bob: User
) -> None:
    client.force_login(bob)  # an attendee, not the organiser
    assert client.get(f"/minutes/{meeting.pk}/delete/").status_code == 403
    assert client.post(f"/minutes/{meeting.pk}/delete/").status_code == 403
    assert audited("auth.denied")[-1].details == {"what": "minutes.delete"}

    Minutes.objects.create(meeting=meeting, status=Minutes.Status.APPROVED)
    client.force_login(alice)
    assert client.post(f"/minutes/{meeting.pk}/delete/").status_code == 403
    assert Meeting.objects.filter(pk=meeting.pk).exists()
    assert not audited("minutes.meeting_deleted")


def test_a_meeting_being_transcribed_is_not_deleted(
    client: Client, meeting: Meeting, alice: User
) -> None:
    TranscriptionJob.objects.create(
        meeting=meeting, engine="pocketsphinx", status="running", requested_by=alice
    )
    client.force_login(alice)

    response = client.post(f"/minutes/{meeting.pk}/delete/")

    assert response.status_code == 409
    assert "文字起こしを中止してから削除してください" in response.content.decode()
    assert Meeting.objects.filter(pk=meeting.pk).exists()


# --- from a room booking -------------------------------------------------------------------


def test_it_prefills_a_meeting_from_a_room_booking(
    client: Client, ward: dict[str, Department], alice: User, bob: User
) -> None:
    booking = booking_for(alice, bob)
    client.force_login(bob)
    detail = client.get(f"/rooms/bookings/{booking.pk}/").content.decode()
    assert f'href="/minutes/booking/{booking.pk}/"' in detail
    assert "議事録を作成" in detail

    page = client.get(f"/minutes/booking/{booking.pk}/").content.decode()
    assert 'value="係内打合せ"' in page
    assert 'value="会議室301（本庁舎 3階）"' in page
    assert 'value="10:00"' in page
    assert 'value="11:00"' in page
    assert "alice, bob" in page
    assert 'value="alice"' in page  # Alice organised the booking, Bob makes the record

    day = clock.local(booking.starts_at).date().isoformat()
    response = client.post(
        f"/minutes/booking/{booking.pk}/",
        form(title="係内打合せ", date=day, start="10:00", end="11:00",
             place="会議室301（本庁舎 3階）", organiser="alice", attendees="alice, bob"),
    )  # fmt: skip

    meeting = Meeting.objects.get()
    assert response.status_code == 302
    assert meeting.booking == booking
    assert meeting.organiser == alice
    assert meeting.created_by == bob
    assert meeting.starts_at == booking.starts_at
    assert audited("minutes.meeting_created")[0].details["booking_id"] == booking.pk
    again = client.get(f"/minutes/booking/{booking.pk}/").content.decode()
    assert "この予約から登録済みの会議があります" in again


def test_a_booking_the_user_cannot_see_gives_404(
    client: Client, alice: User, bob: User, charlie: User
) -> None:
    booking = booking_for(alice, bob, private=True)
    client.force_login(charlie)

    assert client.get(f"/minutes/booking/{booking.pk}/").status_code == 404
    assert client.post(f"/minutes/booking/{booking.pk}/", form()).status_code == 404
    assert client.get("/minutes/booking/999999/").status_code == 404
    assert not Meeting.objects.exists()


# --- my meetings -----------------------------------------------------------------------------


def _meeting(user: User, title: str, days: int) -> Meeting:
    start = MEETING_START - dt.timedelta(days=days)
    return do_create_meeting(
        user=user, title=title, starts_at=start, ends_at=start + dt.timedelta(hours=1)
    )


def test_home_shows_where_each_record_stands_newest_first(
    client: Client, alice: User, django_assert_max_num_queries: Any
) -> None:
    empty = _meeting(alice, "録音前の会議", 1)
    recorded = _meeting(alice, "録音済の会議", 2)
    Recording.objects.create(
        meeting=recorded, original_name="a.wav", file_path="a.wav", format="wav",
        size_bytes=1, duration_ms=1, sha256="0" * 64, uploaded_by=alice,
    )  # fmt: skip
    running = _meeting(alice, "文字起こし中の会議", 3)
    TranscriptionJob.objects.create(
        meeting=running, engine="pocketsphinx", status="running", requested_by=alice,
        audio_ms_total=1000, audio_ms_done=400,
    )  # fmt: skip
    transcribed = _meeting(alice, "文字起こし済の会議", 4)
    Segment.objects.create(meeting=transcribed, start_ms=0, end_ms=1, text="はい", recognised=True)
    states = {"draft": 5, "review": 6, "approved": 7}
    for status, days in states.items():
        Minutes.objects.create(meeting=_meeting(alice, f"議事録{status}", days), status=status)
    client.force_login(alice)

    # The session and the user (with savepoints), the roles, the 所属, the count, the
    # meetings with their minutes, the running jobs, the attendance, the navigation's
    # roles and staff profile: none per meeting.
    with django_assert_max_num_queries(20):
        page = client.get("/minutes/").content.decode()

    labels = [
        "録音なし", "録音あり", "文字起こし中 40%", "文字起こし済", "議事録 作成中", "確認依頼",
        "承認済",
    ]  # fmt: skip
    positions = [page.index(f">{label}<") for label in labels]
    assert positions == sorted(positions)  # newest first, one label per meeting
    assert page.index(empty.title) < page.index(recorded.title)


def test_home_is_paginated(client: Client, alice: User) -> None:
    for n in range(23):
        _meeting(alice, f"定例会議{n:02d}", n)
    client.force_login(alice)

    first = client.get("/minutes/").content.decode()
    second = client.get("/minutes/?page=2").content.decode()

    assert "定例会議00" in first
    assert "定例会議19" in first
    assert "定例会議20" not in first
    assert "定例会議22" in second
    assert "2 / 2 ページ" in second
    assert client.get("/minutes/?page=abc").status_code == 200


def test_the_navigation_leads_to_the_minutes(client: Client, alice: User) -> None:
    client.force_login(alice)
    page = client.get("/").content.decode()
    assert 'href="/minutes/"' in page


# --- demo ------------------------------------------------------------------------------------


def test_the_demo_meetings_are_loaded_once(db: None) -> None:
    from yakuba.directory.demo_data import do_load_demo
    from yakuba.minutes.access import may_read_meeting
    from yakuba.minutes.demo import DemoMinutesError, load_demo_minutes

    with pytest.raises(DemoMinutesError):
        load_demo_minutes()
    do_load_demo(staff_count=30)

    first = load_demo_minutes()
    second = load_demo_minutes()

    assert len(first.created) == 3
    assert second.created == []
    assert Meeting.objects.count() == 3
    statuses = set(Minutes.objects.values_list("status", flat=True))
    assert statuses == {"draft", "review", "approved"}
    for meeting in Meeting.objects.all():
        segments = list(meeting.segments.all())
        assert segments
        assert all(s.speaker is not None and s.engine == "demo" and s.text for s in segments)
        assert may_read_meeting(meeting.organiser, meeting)
    shokuin = User.objects.get(username="shokuin")
    assert all(may_read_meeting(shokuin, meeting) for meeting in Meeting.objects.all())
    assert len(audited("minutes.meeting_created")) == 3


# --- admin -----------------------------------------------------------------------------------


def test_the_admin_shows_the_minutes_read_only_to_it_administrators(
    client: Client, ward: dict[str, Department], meeting: Meeting, alice: User
) -> None:
    from yakuba.directory.actions.staff import do_grant_role
    from yakuba.directory.models import Role
    from yakuba.minutes.models import DictionaryEntry

    ida = make_staff("ida", "井田", "一郎", ward["somu_ka"], number="30001")
    do_grant_role(ida, Role.IT_ADMIN, acting_user=Actor.system("test"))
    entry = DictionaryEntry.objects.create(term="文書係", kind="department")
    Minutes.objects.create(meeting=meeting)
    client.force_login(ida)

    for model in ("meeting", "transcriptionjob", "minutes", "dictionaryentry"):
        assert client.get(f"/admin/minutes/{model}/").status_code == 200, model
    page = client.get(f"/admin/minutes/meeting/{meeting.pk}/change/")
    assert page.status_code == 200
    assert "文書管理検討会議" in page.content.decode()
    assert client.get(f"/admin/minutes/dictionaryentry/{entry.pk}/change/").status_code == 200
    # Writes go through the minutes actions (audit, files, events), never the admin.
    assert client.get("/admin/minutes/meeting/add/").status_code == 403
    response = client.post(f"/admin/minutes/meeting/{meeting.pk}/change/", {"title": "改名"})
    assert response.status_code == 403
    assert (
        client.post(f"/admin/minutes/meeting/{meeting.pk}/delete/", {"post": "yes"}).status_code
        == 403
    )
    meeting.refresh_from_db()
    assert meeting.title == "文書管理検討会議"
    client.force_login(alice)
    assert client.get("/admin/minutes/meeting/").status_code in (302, 403)


def test_the_overview_links_to_the_transcript_and_minutes_and_home_to_dictionary_and_search(
    client: Client, meeting: Meeting, bob: User
) -> None:
    """The links are only drawn when their address resolves: check they really are."""
    client.force_login(bob)

    overview = client.get(f"/minutes/{meeting.pk}/").content.decode()
    home = client.get("/minutes/").content.decode()

    assert f'href="/minutes/{meeting.pk}/transcript/"' in overview
    assert f'href="/minutes/{meeting.pk}/minutes/"' in overview
    assert 'href="/minutes/dictionary/"' in home
    assert 'href="/minutes/search/"' in home
    for address in (f"/minutes/{meeting.pk}/transcript/", f"/minutes/{meeting.pk}/minutes/"):
        assert client.get(address).status_code == 200
    assert client.get("/minutes/dictionary/").status_code == 200
    assert client.get("/minutes/search/").status_code == 200
