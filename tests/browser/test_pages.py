"""Every page, checked in Chromium: accessibility (JIS X 8341-3:2016 AA, through
axe-core's WCAG 2.0 A and AA rules) and the closed-network rule (no request leaves the
server's own origin, and nothing the pages need is refused by the CSP)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.browser.helpers import sign_in
from tests.browser.pages import page_paths
from tests.conftest import make_staff
from yakuba.directory.actions.auth import do_create_token
from yakuba.directory.actions.staff import do_grant_role
from yakuba.directory.models import Department, Role, User
from yakuba.lib import clock
from yakuba.minutes.actions.meetings import do_create_meeting
from yakuba.minutes.models import DictionaryEntry, Recording, Segment, Speaker, TranscriptionJob
from yakuba.rooms.actions.booking import BookingRequest, check_create_booking
from yakuba.rooms.models import Booking, Building, Floor, Room

pytestmark = pytest.mark.browser

# Routes with parameters that are actions (POST only), not pages.
NOT_PAGES_WITH_PARAMETERS = {"account/admin/users/<int:user_id>/<slug:operation>/"}
# Pages that must be among those found (the walk finds the rest by itself).
MUST_CHECK = ("/", "/login/", "/account/", "/directory/", "/audit/", "/no-such-page/")

AXE_RUN = """async () => {
  const result = await axe.run(document, {runOnly: {type: "tag", values: ["wcag2a", "wcag2aa"]}});
  return result.violations.map(v => ({
    id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.slice(0, 5).map(n => n.target.join(" ") + " :: " + n.failureSummary)
  }));
}"""


@pytest.fixture
def erin(ward: dict[str, Department], alice: User) -> User:
    """Erin holds every role, so that every page shows her all it has."""
    user = make_staff("erin", "江藤", "恵理", ward["somu_ka"], number="10100", title="課長")
    for role in Role:
        department = ward["somu_ka"] if role == Role.SECTION_HEAD else None
        do_grant_role(user, role, department=department, acting_user=None)
    return user


@pytest.fixture
def visits(erin: User, alice: User, charlie: User) -> list[tuple[str | None, str]]:
    """(who signs in, path) for every page: anonymous pages, every page as Erin, a page
    Charlie may not see (the 403 page) and an unknown address (the 404 page)."""
    room, booking = _room_and_booking(erin)
    samples = {
        "employee_number": "10001",
        "user_id": str(alice.pk),
        "code": "111",
        "token_id": str(_token_for(alice)),
        "room_id": str(room.pk),
        "booking_id": str(booking.pk),
        "secret": room.checkin_secret,
        **_minutes_samples(erin, alice),
    }
    # New pages with parameters: add a sample for each parameter here.
    paths, skipped = page_paths(samples)
    unknown = sorted(set(skipped) - NOT_PAGES_WITH_PARAMETERS)
    assert not unknown, (
        f"routes with parameters this test cannot fill: {unknown}. Give each parameter a "
        "sample value (a persona's object) in visits(), or, for a POST-only action, add the "
        "route to NOT_PAGES_WITH_PARAMETERS."
    )
    return [
        (None, "/login/"),
        (None, "/no-such-page/"),
        *(("erin", path) for path in paths),
        # Pages with results and with a form error, not only their empty state.
        ("erin", "/directory/?q=青木"),
        ("erin", "/audit/?person=alice"),
        ("erin", "/audit/?date_from=2025-04-02&date_to=2025-04-01"),
        ("charlie", "/directory/import/"),
        ("charlie", "/audit/"),
    ]


def _room_and_booking(user: User) -> tuple[Room, Booking]:
    """A room with a booking tomorrow morning (an approval room: the booking is pending,
    so the approval page has something to show)."""
    building = Building.objects.create(code="HQ", name="本庁舎")
    floor = Floor.objects.create(building=building, name="3階", level=3)
    room = Room.objects.create(
        floor=floor, code="R301", name="会議室301", capacity=8, requires_approval=True
    )
    start = dt.datetime.combine(
        clock.today() + dt.timedelta(days=1), dt.time(10), tzinfo=clock.TOKYO
    )
    request = BookingRequest(
        room=room,
        starts_at=start,
        ends_at=start + dt.timedelta(hours=1),
        title="打合せ",
        organiser=user,
    )
    return room, check_create_booking(request, acting_user=user)


def _minutes_samples(user: User, attendee: User) -> dict[str, str]:
    """A meeting Erin organised, with a recording, a finished transcription (one
    segment, one speaker) and a ward dictionary entry: the minutes pages with content."""
    start = dt.datetime.combine(clock.today(), dt.time(10), tzinfo=clock.TOKYO)
    meeting = do_create_meeting(
        user=user,
        title="文書管理検討会議",
        starts_at=start,
        ends_at=start + dt.timedelta(hours=1),
        place="本庁舎3階 会議室301",
        attendees=[user, attendee],
        agenda="文書保存年限の見直し",
    )
    recording = Recording.objects.create(
        meeting=meeting,
        original_name="会議.wav",
        file_path="missing.wav",
        format="wav",
        size_bytes=44,
        duration_ms=1000,
        sha256="0" * 64,
        uploaded_by=user,
    )
    job = TranscriptionJob.objects.create(
        meeting=meeting, engine="pocketsphinx", status="done", requested_by=user
    )
    speaker = Speaker.objects.create(meeting=meeting, label="話者1", user=user)
    segment = Segment.objects.create(
        meeting=meeting,
        recording=recording,
        job=job,
        speaker=speaker,
        start_ms=0,
        end_ms=900,
        text="文書の保存年限を見直します。",
        recognised=True,
    )
    entry = DictionaryEntry.objects.create(
        term="文書係", reading="ぶんしょがかり", kind="department"
    )
    return {
        "meeting_id": str(meeting.pk),
        "recording_id": str(recording.pk),
        "job_id": str(job.pk),
        "segment_id": str(segment.pk),
        "speaker_id": str(speaker.pk),
        "entry_id": str(entry.pk),
    }


def _token_for(user: User) -> int:
    token, _raw = do_create_token(
        user, name="端末", scopes=["api:read"], expires_at=None, acting_user=user
    )
    return int(token.pk)


def walk(
    page: Any,
    visits: list[tuple[str | None, str]],
    check: Callable[[str], None],
    *,
    wait_until: str = "load",
) -> list[str]:
    """Visit every page as its user, call ``check(label)`` on each HTML page, and return
    the paths of the pages checked."""
    signed_in_as: str | None = None
    checked: list[str] = []
    for who, path in visits:
        if who != signed_in_as:
            page.context.clear_cookies()
            if who is not None:
                sign_in(page, who)
            signed_in_as = who
        # Ask first (with the tab's cookies): a POST-only action answers 405 with no body,
        # which Chromium shows as a network error, and downloads are not pages.
        probe = page.request.get(path)
        if probe.status == 405 or "text/html" not in probe.headers.get("content-type", ""):
            continue
        response = page.goto(path, wait_until=wait_until)
        status = response.status if response is not None else "?"
        check(f"{who or 'anonymous'} {path} → {page.url} ({status})")
        checked.append(path)
    return checked


@pytest.mark.bypass_csp  # axe-core is injected as an inline script
def test_it_meets_wcag2_aa_on_every_page(
    page: Any, visits: list[tuple[str | None, str]], axe_source: Path
) -> None:
    failures: list[str] = []

    def audit(label: str) -> None:
        page.add_script_tag(path=str(axe_source))
        for violation in page.evaluate(AXE_RUN):
            failures.append(
                f"{label}: {violation['id']} ({violation['impact']}) {violation['help']}\n    "
                + "\n    ".join(violation["nodes"])
            )

    checked = walk(page, visits, audit)
    assert set(MUST_CHECK) <= set(checked), f"pages not checked: {set(MUST_CHECK) - set(checked)}"
    assert not failures, "accessibility violations:\n" + "\n".join(failures)


def test_it_never_requests_anything_from_another_host(
    page: Any, live_url: str, visits: list[tuple[str | None, str]]
) -> None:
    own = urlsplit(live_url).netloc
    foreign: list[str] = []
    seen: list[str] = []

    def record(request: Any) -> None:
        # Runs in Playwright's thread: only record.
        seen.append(request.url)

    def note_refusal(message: Any) -> None:
        if "Content Security Policy" in message.text:
            refused.append(message.text)

    refused: list[str] = []
    page.on("request", record)
    page.on("console", note_refusal)
    # networkidle: also what scripts fetch after the page has loaded.
    checked = walk(page, visits, lambda label: None, wait_until="networkidle")
    for url in list(seen):
        parts = urlsplit(url)
        if parts.scheme in {"data", "blob", "about"}:
            continue
        if parts.netloc != own:
            foreign.append(url)
    assert set(MUST_CHECK) <= set(checked)
    assert any(url.endswith("/static/yakuba/yakuba.css") for url in seen)
    assert any(url.endswith("/static/yakuba/vendor/htmx.min.js") for url in seen)
    assert not foreign, f"requests to other hosts: {foreign}"
    # Nothing a page needs is refused by the Content-Security-Policy either.
    assert not refused, f"refused by the Content-Security-Policy: {refused}"
