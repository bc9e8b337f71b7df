"""Uploading and deleting recordings (録音).

An upload is stored under ``MINUTES_MEDIA_DIR/meeting-<id>/<random>.<format>``: never
the client's file name, which is kept only in the row (and may hold anything).  The file
is written under a hidden temporary name first, probed (a real decoder opens it), then
renamed; a refusal, or a database error after the rename, removes it again, so that a
refused upload leaves neither a row nor a file behind.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
from pathlib import Path

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.utils.translation import gettext as _

from yakuba.audit.models import AuditAction
from yakuba.audit.record import record
from yakuba.directory.models import User
from yakuba.minutes import audio, events
from yakuba.minutes.models import Meeting, Recording, Segment, Speaker, TranscriptionJob

log = logging.getLogger(__name__)

# The longest time a track may start after the meeting's start (a whole day).
MAX_OFFSET_MS = 24 * 3600 * 1000


class RecordingRefused(ValueError):
    """An upload or deletion that cannot be done.  ``message`` is Japanese and says what
    to do; ``english`` says it in English (logs, API)."""

    def __init__(self, message: str, english: str) -> None:
        super().__init__(message)
        self.message = message
        self.english = english


def max_upload_bytes() -> int:
    return int(settings.MINUTES_MAX_UPLOAD_MB) * 1024 * 1024


def too_large() -> RecordingRefused:
    limit = settings.MINUTES_MAX_UPLOAD_MB
    return RecordingRefused(
        _("ファイルが大きすぎます。%(mb)d MB 以下のファイルを選んでください。") % {"mb": limit},
        f"The file is too large: at most {limit} MB is accepted.",
    )


def formats_label() -> str:
    return ", ".join(audio.SUPPORTED_FORMATS)


def _unusable(exc: audio.AudioError) -> RecordingRefused:
    """The decoder's reason, with the accepted formats named (once)."""
    message, english = str(exc), exc.english
    if "対応している形式" not in message:
        message += _("対応している形式は %(formats)s です。") % {"formats": formats_label()}
    if "Accepted formats" not in english:
        english += f" Accepted formats: {formats_label()}."
    return RecordingRefused(message, english)


def media_root() -> Path:
    return Path(settings.MINUTES_MEDIA_DIR)


def media_path(relative: str) -> Path:
    """The absolute path of a file stored under ``MINUTES_MEDIA_DIR``."""
    return media_root() / relative


def job_is_active(meeting: Meeting) -> bool:
    return TranscriptionJob.objects.filter(
        meeting=meeting, status__in=TranscriptionJob.ACTIVE
    ).exists()


def _busy() -> RecordingRefused:
    return RecordingRefused(
        _(
            "文字起こしの実行中は録音を追加・削除できません。完了するか中止してから操作してください。"
        ),
        "Recordings cannot be added or removed while a transcription runs.",
    )


def _check_track(speaker_label: str, offset_ms: int) -> str:
    label = speaker_label.strip()
    if len(label) > 100:
        raise RecordingRefused(
            _("話者名は100文字以内で入力してください。"), "The speaker name is too long."
        )
    if not 0 <= offset_ms <= MAX_OFFSET_MS:
        raise RecordingRefused(
            _("開始位置は0秒から24時間までの範囲で指定してください。"),
            "The offset must be between 0 and 24 hours.",
        )
    return label


def _store(uploaded_file: UploadedFile, partial: Path) -> tuple[int, str]:
    """Copy the upload to ``partial`` chunk by chunk; (size, sha256).  Stops as soon as
    the limit is passed: ``size`` may be absent or wrong for a streamed upload."""
    digest = hashlib.sha256()
    size = 0
    limit = max_upload_bytes()
    with partial.open("xb") as out:
        for chunk in uploaded_file.chunks():
            size += len(chunk)
            if size > limit:
                raise too_large()
            digest.update(chunk)
            out.write(chunk)
    return size, digest.hexdigest()


def _speaker_for(meeting: Meeting, label: str) -> Speaker | None:
    if not label:
        return None
    speaker = Speaker.objects.filter(meeting=meeting, label=label).first()
    if speaker is None:
        speaker = Speaker.objects.create(
            meeting=meeting, label=label, sort_order=meeting.speakers.count() + 1
        )
    return speaker


def do_upload_recording(
    meeting: Meeting,
    uploaded_file: UploadedFile,
    *,
    user: User,
    speaker_label: str = "",
    offset_ms: int = 0,
) -> Recording:
    """Store ``uploaded_file`` as a recording of ``meeting``.  With ``speaker_label`` it
    is that speaker's own track (multi-track input), placed ``offset_ms`` after the
    meeting's start; the speaker is made or reused by label.  Raises
    ``RecordingRefused`` (too large, not a supported audio file, a job running), in which
    case nothing is left behind."""
    label = _check_track(speaker_label, offset_ms)
    if uploaded_file.size is not None and uploaded_file.size > max_upload_bytes():
        raise too_large()
    if job_is_active(meeting):
        raise _busy()
    folder = media_root() / f"meeting-{meeting.pk}"
    folder.mkdir(parents=True, exist_ok=True)
    name = secrets.token_hex(16)
    partial = folder / f".{name}.part"
    final: Path | None = None
    try:
        size, sha256 = _store(uploaded_file, partial)
        try:
            probe = audio.probe(partial)
        except audio.AudioError as exc:
            raise _unusable(exc) from exc
        final = folder / f"{name}.{probe.format}"
        os.replace(partial, final)
        with transaction.atomic():
            recording = Recording.objects.create(
                meeting=meeting,
                speaker=_speaker_for(meeting, label),
                offset_ms=offset_ms,
                original_name=(uploaded_file.name or "")[-255:],
                file_path=str(final.relative_to(media_root())),
                format=probe.format,
                size_bytes=size,
                duration_ms=probe.duration_ms,
                sha256=sha256,
                uploaded_by=user,
            )
            record(
                AuditAction.RECORDING_UPLOADED,
                actor=user,
                target=recording,
                details={
                    "meeting_id": meeting.pk,
                    "format": probe.format,
                    "size_bytes": size,
                    "duration_ms": probe.duration_ms,
                    "sha256": sha256,
                    "speaker": label,
                    "offset_ms": offset_ms,
                },
            )
    except BaseException:
        # Nothing of a refused or failed upload may stay on disk.
        partial.unlink(missing_ok=True)
        if final is not None:
            final.unlink(missing_ok=True)
        raise
    return recording


def do_delete_recording(recording: Recording, *, user: User) -> None:
    """Delete ``recording``, the segments made from it and (after commit) its files.
    Refused while a transcription of the meeting runs."""
    meeting = recording.meeting
    if job_is_active(meeting):
        raise _busy()
    files = [recording.file_path, recording.audio_path]
    with transaction.atomic():
        removed = list(Segment.objects.filter(recording=recording).values_list("pk", flat=True))
        Segment.objects.filter(pk__in=removed).delete()
        record(
            AuditAction.RECORDING_DELETED,
            actor=user,
            target=recording,
            details={
                "meeting_id": meeting.pk,
                "name": recording.original_name,
                "sha256": recording.sha256,
                "segments_removed": len(removed),
            },
        )
        recording.delete()
        if removed:
            events.send_segments(meeting.pk, [], removed=removed, by=user.pk)
        transaction.on_commit(lambda: _remove_files(files))


def _remove_files(relative_paths: list[str]) -> None:
    for relative in relative_paths:
        if relative:
            try:
                media_path(relative).unlink(missing_ok=True)
            except OSError:
                log.exception("could not remove %s", relative)
