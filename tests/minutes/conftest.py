"""Minutes fixtures: a meeting organised by Alice (総務課 文書係) with Bob attending,
recordings stored under a temporary folder, and English speech made by espeak-ng.

``speak(text, path)`` writes a WAV of ``text`` spoken by espeak-ng (22.05 kHz mono);
the tests skip without espeak-ng, or fail under YAKUBA_TEST_SERVICES=required.
"""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
from pathlib import Path

import pytest
from pytest_django.fixtures import Settings as SettingsWrapper

from yakuba.directory.models import Department, Role, RoleGrant, User
from yakuba.lib import clock
from yakuba.minutes.models import Meeting

from ..conftest import SERVICES_REQUIRED, make_staff, service_missing

ESPEAK = shutil.which("espeak-ng")
MEETING_START = dt.datetime(2025, 6, 11, 10, 0, tzinfo=clock.TOKYO)


@pytest.fixture(autouse=True)
def minutes_media(settings: SettingsWrapper, tmp_path: Path) -> Path:
    """Recordings of each test go to a folder of its own."""
    folder = tmp_path / "minutes-media"
    folder.mkdir()
    settings.MINUTES_MEDIA_DIR = folder
    return folder


def speak(text: str, path: Path, *, voice: str = "en-us", words_per_minute: int = 140) -> Path:
    """``path``: a WAV of ``text`` spoken by espeak-ng."""
    if ESPEAK is None:
        if SERVICES_REQUIRED:
            pytest.fail("espeak-ng is missing (apt-get install espeak-ng)")
        pytest.skip("espeak-ng is not installed")
    subprocess.run(
        [ESPEAK, "-v", voice, "-s", str(words_per_minute), "-w", str(path), text],
        check=True,
        capture_output=True,
    )
    return path


@pytest.fixture
def dora(ward: dict[str, Department]) -> User:
    """Dora is the 所属長 of 文書係 (the organiser's 所属)."""
    user = make_staff("dora", "土田", "乃", ward["bunsho"], number="10010", kana=("つちだ", "の"))
    RoleGrant.objects.create(user=user, role=Role.SECTION_HEAD, department=ward["bunsho"])
    return user


@pytest.fixture
def erin(ward: dict[str, Department]) -> User:
    """Erin is an auditor (監査) in 総務部."""
    user = make_staff(
        "erin", "遠藤", "恵", ward["somu_bu"], number="10011", kana=("えんどう", "めぐみ")
    )
    RoleGrant.objects.create(user=user, role=Role.AUDITOR)
    return user


@pytest.fixture
def meeting(alice: User, bob: User, ward: dict[str, Department]) -> Meeting:
    """「文書管理検討会議」: Alice organises, Bob attends, in 文書係."""
    meeting = Meeting.objects.create(
        title="文書管理検討会議",
        starts_at=MEETING_START,
        ends_at=MEETING_START + dt.timedelta(hours=1),
        place="本庁舎3階 会議室301",
        organiser=alice,
        department=ward["bunsho"],
        agenda="文書保存年限の見直し\n電子決裁の導入",
        created_by=alice,
    )
    meeting.attendees.add(alice, bob)
    return meeting


__all__ = ["MEETING_START", "service_missing", "speak"]
