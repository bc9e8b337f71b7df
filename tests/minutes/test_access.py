"""Who may do what with a meeting's record, for every address of the minutes app.

The personas around 「文書管理検討会議」 (organised by Alice in 総務課 文書係):
- alice: the organiser;
- bob: an attendee (staff);
- gina: a guest (庁外) who attended: she reads that meeting only;
- fumi: a member of 文書係 who did not attend: she reads;
- dora: 所属長 of 文書係: she reads and approves, but did not attend so does not edit;
- erin: an auditor (監査) elsewhere: she reads everything and edits nothing;
- charlie: staff of 戸籍住民課: refused (403), and the refusal is audited;
- anonymous: sent to the login page.

Each address is reversed by name with sample values for its parameters; a name that is
not registered yet is skipped, and an address nobody classified here still has to refuse
Charlie and anonymous visitors.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.urls import URLPattern, reverse

from tests.conftest import make_staff
from yakuba.audit.models import AuditEntry
from yakuba.audit.record import Actor
from yakuba.directory.actions.staff import do_invite_guest
from yakuba.directory.models import Department, User
from yakuba.lib import clock
from yakuba.minutes import urls as minutes_urls
from yakuba.minutes.models import (
    DictionaryEntry,
    Meeting,
    Minutes,
    Recording,
    Segment,
    Speaker,
    TranscriptionJob,
)
from yakuba.rooms.actions.booking import BookingRequest, check_create_booking
from yakuba.rooms.models import Building, Floor, Room

from .conftest import MEETING_START

pytestmark = pytest.mark.django_db

PERSONAS = ("alice", "bob", "gina", "fumi", "dora", "erin", "charlie")
OK, DENIED = "ok", "denied"


@dataclass(frozen=True)
class Rule:
    """How one address answers each persona: ``OK`` or ``DENIED`` (403, audited).
    ``exact``: the status an allowed persona gets (None: anything but 403, a login
    redirect or a server error, e.g. a 400 for the empty form a test posts).
    ``edits``: refused to everyone once the minutes are approved."""

    method: str
    allowed: frozenset[str]
    exact: int | None = None
    edits: bool = False

    def expected(self, persona: str) -> str:
        return OK if persona in self.allowed else DENIED


def rule(method: str, *who: str, exact: int | None = None, edits: bool = False) -> Rule:
    return Rule(method, frozenset(who), exact, edits)


EVERYONE = PERSONAS
STAFF = ("alice", "bob", "fumi", "dora", "erin", "charlie")
READERS = ("alice", "bob", "gina", "fumi", "dora", "erin")
EDITORS = ("alice", "bob")
APPROVERS = ("alice", "dora")
DICTIONARY_MANAGERS = ("dora",)  # 所属長 (and IT administrators)

READ = rule("GET", *READERS, exact=200)
READ_DOWNLOAD = rule("GET", *READERS)
EDIT = rule("POST", *EDITORS, edits=True)
EDIT_PAGE = rule("GET", *EDITORS, exact=200, edits=True)

# (URL name, method) → rule.  Names with GET and POST are listed once per method.
MATRIX: dict[tuple[str, str], Rule] = {
    # meetings (H6)
    ("home", "GET"): rule("GET", *EVERYONE, exact=200),
    ("create", "GET"): rule("GET", *STAFF, exact=200),
    ("create", "POST"): rule("POST", *STAFF),
    ("from_booking", "GET"): rule("GET", *STAFF, exact=200),
    ("meeting", "GET"): READ,
    ("edit_meeting", "GET"): EDIT_PAGE,
    ("edit_meeting", "POST"): EDIT,
    ("delete_meeting", "GET"): rule("GET", "alice", exact=200, edits=True),
    # recordings and transcription (H2)
    ("upload", "POST"): EDIT,
    ("delete_recording", "POST"): EDIT,
    ("recording_audio", "GET"): READ,
    ("transcribe", "POST"): EDIT,
    ("cancel_job", "POST"): EDIT,
    ("job_status", "GET"): READ,
    # transcript editor and dictionary (H3)
    ("transcript", "GET"): READ,
    ("transcript_segments", "GET"): READ,
    ("transcript_edit", "POST"): EDIT,
    ("transcript_merge", "POST"): EDIT,
    ("transcript_split", "POST"): EDIT,
    ("transcript_speaker", "POST"): EDIT,
    ("speakers", "GET"): READ,
    ("speakers", "POST"): EDIT,
    ("speaker_rename", "POST"): EDIT,
    ("dictionary", "GET"): rule("GET", *STAFF, exact=200),
    ("dictionary", "POST"): rule("POST", *DICTIONARY_MANAGERS),
    ("dictionary_import", "GET"): rule("GET", *DICTIONARY_MANAGERS, exact=200),
    ("dictionary_export", "GET"): rule("GET", *DICTIONARY_MANAGERS, exact=200),
    ("dictionary_entry", "GET"): rule("GET", *DICTIONARY_MANAGERS, exact=200),
    ("dictionary_active", "POST"): rule("POST", *DICTIONARY_MANAGERS),
    ("dictionary_delete", "POST"): rule("POST", *DICTIONARY_MANAGERS),
    # the minutes document (H4)
    ("document", "GET"): READ,
    ("document", "POST"): EDIT,
    ("summarise", "POST"): EDIT,
    ("request_review", "POST"): EDIT,
    ("return_minutes", "POST"): rule("POST", *APPROVERS),
    ("approve_minutes", "POST"): rule("POST", *APPROVERS),
    ("comment_minutes", "POST"): rule("POST", "alice", "bob", "dora"),
    ("export_docx", "GET"): READ_DOWNLOAD,
    ("export_pdf", "GET"): READ_DOWNLOAD,
    ("search", "GET"): rule("GET", *EVERYONE, exact=200),
}


def registered() -> dict[str, URLPattern]:
    return {p.name: p for p in minutes_urls.urlpatterns if p.name}


CLASSIFIED = sorted({name for name, _method in MATRIX})
UNCLASSIFIED = sorted(set(registered()) - set(CLASSIFIED))


@pytest.fixture
def people(
    ward: dict[str, Department],
    meeting: Meeting,
    alice: User,
    bob: User,
    charlie: User,
    dora: User,
    erin: User,
) -> dict[str, User]:
    fumi = make_staff("fumi", "藤田", "文", ward["bunsho"], number="10020", kana=("ふじた", "ふみ"))
    gina = do_invite_guest(
        name="五味 ジーナ",
        organisation="みどり交通株式会社",
        email="gina@bus.example.jp",
        expires_at=clock.now() + dt.timedelta(days=30),
        username="gina",
        password="not-used-here-1234",
        acting_user=Actor.system("test"),
    )
    meeting.attendees.add(gina)
    return {
        "alice": alice,
        "bob": bob,
        "gina": gina,
        "fumi": fumi,
        "dora": dora,
        "erin": erin,
        "charlie": charlie,
    }


@pytest.fixture
def samples(meeting: Meeting, people: dict[str, User], minutes_media: Path) -> dict[str, int]:
    """A value for every URL parameter: the meeting's recording, job, segment and speaker,
    a room booking of Alice's, a dictionary entry."""
    alice = people["alice"]
    (minutes_media / "rec.wav").write_bytes(b"RIFF" + b"\0" * 40)
    recording = Recording.objects.create(
        meeting=meeting,
        original_name="録音.wav",
        file_path="rec.wav",
        audio_path="rec.wav",
        format="wav",
        size_bytes=44,
        duration_ms=1000,
        sha256="0" * 64,
        uploaded_by=alice,
    )
    job = TranscriptionJob.objects.create(
        meeting=meeting, engine="pocketsphinx", status="done", requested_by=alice
    )
    speaker = Speaker.objects.create(meeting=meeting, label="話者1")
    segment = Segment.objects.create(
        meeting=meeting,
        recording=recording,
        job=job,
        speaker=speaker,
        start_ms=0,
        end_ms=900,
        text="文書の保存年限を見直します",
        recognised=True,
    )
    entry = DictionaryEntry.objects.create(term="文書係", kind="department")
    building = Building.objects.create(code="HQ", name="本庁舎")
    room = Room.objects.create(
        floor=Floor.objects.create(building=building, name="3階", level=3),
        code="R301",
        name="会議室301",
        capacity=8,
    )
    start = dt.datetime.combine(
        clock.today() + dt.timedelta(days=1), dt.time(10), tzinfo=clock.TOKYO
    )
    booking = check_create_booking(
        BookingRequest(
            room=room,
            starts_at=start,
            ends_at=start + dt.timedelta(hours=1),
            title="打合せ",
            organiser=alice,
        ),
        acting_user=alice,
    )
    return {
        "meeting_id": meeting.pk,
        "recording_id": recording.pk,
        "job_id": job.pk,
        "segment_id": segment.pk,
        "speaker_id": speaker.pk,
        "entry_id": entry.pk,
        "booking_id": booking.pk,
    }


def address(name: str, samples: dict[str, int]) -> str:
    pattern = registered().get(name)
    if pattern is None:
        pytest.skip(f"minutes:{name} is not registered yet")
    parameters = list(pattern.pattern.converters)
    missing = [p for p in parameters if p not in samples]
    if missing:
        pytest.fail(f"minutes:{name} takes {missing}: add a sample value in samples()")
    return reverse(f"minutes:{name}", kwargs={p: samples[p] for p in parameters})


def ask(client: Client, method: str, url: str) -> Any:
    return client.get(url) if method == "GET" else client.post(url, {})


def denials(user: User) -> int:
    return AuditEntry.objects.filter(action="auth.denied", actor_id=user.pk).count()


def check(
    client: Client, user: User, method: str, url: str, expected: str, exact: int | None
) -> str:
    """ "" when ``user`` gets what is expected, else what went wrong."""
    client.force_login(user)
    before = denials(user)
    response = ask(client, method, url)
    status = response.status_code
    if expected == DENIED:
        if status != 403:
            return f"{user.username} {method} {url}: {status}, expected 403"
        if denials(user) != before + 1:
            return f"{user.username} {method} {url}: 403 without a PERMISSION_DENIED entry"
        return ""
    if exact is not None and status != exact:
        return f"{user.username} {method} {url}: {status}, expected {exact}"
    if status == 403 or status >= 500 or "/login/" in response.get("Location", ""):
        return f"{user.username} {method} {url}: {status}, expected to be allowed"
    return ""


@pytest.mark.parametrize(("name", "method"), sorted(MATRIX))
def test_the_permission_matrix(
    client: Client,
    people: dict[str, User],
    samples: dict[str, int],
    name: str,
    method: str,
) -> None:
    url = address(name, samples)
    expected = MATRIX[(name, method)]
    # Refusals first: an allowed POST may change what the others would see.
    order = sorted(PERSONAS, key=lambda p: expected.expected(p) == OK)
    problems = [
        check(client, people[p], method, url, expected.expected(p), expected.exact) for p in order
    ]
    assert not [p for p in problems if p], "\n".join(p for p in problems if p)


@pytest.mark.parametrize(("name", "method"), sorted(MATRIX))
def test_anonymous_visitors_are_sent_to_the_login_page(
    client: Client, samples: dict[str, int], name: str, method: str
) -> None:
    url = address(name, samples)

    response = ask(client, method, url)

    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


@pytest.mark.parametrize(
    ("name", "method"), sorted(key for key, value in MATRIX.items() if value.edits)
)
def test_nobody_edits_once_the_minutes_are_approved(
    client: Client,
    meeting: Meeting,
    people: dict[str, User],
    samples: dict[str, int],
    name: str,
    method: str,
) -> None:
    url = address(name, samples)
    Minutes.objects.create(meeting=meeting, status=Minutes.Status.APPROVED)

    problems = [check(client, people[p], method, url, DENIED, None) for p in EDITORS]

    assert not [p for p in problems if p], "\n".join(p for p in problems if p)
    client.force_login(people["fumi"])
    assert client.get(f"/minutes/{meeting.pk}/").status_code == 200  # still read


@pytest.mark.parametrize("name", UNCLASSIFIED or ["(none)"])
def test_every_other_minutes_address_refuses_an_outsider(
    client: Client, people: dict[str, User], samples: dict[str, int], name: str
) -> None:
    if name == "(none)":
        pytest.skip("every minutes address is in the matrix")
    url = address(name, samples)
    charlie = people["charlie"]
    client.force_login(charlie)
    method = "GET" if client.get(url).status_code != 405 else "POST"
    if "<int:meeting_id>" not in str(registered()[name].pattern):
        pytest.skip(f"minutes:{name} is not about one meeting: classify it in MATRIX")

    assert check(client, charlie, method, url, DENIED, None) == ""
    client.logout()
    assert ask(client, method, url).status_code == 302


# --- the lists ---------------------------------------------------------------------------


def test_a_guest_reads_only_the_meeting_she_attended(
    client: Client, meeting: Meeting, people: dict[str, User]
) -> None:
    charlie = people["charlie"]
    other = Meeting.objects.create(
        title="戸籍システム更新会議",
        starts_at=MEETING_START,
        ends_at=MEETING_START + dt.timedelta(hours=1),
        organiser=charlie,
        department=charlie.staff.department,
        created_by=charlie,
    )
    client.force_login(people["gina"])

    assert client.get(f"/minutes/{meeting.pk}/").status_code == 200
    assert client.get(f"/minutes/{other.pk}/").status_code == 403
    page = client.get("/minutes/").content.decode()
    assert meeting.title in page
    assert other.title not in page
    assert AuditEntry.objects.filter(
        action="auth.denied", actor_id=people["gina"].pk, target_id=str(other.pk)
    ).exists()


def test_each_persona_lists_what_they_may_read(
    client: Client, meeting: Meeting, people: dict[str, User]
) -> None:
    seen = {}
    for name, user in people.items():
        client.force_login(user)
        seen[name] = meeting.title in client.get("/minutes/").content.decode()

    assert seen == {name: name in READERS for name in PERSONAS}


def test_a_meeting_that_does_not_exist_is_a_404(client: Client, people: dict[str, User]) -> None:
    client.force_login(people["alice"])
    assert client.get("/minutes/999999/").status_code == 404
    assert client.get("/minutes/999999/edit/").status_code == 404
