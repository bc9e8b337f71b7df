"""Multi-track input: one file per speaker, placed on the meeting's time line by its
offset, gives segments labelled with the right speaker, in time order across tracks.
The engine answers with scripted text (``test_pipeline`` runs pocketsphinx itself): what
is checked here is the planning, which is the same for every engine."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.test import Client

from yakuba.directory.models import User
from yakuba.minutes.models import Meeting, Recording, Segment, Speaker, TranscriptionJob
from yakuba.tasks.worker import run_once

from .test_pipeline import (
    EngineSpy,
    engines,  # noqa: F401  (the fixture)
    phrases,
    request_transcription,
    upload,
)

pytestmark = pytest.mark.django_db


def test_two_tracks_give_speaker_labelled_segments_in_time_order(
    client: Client,
    meeting: Meeting,
    alice: User,
    tmp_path: Path,
    engines: EngineSpy,  # noqa: F811  (the fixture)
) -> None:
    # Aoki speaks, pauses 4 s, speaks again; Bando's track starts 2.5 s into the meeting
    # and he speaks in Aoki's pause.
    aoki = phrases(
        ["good morning everyone", "we will discuss the new library"],
        tmp_path / "aoki.wav",
        gap_seconds=4.0,
    )
    bando = phrases(["please open the window"], tmp_path / "bando.wav", gap_seconds=0.3)
    client.force_login(alice)
    upload(client, meeting, aoki, speaker="青木", offset_seconds="0")
    upload(client, meeting, bando, speaker="坂東", offset_seconds="2.5")

    assert request_transcription(client, meeting, engine="pocketsphinx").status_code == 302
    run_once()

    assert TranscriptionJob.objects.get().status == TranscriptionJob.Status.DONE
    speakers = {speaker.label: speaker for speaker in Speaker.objects.filter(meeting=meeting)}
    assert set(speakers) == {"青木", "坂東"}
    segments = list(Segment.objects.filter(meeting=meeting).select_related("speaker"))
    assert [segment.speaker.label for segment in segments if segment.speaker] == [
        "青木",
        "坂東",
        "青木",
    ]
    starts = [segment.start_ms for segment in segments]
    assert starts == sorted(starts)
    bando_track = Recording.objects.get(speaker=speakers["坂東"])
    bando_segment = segments[1]
    assert bando_segment.recording_id == bando_track.pk
    # On the meeting's time line: the track's offset is added.
    assert 2500 <= bando_segment.start_ms < segments[2].start_ms
    assert segments[0].end_ms <= bando_segment.start_ms
    # Recognised in time order, each from its own track.
    assert [segment.text.split(" of ")[0] for segment in segments] == [
        "segment 1",
        "segment 2",
        "segment 3",
    ]
    assert engines.calls() == [3]
