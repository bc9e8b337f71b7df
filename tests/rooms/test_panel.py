"""The door panel: pairing, cookie sign-in, a revoked token, the buttons, and check-in
by the QR code on the door."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.management import call_command
from django.test import Client

from yakuba.audit.models import AuditEntry
from yakuba.directory.actions.auth import do_create_token, do_revoke_token
from yakuba.directory.models import ApiToken, User
from yakuba.lib import clock
from yakuba.rooms.actions.panel import do_pair_panel
from yakuba.rooms.models import Booking, Room

from .conftest import at, book

pytestmark = pytest.mark.django_db


def paired_client(room: Room, dave: User) -> tuple[Client, str]:
    raw = do_pair_panel(room, acting_user=dave)
    tablet = Client()
    response = tablet.post("/rooms/panel/", {"token": raw})
    assert response.status_code == 302
    return tablet, raw


def test_a_facility_manager_pairs_a_panel_and_sees_the_token_once(
    client: Client, frozen_now: dt.datetime, rooms: dict[str, Room], dave: User
) -> None:
    client.force_login(dave)
    page = client.get(f"/rooms/panel/pair/{rooms['r301'].pk}/")
    assert "パネル用トークンを発行する" in page.content.decode()
    response = client.post(f"/rooms/panel/pair/{rooms['r301'].pk}/")
    html = response.content.decode()
    assert response.status_code == 200
    token = ApiToken.objects.get(user__username="panel-r301", revoked_at__isnull=True)
    assert token.scopes == ["rooms.panel"]
    assert f"ykb_{token.prefix}_" in html
    assert (
        response["Cache-Control"].startswith("max-age=0") or "no-cache" in response["Cache-Control"]
    )
    rooms["r301"].refresh_from_db()
    assert rooms["r301"].panel_device is not None
    assert rooms["r301"].panel_device.kind == User.Kind.DEVICE
    assert AuditEntry.objects.filter(action="rooms.panel_paired", actor_id=dave.pk).exists()
    # Shown once: the page does not show it again.
    assert (
        f"ykb_{token.prefix}_"
        not in client.get(f"/rooms/panel/pair/{rooms['r301'].pk}/").content.decode()
    )


def test_staff_who_are_not_facility_managers_cannot_pair(
    client: Client, frozen_now: dt.datetime, rooms: dict[str, Room], alice: User
) -> None:
    client.force_login(alice)
    assert client.post(f"/rooms/panel/pair/{rooms['r301'].pk}/").status_code == 403
    assert client.get(f"/rooms/{rooms['r301'].pk}/qr/").status_code == 403
    assert not ApiToken.objects.exists()
    assert AuditEntry.objects.filter(action="auth.denied", actor_id=alice.pk).count() == 2


def test_the_panel_signs_in_with_a_cookie_and_re_pairing_revokes_the_old_one(
    frozen_now: dt.datetime, rooms: dict[str, Room], dave: User
) -> None:
    tablet, raw = paired_client(rooms["r301"], dave)
    cookie = tablet.cookies["yakuba_panel"]
    assert cookie.value == raw
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Strict"
    assert int(cookie["max-age"]) == 365 * 24 * 3600
    page = tablet.get("/rooms/panel/").content.decode()
    assert "会議室301" in page
    assert 'hx-trigger="every 10s"' in page
    assert "<svg" in page  # the QR code for phones
    # Re-pairing (the shell command) revokes the old token: back to the pairing form.
    call_command("panel_token", "r301")
    page = tablet.get("/rooms/panel/").content.decode()
    assert "パネル用トークン" in page
    assert "無効になりました" in page
    fragment = tablet.get("/rooms/panel/content/")
    assert fragment.status_code == 401
    assert fragment["HX-Redirect"] == "/rooms/panel/"


def test_a_wrong_or_revoked_token_is_refused(
    frozen_now: dt.datetime, rooms: dict[str, Room], dave: User
) -> None:
    tablet = Client()
    response = tablet.post("/rooms/panel/", {"token": "ykb_00000000_nope"})
    assert response.status_code == 400
    assert "トークンが正しくない" in response.content.decode()
    assert "yakuba_panel" not in response.cookies
    raw = do_pair_panel(rooms["r301"], acting_user=dave)
    do_revoke_token(ApiToken.objects.get(revoked_at__isnull=True), acting_user=dave)
    assert tablet.post("/rooms/panel/", {"token": raw}).status_code == 400
    # A token without the panel scope (a staff member's own) signs in no panel.
    _token, staff_raw = do_create_token(
        dave, name="bot", scopes=["realtime"], expires_at=None, acting_user=dave
    )
    assert tablet.post("/rooms/panel/", {"token": staff_raw}).status_code == 400
    assert tablet.post("/rooms/panel/action/", {"action": "end"}).status_code == 401


def test_the_panel_buttons_act_as_the_device(
    frozen_now: dt.datetime, rooms: dict[str, Room], alice: User, dave: User
) -> None:
    room = rooms["r301"]
    booking = book(room, alice, at(11, "09:10"), at(11, "10:00"))
    book(room, alice, at(11, "10:30"), at(11, "11:00"))
    tablet, _raw = paired_client(room, dave)
    device = User.objects.get(username="panel-r301")
    page = tablet.get("/rooms/panel/").content.decode()
    assert "チェックイン" in page
    assert "今すぐ開始" not in page
    with clock.frozen_at(at(11, "09:12")):
        done = tablet.post("/rooms/panel/action/", {"action": "check_in"}, HTTP_HX_REQUEST="true")
        assert "チェックインしました" in done.content.decode()
        assert 'data-state="in_use"' in done.content.decode()
        extended = tablet.post("/rooms/panel/action/", {"action": "extend", "minutes": "30"})
        assert extended.status_code == 302
        refused = tablet.post(
            "/rooms/panel/action/", {"action": "extend", "minutes": "15"}, HTTP_HX_REQUEST="true"
        )
        assert refused.status_code == 409
        assert "10:30〜11:00" in refused.content.decode()
        bad = tablet.post("/rooms/panel/action/", {"action": "extend", "minutes": "45"})
        assert bad.status_code == 400
        assert "延長する時間を選んでください" in bad.content.decode()
        ended = tablet.post("/rooms/panel/action/", {"action": "end"}, HTTP_HX_REQUEST="true")
        assert 'data-state="free"' in ended.content.decode()
        started = tablet.post(
            "/rooms/panel/action/", {"action": "start_now", "minutes": "15"}, HTTP_HX_REQUEST="true"
        )
        assert "15分間の利用を開始しました" in started.content.decode()
    booking.refresh_from_db()
    assert booking.checked_in_by == device
    assert booking.check_in_method == Booking.CheckInMethod.PANEL
    assert booking.ends_at == at(11, "09:12")
    for action in (
        "rooms.checked_in",
        "rooms.extended",
        "rooms.ended_early",
        "rooms.booking_created",
    ):
        assert AuditEntry.objects.filter(action=action, actor_id=device.pk).exists(), action
    assert Booking.objects.get(check_in_method=Booking.CheckInMethod.START_NOW).organiser == device


def test_it_checks_in_by_qr_for_the_bookings_people_only(
    client: Client,
    frozen_now: dt.datetime,
    rooms: dict[str, Room],
    alice: User,
    bob: User,
    charlie: User,
) -> None:
    room = rooms["r301"]
    booking = book(
        room,
        alice,
        at(11, "09:10"),
        at(11, "10:00"),
        attendees=[bob],
        title="秘密の件",
        is_private=True,
    )
    url = f"/rooms/checkin/{room.checkin_secret}/"
    client.force_login(charlie)
    page = client.get(url).content.decode()
    assert "予約あり" in page
    assert "秘密の件" not in page
    refused = client.post(url)
    assert refused.status_code == 403
    assert "主催者・予約者・出席者だけ" in refused.content.decode()
    assert AuditEntry.objects.filter(
        action="auth.denied", actor_id=charlie.pk, details__what="rooms.checkin"
    ).exists()
    booking.refresh_from_db()
    assert booking.checked_in_at is None
    assert client.get("/rooms/checkin/wrong-secret/").status_code == 404

    client.force_login(bob)
    assert "秘密の件" in client.get(url).content.decode()
    done = client.post(url)
    assert done.status_code == 200
    assert "チェックインしました" in done.content.decode()
    booking.refresh_from_db()
    assert booking.checked_in_by == bob
    assert booking.check_in_method == Booking.CheckInMethod.QR


def test_the_printable_qr_page_encodes_the_check_in_url(
    client: Client, frozen_now: dt.datetime, rooms: dict[str, Room], dave: User
) -> None:
    client.force_login(dave)
    response = client.get(f"/rooms/{rooms['r301'].pk}/qr/")
    html = response.content.decode()
    assert response.status_code == 200
    assert "<svg" in html
    assert f"/rooms/checkin/{rooms['r301'].checkin_secret}/" in html


def test_a_phone_checks_in_to_its_own_booking_behind_a_running_no_show(
    client: Client, rooms: dict[str, Room], alice: User, charlie: User
) -> None:
    room = rooms["r301"]
    room.auto_release = False  # charlie's no-show holds the room until it ends
    room.save(update_fields=["auto_release"])
    with clock.frozen_at(at(11, "08:00")):
        no_show = book(room, charlie, at(11, "09:00"), at(11, "09:30"), title="charlieの会議")
        mine = book(room, alice, at(11, "09:30"), at(11, "10:30"), title="aliceの会議")
    url = f"/rooms/checkin/{room.checkin_secret}/"
    client.force_login(alice)

    with clock.frozen_at(at(11, "09:20")):
        page = client.get(url).content.decode()
        done = client.post(url)

    assert "aliceの会議" in page
    assert "charlieの会議" not in page
    assert done.status_code == 200
    assert "チェックインしました" in done.content.decode()
    mine.refresh_from_db()
    no_show.refresh_from_db()
    assert mine.checked_in_by == alice
    assert no_show.checked_in_at is None
    assert not AuditEntry.objects.filter(action="auth.denied", actor_id=alice.pk).exists()
