"""Live occupancy end to end: a check-in on the door panel (a tablet paired with a
token) turns the room's card on a staff member's floor board to 使用中 within seconds,
without a reload, through the floor's real-time topic."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.helpers import sign_in, wait_for
from tests.browser.test_pages import AXE_RUN
from tests.rooms.conftest import NOW, at, book
from yakuba.directory.models import Department, Role, RoleGrant, User
from yakuba.lib import clock
from yakuba.rooms.actions.panel import do_pair_panel
from yakuba.rooms.models import Building, Floor, Room

from ..conftest import make_staff

pytestmark = pytest.mark.browser


@pytest.fixture
def door(ward: dict[str, Department], alice: User) -> Iterator[tuple[Room, str]]:
    """会議室301 on 3階 with Alice's 10:00–11:00 booking, the clock at 10:05 (she has
    not checked in), and its door panel paired by Dave, the facility manager."""
    with clock.frozen_at(NOW):
        building = Building.objects.create(code="HQ", name="本庁舎")
        floor = Floor.objects.create(building=building, name="3階", level=3)
        room = Room.objects.create(floor=floor, code="R301", name="会議室301", capacity=8)
        Room.objects.create(floor=floor, code="R302", name="会議室302", capacity=8)
        book(room, alice, at(11, "10:00"), at(11, "11:00"), title="予算ヒアリング")
        clock.advance(dt.timedelta(minutes=65))
        dave = make_staff("dave", "土井", "大", ward["somu_ka"], number="10009")
        RoleGrant.objects.create(user=dave, role=Role.FACILITY_MANAGER)
        yield room, do_pair_panel(room, acting_user=dave)


def test_a_check_in_on_the_panel_turns_the_board_card_in_use(
    page: Any, chromium: Any, live_url: str, bob: User, door: tuple[Room, str]
) -> None:
    room, token = door
    sign_in(page, "bob")
    page.goto(f"/rooms/board/?floor={room.floor_id}")
    page.wait_for_selector("body[data-realtime-state=ready]")
    # The "watching" answer makes the board refetch once: the topic is watched now.
    wait_for(page, "document.querySelector('[data-room-board]').dataset.refreshedAt")
    card = '[data-room="R301"]'
    assert page.get_attribute(card, "data-state") == "booked"
    page.evaluate("() => { window.notReloaded = true; }")

    tablet_context = chromium.new_context(
        viewport={"width": 1280, "height": 800}, locale="ja-JP", base_url=live_url
    )
    try:
        tablet = tablet_context.new_page()
        tablet.goto("/rooms/panel/")
        tablet.get_by_label("パネル用トークン").fill(token)
        tablet.get_by_role("button", name="登録する").click()
        tablet.get_by_role("button", name="チェックイン").click()
        tablet.wait_for_selector("#panel-content[data-state=in_use]")
        assert "チェックインしました" in tablet.inner_text("#panel-content")
    finally:
        tablet_context.close()

    wait_for(page, f"document.querySelector('{card}').dataset.state === 'in_use'", timeout=5)
    assert "使用中" in page.inner_text(card)
    assert page.evaluate("() => window.notReloaded === true")
    assert page.get_attribute('[data-room="R302"]', "data-state") == "free"


@pytest.mark.bypass_csp  # axe-core is injected as an inline script
def test_the_board_panel_and_qr_pages_meet_wcag2_aa(
    page: Any,
    chromium: Any,
    live_url: str,
    alice: User,
    door: tuple[Room, str],
    axe_source: Path,
) -> None:
    room, token = door
    failures: list[str] = []

    def audit(tab: Any, label: str) -> None:
        tab.add_script_tag(path=str(axe_source))
        for violation in tab.evaluate(AXE_RUN):
            failures.append(f"{label}: {violation['id']} {violation['help']} {violation['nodes']}")

    sign_in(page, "alice")
    for path in (
        f"/rooms/board/?floor={room.floor_id}",
        f"/rooms/checkin/{room.checkin_secret}/",
    ):
        page.goto(path)
        audit(page, path)
    tablet_context = chromium.new_context(
        viewport={"width": 1280, "height": 800}, locale="ja-JP", base_url=live_url, bypass_csp=True
    )
    try:
        tablet = tablet_context.new_page()
        tablet.goto("/rooms/panel/")
        audit(tablet, "pairing form")
        tablet.get_by_label("パネル用トークン").fill(token)
        tablet.get_by_role("button", name="登録する").click()
        tablet.wait_for_selector("#panel-content")
        audit(tablet, "panel")
    finally:
        tablet_context.close()
    assert not failures, "\n".join(failures)
