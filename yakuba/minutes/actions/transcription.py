"""Starting and cancelling transcription jobs (文字起こし).

A request makes a ``TranscriptionJob`` and queues the worker job ``minutes.transcribe``
(``yakuba.minutes.transcription_tasks``), which does the work and reports progress.  One
job per meeting may be active at a time; the database enforces it (the partial unique
constraint ``one_active_transcription``), so two people pressing the button at once get
one job and one clear refusal.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _

from yakuba.audit.models import AuditAction
from yakuba.audit.record import record
from yakuba.directory.models import User
from yakuba.lib import clock
from yakuba.minutes import asr, events
from yakuba.minutes.models import Meeting, Segment, TranscriptionJob
from yakuba.tasks.registry import enqueue

JOB_NAME = "minutes.transcribe"
# An estimate of the time left adds this share for the work outside the engine (reading
# audio, saving segments), measured well under 5 %.
OVERHEAD = 1.05


class TranscriptionRefused(ValueError):
    """A request that cannot be met.  ``message`` is Japanese and says what to do;
    ``english`` says it in English.  ``code`` is stable: ``busy``, ``engine``,
    ``no_recordings``, ``confirm_replace``, ``confirm_replace_edited``, ``finished``."""

    def __init__(self, message: str, english: str, *, code: str) -> None:
        super().__init__(message)
        self.message = message
        self.english = english
        self.code = code


def current_job(meeting: Meeting) -> TranscriptionJob | None:
    """The meeting's active job, or else its latest one (to show how it ended)."""
    jobs = TranscriptionJob.objects.filter(meeting=meeting)
    active = jobs.filter(status__in=TranscriptionJob.ACTIVE).first()
    return active or jobs.order_by("-created_at", "-pk").first()


def eta_seconds(job: TranscriptionJob) -> int | None:
    """Seconds left, from the engine's speed on this job so far (a job resumed after a
    restart keeps its measure, since it is saved with each segment)."""
    if job.status not in TranscriptionJob.ACTIVE or job.audio_ms_done <= 0:
        return None
    seconds_per_audio_ms = job.engine_seconds / job.audio_ms_done
    remaining = max(0, job.audio_ms_total - job.audio_ms_done)
    return round(remaining * seconds_per_audio_ms * OVERHEAD)


def job_dict(job: TranscriptionJob) -> dict[str, Any]:
    """A job as the progress bar shows it (events and the status JSON)."""
    return {
        "id": job.pk,
        "status": job.status,
        "status_label": str(job.get_status_display()),
        "active": job.status in TranscriptionJob.ACTIVE,
        "percent": job.percent,
        "eta_seconds": eta_seconds(job),
        "error": job.error,
        "engine": job.engine,
        "audio_ms_total": job.audio_ms_total,
        "audio_ms_done": job.audio_ms_done,
    }


def send_job(job: TranscriptionJob) -> None:
    events.send_to_meeting(job.meeting_id, "job", job=job_dict(job))


def _check_engine(name: str) -> None:
    if name not in asr.ENGINE_NAMES:
        raise TranscriptionRefused(
            _("文字起こしエンジン「%(name)s」はありません。") % {"name": name},
            f"There is no engine {name!r}.",
            code="engine",
        )
    status = asr.engine_status(name)
    if not status.usable:
        raise TranscriptionRefused(
            _("文字起こしエンジン「%(name)s」は使えません: %(reason)s")
            % {"name": name, "reason": status.detail},
            f"The engine {name} cannot run here: {status.detail}",
            code="engine",
        )


def _busy() -> TranscriptionRefused:
    return TranscriptionRefused(
        _(
            "この会議の文字起こしは既に実行中です。完了するか中止してから、もう一度開始してください。"
        ),
        "A transcription of this meeting is already running.",
        code="busy",
    )


def _check_replace(meeting: Meeting, *, replace: bool, replace_edited: bool) -> None:
    existing = Segment.objects.filter(meeting=meeting)
    if not existing.exists():
        return
    if existing.filter(edited_by__isnull=False).exists() and not replace_edited:
        raise TranscriptionRefused(
            _(
                "この会議には人が編集した発言があります。文字起こしをやり直すと編集内容も"
                "置き換えられます。よろしければ「編集済みの発言も置き換える」を選んでください。"
            ),
            "Some segments were edited by people; confirm replacing edited text.",
            code="confirm_replace_edited",
        )
    if not (replace or replace_edited):
        raise TranscriptionRefused(
            _(
                "この会議には文字起こし済みの発言があります。やり直す場合は"
                "「今の文字起こしを置き換える」を選んでください。"
            ),
            "The meeting already has a transcript; confirm replacing it.",
            code="confirm_replace",
        )


def do_request_transcription(
    meeting: Meeting,
    *,
    user: User,
    engine: str | None = None,
    replace: bool = False,
    replace_edited: bool = False,
) -> TranscriptionJob:
    """Queue a transcription of every recording of ``meeting`` with ``engine`` (the
    configured one by default).  A meeting that already has segments is transcribed
    again only with ``replace`` (and ``replace_edited`` when people edited some); the old
    segments are deleted here.  Raises ``TranscriptionRefused``."""
    name = engine or settings.MINUTES_ASR_ENGINE
    _check_engine(name)
    if not meeting.recordings.exists():
        raise TranscriptionRefused(
            _("録音がありません。先に録音ファイルをアップロードしてください。"),
            "The meeting has no recording yet.",
            code="no_recordings",
        )
    if TranscriptionJob.objects.filter(
        meeting=meeting, status__in=TranscriptionJob.ACTIVE
    ).exists():
        raise _busy()
    _check_replace(meeting, replace=replace, replace_edited=replace_edited)
    with transaction.atomic():
        removed = list(Segment.objects.filter(meeting=meeting).values_list("pk", flat=True))
        Segment.objects.filter(pk__in=removed).delete()
        try:
            # A savepoint: the constraint answers a request that lost the race.
            with transaction.atomic():
                job = TranscriptionJob.objects.create(
                    meeting=meeting, engine=name, requested_by=user
                )
        except IntegrityError:
            raise _busy() from None
        enqueue(JOB_NAME, job_id=job.pk)
        record(
            AuditAction.TRANSCRIPTION_REQUESTED,
            actor=user,
            target=meeting,
            details={"job_id": job.pk, "engine": name, "segments_replaced": len(removed)},
        )
        if removed:
            events.send_segments(meeting.pk, [], removed=removed, by=user.pk)
        send_job(job)
    return job


def do_cancel_transcription(job: TranscriptionJob, *, user: User) -> TranscriptionJob:
    """Cancel ``job``.  A queued job ends at once; a running one is marked CANCELLING and
    its worker stops before the next segment, keeping what it recognised so far.  Raises
    ``TranscriptionRefused`` for a job that has already ended."""
    with transaction.atomic():
        # A queued job never started: nothing to wait for.
        ended_at_once = TranscriptionJob.objects.filter(
            pk=job.pk, status=TranscriptionJob.Status.QUEUED
        ).update(status=TranscriptionJob.Status.CANCELLED, finished_at=clock.now())
        if not ended_at_once and not TranscriptionJob.objects.filter(
            pk=job.pk, status=TranscriptionJob.Status.RUNNING
        ).update(status=TranscriptionJob.Status.CANCELLING):
            raise TranscriptionRefused(
                _("この文字起こしは既に終わっています。"),
                "This transcription has already ended.",
                code="finished",
            )
        job.refresh_from_db()
        record(
            AuditAction.TRANSCRIPTION_CANCELLED,
            actor=user,
            target=job.meeting,
            details={"job_id": job.pk, "status": job.status, "audio_ms_done": job.audio_ms_done},
        )
        send_job(job)
    return job
