"""The transcription pipeline, end to end with pocketsphinx on espeak-ng speech: request
through the page, run by the worker, live progress, cancel, a worker that dies midway
(resumed after its lease runs out, without recognising again what was saved),
failures that end the job at once, retries that give up, and re-transcription."""

from __future__ import annotations

import datetime as dt
import wave
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from pytest_django.fixtures import Settings as SettingsWrapper

from yakuba.audit.models import AuditEntry
from yakuba.directory.models import User
from yakuba.lib import clock
from yakuba.minutes import asr, transcription_tasks
from yakuba.minutes.asr.base import Engine, Recognition
from yakuba.minutes.models import Meeting, Recording, Segment, TranscriptionJob
from yakuba.realtime import topics
from yakuba.tasks import worker
from yakuba.tasks.models import Job
from yakuba.tasks.worker import claim_next, run_once

from .conftest import speak

pytestmark = pytest.mark.django_db

PHRASES = ("good morning everyone", "please open the window", "we will discuss the new library")
KEY_WORDS = {"morning", "everyone", "window", "library", "open", "discuss", "new"}


def phrases(texts: Sequence[str], path: Path, *, gap_seconds: float = 1.2, **voice: Any) -> Path:
    """One WAV of ``texts`` spoken with a silence between them (one segment each)."""
    frames: list[bytes] = []
    rate = 22050
    for number, text in enumerate(texts):
        part = speak(text, path.with_name(f"{path.stem}-{number}.wav"), **voice)
        with wave.open(str(part)) as spoken:
            rate = spoken.getframerate()
            frames.append(spoken.readframes(spoken.getnframes()))
    gap = b"\0\0" * int(rate * gap_seconds)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(gap.join(frames) + gap)
    return path


def upload(client: Client, meeting: Meeting, path: Path, **fields: str) -> None:
    with path.open("rb") as file:
        response = client.post(
            f"/minutes/{meeting.pk}/recordings/upload/", {"file": file, **fields}
        )
    assert response.status_code == 302, response.content.decode()


def request_transcription(client: Client, meeting: Meeting, **fields: str) -> Any:
    return client.post(f"/minutes/{meeting.pk}/transcription/", fields)


class CountingEngine:
    """Counts its calls; ``before(n)`` runs before call ``n``.  Answers with the real
    engine when it has one, else with 「segment n」 at once (the tests of the job's
    life need no real recognition, and pocketsphinx takes a second a segment)."""

    def __init__(self, name: str, inner: Engine | None, before: Callable[[int], None]) -> None:
        self.inner = inner
        self.name = name
        self.language = inner.language if inner is not None else "en"
        self.supports_hotwords = inner.supports_hotwords if inner is not None else False
        self.model_label = inner.model_label if inner is not None else "scripted"
        self.before = before
        self.calls = 0

    def recognise(self, pcm: bytes, *, hotwords: Sequence[str] = ()) -> Recognition:
        self.calls += 1
        self.before(self.calls)
        if self.inner is None:
            return Recognition(f"segment {self.calls} of {len(pcm)} bytes", 0.5)
        return self.inner.recognise(pcm, hotwords=hotwords)


class EngineSpy:
    """Every engine the jobs load (``made``); ``before(n)`` runs before each engine's
    call ``n``; ``real`` makes them wrap the real engine."""

    def __init__(self) -> None:
        self.made: list[CountingEngine] = []
        self.before: Callable[[int], None] | None = None
        self.real = False

    def calls(self) -> list[int]:
        return [engine.calls for engine in self.made]

    def _before(self, call: int) -> None:
        if self.before is not None:
            self.before(call)


@pytest.fixture
def engines(monkeypatch: pytest.MonkeyPatch) -> EngineSpy:
    spy = EngineSpy()
    real_load = asr.load_engine

    def load(name: str | None = None) -> Engine:
        inner = real_load(name) if spy.real else None
        engine = CountingEngine(name or "pocketsphinx", inner, spy._before)
        spy.made.append(engine)
        return engine

    monkeypatch.setattr(asr, "load_engine", load)
    return spy


@pytest.fixture
def published(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any]]]:
    sent: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(topics, "_publish", lambda topic, event: sent.append((topic, event)))
    return sent


@pytest.fixture
def three_phrases(tmp_path: Path) -> Path:
    return phrases(PHRASES, tmp_path / "meeting.wav")


@pytest.fixture
def job(client: Client, meeting: Meeting, alice: User, three_phrases: Path) -> TranscriptionJob:
    """Alice (signed in on ``client``) uploaded three phrases and asked for a transcript."""
    client.force_login(alice)
    upload(client, meeting, three_phrases)
    request_transcription(client, meeting)
    return TranscriptionJob.objects.get()


def test_it_transcribes_an_upload_end_to_end(
    client: Client,
    meeting: Meeting,
    alice: User,
    bob: User,
    three_phrases: Path,
    published: list[tuple[str, dict[str, Any]]],
    django_capture_on_commit_callbacks: Any,
) -> None:
    client.force_login(alice)
    upload(client, meeting, three_phrases)

    response = request_transcription(client, meeting, engine="pocketsphinx")
    assert response.status_code == 302
    with django_capture_on_commit_callbacks(execute=True):
        assert run_once() >= 1

    job = TranscriptionJob.objects.get(meeting=meeting)
    assert job.status == TranscriptionJob.Status.DONE
    assert job.percent == 100
    assert job.audio_ms_done == job.audio_ms_total > 0
    assert job.engine_seconds > 0
    segments = list(Segment.objects.filter(meeting=meeting))
    assert len(segments) == 3
    assert all(s.recognised and s.engine == "pocketsphinx" for s in segments)
    assert all(s.confidence is None or 0 <= s.confidence <= 1 for s in segments)
    assert all(s.end_ms > s.start_ms for s in segments)
    assert [s.start_ms for s in segments] == sorted(s.start_ms for s in segments)
    assert segments[0].start_ms < 2000 < segments[1].start_ms
    heard = set(" ".join(s.text for s in segments).split())
    assert len(heard & KEY_WORDS) >= 2, heard
    recording = Recording.objects.get(meeting=meeting)
    assert recording.audio_path.endswith(".wav")
    assert AuditEntry.objects.filter(
        action="minutes.transcription_requested", actor_id=alice.pk
    ).exists()
    finished = AuditEntry.objects.get(action="minutes.transcription_finished")
    assert finished.actor_kind == "system"
    assert finished.details["segments"] == 3
    assert finished.details["audio_seconds"] > 1
    assert 0 < finished.details["rtf"] < 5
    # Live: each segment as it is recognised, and the progress up to 100 %.
    topic = f"minutes.meeting.{meeting.pk}"
    ops = [event["op"] for sent_topic, event in published if sent_topic == topic]
    assert ops.count("segments") >= 3
    progress = [event["job"]["percent"] for _, event in published if event["op"] == "job"]
    assert progress == sorted(progress)
    assert progress[-1] == 100
    assert any(0 < percent < 100 for percent in progress)
    # The status JSON, for whoever may read the meeting.
    client.force_login(bob)
    status = client.get(f"/minutes/{meeting.pk}/transcription/status/").json()
    assert status["job"]["status"] == "done"
    assert status["job"]["percent"] == 100


def test_it_shows_the_job_on_the_meeting_page(
    client: Client, meeting: Meeting, job: TranscriptionJob
) -> None:

    page = client.get(f"/minutes/{meeting.pk}/").content.decode()

    assert "meeting.wav" in page
    assert "data-transcription" in page
    assert "待機中" in page
    assert "文字起こしを中止する" in page


def test_it_refuses_a_second_job_while_one_is_active(
    client: Client, meeting: Meeting, alice: User, three_phrases: Path
) -> None:
    client.force_login(alice)
    upload(client, meeting, three_phrases)
    assert request_transcription(client, meeting).status_code == 302

    again = request_transcription(client, meeting)

    assert again.status_code == 400
    assert "既に実行中" in again.content.decode()
    assert TranscriptionJob.objects.filter(meeting=meeting).count() == 1
    # Recordings cannot change under a running job either.
    recording = Recording.objects.get()
    refused = client.post(f"/minutes/{meeting.pk}/recordings/{recording.pk}/delete/")
    assert refused.status_code == 400
    assert "文字起こしの実行中は録音を追加・削除できません" in refused.content.decode()
    assert Recording.objects.filter(pk=recording.pk).exists()
    with three_phrases.open("rb") as file:
        added = client.post(f"/minutes/{meeting.pk}/recordings/upload/", {"file": file})
    assert added.status_code == 400
    assert Recording.objects.count() == 1


def test_it_refuses_without_recordings_or_with_an_unusable_engine(
    client: Client, meeting: Meeting, alice: User, three_phrases: Path, settings: SettingsWrapper
) -> None:
    client.force_login(alice)
    nothing = request_transcription(client, meeting)
    assert nothing.status_code == 400
    assert "録音がありません" in nothing.content.decode()
    upload(client, meeting, three_phrases)
    settings.MINUTES_VOSK_MODEL_DIR = ""

    unusable = request_transcription(client, meeting, engine="vosk")

    assert unusable.status_code == 400
    assert "vosk" in unusable.content.decode()
    assert "使えません" in unusable.content.decode()
    assert not TranscriptionJob.objects.exists()


def test_an_outsider_may_neither_start_nor_watch_a_job(
    client: Client, meeting: Meeting, alice: User, charlie: User, three_phrases: Path
) -> None:
    client.force_login(alice)
    upload(client, meeting, three_phrases)
    client.force_login(charlie)

    assert request_transcription(client, meeting).status_code == 403
    assert client.get(f"/minutes/{meeting.pk}/transcription/status/").status_code == 403
    assert not TranscriptionJob.objects.exists()


def test_cancelling_stops_before_the_next_segment_and_keeps_what_was_recognised(
    client: Client,
    meeting: Meeting,
    job: TranscriptionJob,
    alice: User,
    engines: EngineSpy,
) -> None:

    def press_cancel(call: int) -> None:
        # Alice presses 「中止」 while the worker recognises the second segment.
        if call == 2:
            response = client.post(f"/minutes/{meeting.pk}/transcription/{job.pk}/cancel/")
            assert response.status_code == 302

    engines.before = press_cancel
    run_once()

    job.refresh_from_db()
    assert job.status == TranscriptionJob.Status.CANCELLED
    assert engines.calls() == [2]
    kept = list(Segment.objects.filter(meeting=meeting))
    assert len(kept) == 2
    assert all(segment.recognised for segment in kept)
    assert AuditEntry.objects.filter(
        action="minutes.transcription_cancelled", actor_id=alice.pk
    ).exists()
    assert Job.objects.get(name="minutes.transcribe").status == Job.Status.DONE


def test_cancelling_during_the_last_segment_ends_the_job_and_frees_the_meeting(
    client: Client,
    meeting: Meeting,
    job: TranscriptionJob,
    engines: EngineSpy,
) -> None:

    def press_cancel(call: int) -> None:
        if call == 3:  # the last segment: no "next segment" to stop before
            client.post(f"/minutes/{meeting.pk}/transcription/{job.pk}/cancel/")

    engines.before = press_cancel
    run_once()

    job.refresh_from_db()
    assert job.status == TranscriptionJob.Status.CANCELLED
    assert Segment.objects.filter(meeting=meeting, recognised=True).count() == 3
    # Not left CANCELLING for ever: the meeting may be transcribed again.
    engines.before = None
    again = request_transcription(client, meeting, replace="on")
    assert again.status_code == 302, again.content.decode()


def test_cancelling_a_queued_job_ends_it_at_once(
    client: Client, meeting: Meeting, job: TranscriptionJob, engines: EngineSpy
) -> None:

    client.post(f"/minutes/{meeting.pk}/transcription/{job.pk}/cancel/")
    run_once()

    job.refresh_from_db()
    assert job.status == TranscriptionJob.Status.CANCELLED
    assert engines.made == []  # never loaded
    again = client.post(f"/minutes/{meeting.pk}/transcription/{job.pk}/cancel/")
    assert again.status_code == 400
    assert "既に終わっています" in again.content.decode()


def test_a_job_cancelled_just_as_a_worker_claims_it_plans_nothing(
    client: Client,
    meeting: Meeting,
    job: TranscriptionJob,
    engines: EngineSpy,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    start = transcription_tasks._start

    def cancel_then_start(running: TranscriptionJob) -> None:
        # Alice cancels after the worker read the job (queued) and before it started.
        client.post(f"/minutes/{meeting.pk}/transcription/{job.pk}/cancel/")
        start(running)

    monkeypatch.setattr(transcription_tasks, "_start", cancel_then_start)
    run_once()

    job.refresh_from_db()
    assert job.status == TranscriptionJob.Status.CANCELLED
    assert not Segment.objects.filter(meeting=meeting).exists()
    assert engines.made == []


class WorkerKilled(BaseException):
    """Stands for the worker process dying (SIGKILL, power cut): nothing of the worker's
    own error handling runs, the job stays claimed until its lease runs out."""


def test_a_worker_that_dies_midway_is_replaced_and_recognises_nothing_twice(
    client: Client,
    meeting: Meeting,
    job: TranscriptionJob,
    engines: EngineSpy,
) -> None:

    def die_in_third_segment(call: int) -> None:
        if call == 3:
            raise WorkerKilled

    engines.before = die_in_third_segment
    with pytest.raises(WorkerKilled):
        run_once("worker-that-dies")
    engines.before = None
    job.refresh_from_db()
    assert job.status == TranscriptionJob.Status.RUNNING
    first_two = list(Segment.objects.filter(recognised=True).values_list("pk", "text"))
    assert len(first_two) == 2
    assert 0 < job.percent < 100
    status = client.get(f"/minutes/{meeting.pk}/transcription/status/").json()["job"]
    assert status["status"] == "running"
    assert status["percent"] == job.percent
    assert isinstance(status["eta_seconds"], int)

    # The lease still holds: nobody takes the job over yet.
    assert run_once("second-worker") == 0
    clock.advance(worker.LEASE + dt.timedelta(seconds=1))
    assert run_once("second-worker") == 1

    job.refresh_from_db()
    assert job.status == TranscriptionJob.Status.DONE
    # Only the segment in progress when the worker died is recognised again.
    assert engines.calls() == [3, 1]  # the third died in progress and is redone
    segments = list(Segment.objects.filter(meeting=meeting))
    assert len(segments) == 3
    assert all(segment.recognised for segment in segments)
    assert set(first_two) <= {(s.pk, s.text) for s in segments}
    assert job.audio_ms_done == job.audio_ms_total
    queued = Job.objects.get(name="minutes.transcribe")
    assert queued.attempts == 2
    assert queued.claimed_by == "second-worker"


def test_a_worker_that_stalled_past_its_lease_leaves_the_rest_to_the_new_one(
    client: Client,
    meeting: Meeting,
    job: TranscriptionJob,
    engines: EngineSpy,
) -> None:

    def taken_over_during_second(call: int) -> None:
        if call == 2:
            # The first worker stalls; its lease runs out and another worker claims the
            # job; the first one's heartbeat then finds its claim gone.
            Job.objects.update(claimed_by="new-worker", lease_until=clock.now() + worker.LEASE)
            worker._running.keeper.lost.set()

    engines.before = taken_over_during_second
    run_once("stalled-worker")
    engines.before = None

    job.refresh_from_db()
    assert job.status == TranscriptionJob.Status.RUNNING  # not finished by the stalled one
    assert engines.calls() == [2]  # stopped after the segment in hand, not all three
    assert Segment.objects.filter(recognised=True).count() == 2
    clock.advance(worker.LEASE + dt.timedelta(seconds=1))  # the new worker died too
    assert run_once("third-worker") == 1
    job.refresh_from_db()
    assert job.status == TranscriptionJob.Status.DONE
    assert engines.calls() == [2, 1]


def test_an_engine_error_is_retried_and_resumes_after_the_saved_segments(
    client: Client,
    meeting: Meeting,
    job: TranscriptionJob,
    engines: EngineSpy,
) -> None:

    def fail_once_in_second(call: int) -> None:
        if call == 2:
            raise RuntimeError("the engine crashed")

    engines.before = fail_once_in_second
    run_once()
    assert Job.objects.get().status == Job.Status.QUEUED  # to be retried
    engines.before = None
    clock.advance(dt.timedelta(minutes=10))
    run_once()

    assert TranscriptionJob.objects.get().status == TranscriptionJob.Status.DONE
    assert engines.calls() == [2, 2]
    assert Segment.objects.filter(meeting=meeting, recognised=True).count() == 3


def test_a_job_that_keeps_failing_is_given_up_and_marked_failed(
    client: Client,
    meeting: Meeting,
    job: TranscriptionJob,
    engines: EngineSpy,
) -> None:
    Job.objects.update(max_attempts=2)

    def always_fail(call: int) -> None:
        raise RuntimeError("the engine crashed")

    engines.before = always_fail
    for _ in range(3):
        run_once()
        clock.advance(dt.timedelta(minutes=10))

    job.refresh_from_db()
    assert job.status == TranscriptionJob.Status.FAILED
    assert "管理者に連絡" in job.error
    assert Job.objects.get().status == Job.Status.FAILED
    assert len(engines.made) == 2
    assert AuditEntry.objects.filter(action="minutes.transcription_failed").count() == 1
    assert not Segment.objects.filter(recognised=False).exists()


def test_a_job_whose_worker_dies_every_time_is_given_up(
    client: Client, meeting: Meeting, job: TranscriptionJob
) -> None:
    Job.objects.update(max_attempts=2)
    for name in ("dies-1", "dies-2"):
        assert claim_next(name) is not None  # claimed, then the worker is killed
        clock.advance(worker.LEASE + dt.timedelta(seconds=1))

    assert run_once("survivor") == 0

    assert Job.objects.get().status == Job.Status.FAILED
    job.refresh_from_db()
    assert job.status == TranscriptionJob.Status.FAILED
    assert job.error


def test_a_corrupt_file_fails_the_job_at_once_with_a_message(
    client: Client,
    meeting: Meeting,
    alice: User,
    three_phrases: Path,
    minutes_media: Path,
) -> None:
    client.force_login(alice)
    upload(client, meeting, three_phrases)
    recording = Recording.objects.get()
    # The stored file is damaged after the upload was checked (a disk fault).
    stored = minutes_media / recording.file_path
    stored.write_bytes(stored.read_bytes()[:60] + b"\x01" * 10)
    request_transcription(client, meeting)

    run_once()

    job = TranscriptionJob.objects.get()
    assert job.status == TranscriptionJob.Status.FAILED
    assert "読み込めません" in job.error
    assert Job.objects.get().status == Job.Status.DONE  # not retried
    assert AuditEntry.objects.filter(action="minutes.transcription_failed").exists()
    page = client.get(f"/minutes/{meeting.pk}/").content.decode()
    assert "文字起こしに失敗しました" in page
    assert "読み込めません" in page


def test_an_engine_that_became_unusable_fails_the_job(
    client: Client,
    meeting: Meeting,
    job: TranscriptionJob,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_status = asr.engine_status

    def gone(name: str) -> Any:
        status = real_status(name)
        return type(status)(name, False, "モデルが削除されました", status.language, False)

    monkeypatch.setattr(asr, "engine_status", gone)
    run_once()

    job.refresh_from_db()
    assert job.status == TranscriptionJob.Status.FAILED
    assert "モデルが削除されました" in job.error


def test_transcribing_again_asks_before_replacing_and_protects_edited_text(
    client: Client, meeting: Meeting, job: TranscriptionJob, alice: User, engines: EngineSpy
) -> None:
    run_once()
    first = set(Segment.objects.values_list("pk", flat=True))
    assert len(first) == 3

    unconfirmed = request_transcription(client, meeting)
    assert unconfirmed.status_code == 400
    assert "置き換える" in unconfirmed.content.decode()
    Segment.objects.filter(pk=min(first)).update(text="修正済みの発言", edited_by=alice)
    edited = request_transcription(client, meeting, replace="on")
    assert edited.status_code == 400
    assert "人が編集した発言" in edited.content.decode()
    assert Segment.objects.filter(text="修正済みの発言").exists()

    confirmed = request_transcription(client, meeting, replace="on", replace_edited="on")
    assert confirmed.status_code == 302
    assert not Segment.objects.filter(pk__in=first).exists()
    run_once()
    assert Segment.objects.filter(meeting=meeting, recognised=True).count() == 3
    assert TranscriptionJob.objects.filter(status=TranscriptionJob.Status.DONE).count() == 2
