"""The worker's side of transcription: the job ``minutes.transcribe`` (kwargs ``job_id``).

1. Plan, once per job and per recording: decode the recording to 16 kHz mono WAV (kept
   as ``Recording.audio_path``, also what the editor plays), find the speech regions
   (VAD) and write one empty ``Segment`` per region, on the meeting's time line (a
   track's ``offset_ms`` added, so the segments of several tracks interleave in time).
2. Recognise the planned segments not yet recognised, in time order.  Each result is
   saved with the job's progress in one short transaction, and broadcast.  A worker that
   dies mid-job is replaced when its lease runs out (``yakuba.tasks.worker``); the new
   run finds the plan made and resumes at the first unrecognised segment, so at most the
   segment in progress is recognised twice.
3. Between segments the job looks at its status: CANCELLING ends it as CANCELLED, keeping
   what was recognised.

Failures that retrying cannot mend (the engine cannot run, a corrupt file) end the job as
FAILED with a Japanese message at once.  Anything else raises, and the queue retries
(resuming as above) up to its attempts, then marks the job FAILED (``give_up``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path

from django.db import transaction
from django.db.models import F, Sum
from django.utils.translation import gettext as _

from yakuba.audit.models import AuditAction
from yakuba.audit.record import Actor, record
from yakuba.lib import clock
from yakuba.minutes import asr, audio, events, vad, wardwords
from yakuba.minutes.actions.recordings import media_path, media_root
from yakuba.minutes.actions.transcription import JOB_NAME, send_job
from yakuba.minutes.asr.base import Engine, EngineUnavailable
from yakuba.minutes.models import Recording, Segment, TranscriptionJob
from yakuba.tasks.registry import job as register_job
from yakuba.tasks.worker import claim_lost

log = logging.getLogger(__name__)
Status = TranscriptionJob.Status


class JobFailed(Exception):
    """A failure that retrying will not mend; ``message`` is shown on the page."""

    def __init__(self, message: str, english: str) -> None:
        super().__init__(english)
        self.message = message
        self.english = english


def give_up(error: str, job_id: int) -> None:
    """The queue stopped retrying: the job raised at every attempt, or its worker died."""
    log.error("transcription job %s given up: %s", job_id, error[-500:])
    job = TranscriptionJob.objects.filter(pk=job_id, status__in=TranscriptionJob.ACTIVE).first()
    if job is not None:
        _fail(
            job,
            JobFailed(
                _(
                    "文字起こし中に予期しないエラーが続いたため中断しました。管理者に連絡してください。"
                ),
                "The transcription failed repeatedly and was given up.",
            ),
        )


@register_job(JOB_NAME, on_give_up=give_up)
def transcribe(job_id: int) -> None:
    job = TranscriptionJob.objects.select_related("meeting").filter(pk=job_id).first()
    if job is None or job.status not in TranscriptionJob.ACTIVE:
        return  # deleted, cancelled while queued, or already finished by another worker
    _start(job)
    # Read again after starting: a job cancelled while queued, even an instant ago, must
    # not be planned (its empty segments would stay in the transcript).
    if job.status == Status.CANCELLING:
        _finish_cancelled(job)
        return
    if job.status != Status.RUNNING:
        return
    try:
        _check_engine(job.engine)
        for recording in job.meeting.recordings.all():
            _plan(job, recording)
        _count_audio(job)
        engine = _load_engine(job)
        if _recognise_all(job, engine):
            _finish(job)
    except JobFailed as failure:
        _fail(job, failure)


def _start(job: TranscriptionJob) -> None:
    with transaction.atomic():
        TranscriptionJob.objects.filter(pk=job.pk, status=Status.QUEUED).update(
            status=Status.RUNNING, started_at=clock.now()
        )
        job.refresh_from_db()
        send_job(job)


def _check_engine(name: str) -> None:
    status = asr.engine_status(name)
    if not status.usable:
        raise JobFailed(
            _("文字起こしエンジン「%(name)s」は使えません: %(reason)s")
            % {"name": name, "reason": status.detail},
            f"engine {name} is unusable: {status.detail}",
        )


def _load_engine(job: TranscriptionJob) -> Engine:
    try:
        engine = asr.load_engine(job.engine)
    except EngineUnavailable as exc:
        raise JobFailed(str(exc), exc.english) from exc
    if job.model != engine.model_label:
        TranscriptionJob.objects.filter(pk=job.pk).update(model=engine.model_label[:200])
        job.model = engine.model_label[:200]
    return engine


# --- planning -------------------------------------------------------------------------


def _decoded(recording: Recording) -> Path:
    """The recording's 16 kHz WAV, decoded now unless an earlier run did it already."""
    if recording.audio_path and media_path(recording.audio_path).exists():
        return media_path(recording.audio_path)
    source = media_path(recording.file_path)
    target = source.with_name(f"{source.stem}.16k.wav")
    try:
        # Writes a temporary file and renames it once complete: a crash mid-decode
        # leaves no half file in use.
        audio.decode_to_wav(source, target)
    except audio.AudioError as exc:
        raise JobFailed(
            _("録音「%(name)s」を読み込めません: %(reason)s")
            % {"name": recording.original_name, "reason": str(exc)},
            f"cannot decode recording {recording.pk}: {getattr(exc, 'english', exc)}",
        ) from exc
    relative = str(target.relative_to(media_root()))
    Recording.objects.filter(pk=recording.pk).update(audio_path=relative)
    recording.audio_path = relative
    return target


def _plan(job: TranscriptionJob, recording: Recording) -> None:
    """Write the segments of ``recording`` for ``job``, unless an earlier run did."""
    if Segment.objects.filter(job=job, recording=recording).exists():
        return
    wav = _decoded(recording)
    regions = vad.speech_regions(wav)
    offset = recording.offset_ms
    with transaction.atomic():
        # Checked again inside the transaction, with the job's row locked: two runs of one
        # job (a lease taken over while the first still ran) must not plan twice.  On
        # PostgreSQL both would otherwise see no segments and both insert; SQLite
        # serialises writers anyway (select_for_update is a no-op there).
        TranscriptionJob.objects.select_for_update().filter(pk=job.pk).first()
        if Segment.objects.filter(job=job, recording=recording).exists():
            return
        Segment.objects.bulk_create(
            Segment(
                meeting_id=job.meeting_id,
                recording=recording,
                job=job,
                speaker_id=recording.speaker_id,
                start_ms=region.start_ms + offset,
                end_ms=region.end_ms + offset,
                recognised=False,
            )
            for region in regions
        )


def _count_audio(job: TranscriptionJob) -> None:
    planned = Segment.objects.filter(job=job).aggregate(total=Sum(F("end_ms") - F("start_ms")))[
        "total"
    ]
    job.audio_ms_total = int(planned or 0)
    TranscriptionJob.objects.filter(pk=job.pk).update(audio_ms_total=job.audio_ms_total)


# --- recognition ----------------------------------------------------------------------


def _recognise_all(job: TranscriptionJob, engine: Engine) -> bool:
    """Recognise what is left; False when the job stopped (cancelled, taken over)."""
    # Taken once per run, not per segment (each lookup is a query): a dictionary change
    # applies from the next job.
    hotwords: Sequence[str] = wardwords.hotwords() if engine.supports_hotwords else ()
    correct = _identity if engine.supports_hotwords else wardwords.corrector()
    # Fetched at once (a long meeting has a few thousand segments): SQLite cannot write
    # while a cursor on the same connection is still being read.
    pending = list(
        Segment.objects.filter(job=job, recognised=False)
        .select_related("recording")
        .order_by("start_ms", "pk")
    )
    job.status = _status_of(job)  # cancelled while planning?
    for segment in pending:
        # Taken over by another worker (this one stalled past its lease): leave it the rest.
        if job.status != Status.RUNNING or claim_lost():
            break
        heard, confidence, spent = _hear(engine, segment, hotwords)
        _save_segment(job, segment, engine.name, (correct(heard), heard, confidence), spent)
    else:
        return True
    if job.status == Status.CANCELLING:
        _finish_cancelled(job)
    return False


def _status_of(job: TranscriptionJob) -> str:
    """The job's status now (a person may have cancelled it meanwhile)."""
    return str(TranscriptionJob.objects.filter(pk=job.pk).values_list("status", flat=True).get())


def _identity(text: str) -> str:
    return text


def _hear(
    engine: Engine, segment: Segment, hotwords: Sequence[str]
) -> tuple[str, float | None, float]:
    """(text, confidence, engine seconds) of one segment."""
    recording = segment.recording
    if recording is None or not recording.audio_path:
        return "", None, 0.0
    pcm = audio.read_pcm(
        media_path(recording.audio_path),
        segment.start_ms - recording.offset_ms,
        segment.end_ms - recording.offset_ms,
    )
    began = time.perf_counter()
    result = engine.recognise(pcm, hotwords=hotwords)
    return result.text.strip(), result.confidence, time.perf_counter() - began


def _save_segment(
    job: TranscriptionJob,
    segment: Segment,
    engine_name: str,
    heard: tuple[str, str, float | None],
    spent: float,
) -> None:
    """Save one result with the job's progress and read the job's status (three short
    queries: this runs once per segment and must stay cheap next to a fast engine), then
    broadcast both."""
    text, engine_text, confidence = heard
    done_ms = segment.end_ms - segment.start_ms
    with transaction.atomic():
        saved = Segment.objects.filter(pk=segment.pk, recognised=False).update(
            text=text,
            engine_text=engine_text,
            engine=engine_name,
            confidence=confidence,
            recognised=True,
        )
        if saved:
            TranscriptionJob.objects.filter(pk=job.pk).update(
                audio_ms_done=F("audio_ms_done") + done_ms,
                engine_seconds=F("engine_seconds") + spent,
            )
        # Read here, after this segment, so that the loop stops before the next one and
        # the event shows a cancel pressed meanwhile.
        job.status = _status_of(job)
        if not saved:
            return  # recognised meanwhile by a run that took the job over
        # The same sums in memory, for the event (exact unless two runs overlap).
        job.audio_ms_done += done_ms
        job.engine_seconds += spent
        segment.text, segment.engine_text, segment.engine = text, engine_text, engine_name
        segment.confidence, segment.recognised = confidence, True
        events.send_segments(job.meeting_id, [events.segment_dict(segment)], by=None)
        send_job(job)


# --- the end --------------------------------------------------------------------------


def _drop_unrecognised(job: TranscriptionJob) -> list[int]:
    """Remove the planned segments never recognised (a cancelled or failed job)."""
    ids = list(Segment.objects.filter(job=job, recognised=False).values_list("pk", flat=True))
    Segment.objects.filter(pk__in=ids).delete()
    return ids


def _finish(job: TranscriptionJob) -> None:
    # Segments the engine heard nothing in stay: their time is speech (VAD said so),
    # and in the editor a person can listen to them and type what was said.
    with transaction.atomic():
        if not TranscriptionJob.objects.filter(pk=job.pk, status=Status.RUNNING).update(
            status=Status.DONE, finished_at=clock.now()
        ):
            # Cancelled while the last segment was recognised: end it as asked, else it
            # would stay CANCELLING for ever and block the meeting's next job.
            _finish_cancelled(job)
            return
        job.refresh_from_db()
        audio_seconds = job.audio_ms_done / 1000
        record(
            AuditAction.TRANSCRIPTION_FINISHED,
            actor=Actor.system(),
            target=job.meeting,
            details={
                "job_id": job.pk,
                "engine": job.engine,
                "model": job.model,
                "segments": Segment.objects.filter(job=job).count(),
                "audio_seconds": round(audio_seconds, 3),
                "engine_seconds": round(job.engine_seconds, 3),
                "rtf": round(job.engine_seconds / audio_seconds, 4) if audio_seconds else None,
            },
        )
        send_job(job)


def _finish_cancelled(job: TranscriptionJob) -> None:
    with transaction.atomic():
        if not TranscriptionJob.objects.filter(pk=job.pk, status=Status.CANCELLING).update(
            status=Status.CANCELLED, finished_at=clock.now()
        ):
            return
        removed = _drop_unrecognised(job)
        job.refresh_from_db()
        if removed:
            events.send_segments(job.meeting_id, [], removed=removed, by=None)
        send_job(job)


def _fail(job: TranscriptionJob, failure: JobFailed) -> None:
    with transaction.atomic():
        if not TranscriptionJob.objects.filter(
            pk=job.pk, status__in=TranscriptionJob.ACTIVE
        ).update(status=Status.FAILED, error=failure.message, finished_at=clock.now()):
            return
        removed = _drop_unrecognised(job)
        job.refresh_from_db()
        record(
            AuditAction.TRANSCRIPTION_FAILED,
            actor=Actor.system(),
            target=job.meeting,
            details={"job_id": job.pk, "engine": job.engine, "error": failure.english},
        )
        if removed:
            events.send_segments(job.meeting_id, [], removed=removed, by=None)
        send_job(job)
