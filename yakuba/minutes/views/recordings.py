"""Recordings and transcription jobs of a meeting: upload, delete, play (with HTTP Range,
so that the transcript editor can seek), start and cancel a transcription, and the job's
status as JSON (the progress bar's fallback when the live channel is down).

Views parse, fetch through ``minutes.access`` and call one action.  A refusal answers
400 with the action's Japanese message (JSON for ``fetch`` callers that ask for it), a
success redirects to the meeting's overview with a message.
"""

from __future__ import annotations

import asyncio
import mimetypes
import re
from collections.abc import AsyncIterator, Generator
from pathlib import Path

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.handlers.asgi import ASGIRequest
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    JsonResponse,
    StreamingHttpResponse,
)
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import NoReverseMatch, URLPattern, path, reverse
from django.utils.translation import get_language
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST, require_safe

from yakuba.directory.models import User
from yakuba.minutes.access import access_meeting, access_meeting_for_edit, access_minutes_feature
from yakuba.minutes.actions.recordings import (
    RecordingRefused,
    do_delete_recording,
    do_upload_recording,
    media_path,
    too_large,
)
from yakuba.minutes.actions.transcription import (
    TranscriptionRefused,
    current_job,
    do_cancel_transcription,
    do_request_transcription,
    job_dict,
)
from yakuba.minutes.models import Meeting, Recording, TranscriptionJob

CHUNK_BYTES = 64 * 1024
RANGE_PATTERN = re.compile(r"^bytes=(\d*)-(\d*)$")
CONTENT_TYPES = {
    "wav": "audio/wav",
    "mp3": "audio/mpeg",
    "m4a": "audio/mp4",
    "opus": "audio/ogg",
}


def _user(request: HttpRequest) -> User:
    access_minutes_feature(request.user)
    assert isinstance(request.user, User)
    return request.user


def _overview(meeting: Meeting) -> str:
    try:
        return reverse("minutes:meeting", args=[meeting.pk])
    except NoReverseMatch:  # the overview page is another part's; its address is fixed
        return f"/minutes/{meeting.pk}/"


def _wants_json(request: HttpRequest) -> bool:
    return "application/json" in request.headers.get("Accept", "")


def _refused(
    request: HttpRequest, meeting: Meeting, error: RecordingRefused | TranscriptionRefused
) -> HttpResponse:
    language = get_language() or "ja"
    message = error.message if language.startswith("ja") else error.english
    if _wants_json(request):
        return JsonResponse({"error": message}, status=400)
    return render(
        request,
        "minutes/recordings/refused.html",
        {"meeting": meeting, "message": message, "back_url": _overview(meeting)},
        status=400,
    )


def _offset_ms(raw: str) -> int:
    """Seconds as typed (「12.5」) to milliseconds; refused when not a number."""
    text = raw.strip().replace(",", ".") or "0"
    try:
        seconds = float(text)
    except ValueError:
        raise RecordingRefused(
            _("開始位置は秒数（例: 12.5）で入力してください。"),
            "The offset must be a number of seconds.",
        ) from None
    if seconds != seconds or seconds in (float("inf"), float("-inf")):  # NaN, infinity
        raise RecordingRefused(
            _("開始位置は秒数（例: 12.5）で入力してください。"),
            "The offset must be a number of seconds.",
        )
    return round(seconds * 1000)


# --- upload and delete -------------------------------------------------------------------


@login_required
@require_POST
def upload(request: HttpRequest, meeting_id: int) -> HttpResponse:
    """A body over the limit is cut off by ``SizeLimitUploadHandler`` (first in
    ``FILE_UPLOAD_HANDLERS``): the fields before the file, the CSRF token among them,
    arrive, the file does not, and ``request.upload_refused`` says why."""
    user = _user(request)
    meeting = access_meeting_for_edit(user, meeting_id)
    uploaded = request.FILES.get("file")
    if getattr(request, "upload_refused", False):
        return _refused(request, meeting, too_large())
    try:
        if uploaded is None:
            raise RecordingRefused(_("録音ファイルを選んでください。"), "Choose a recording file.")
        speaker_label = request.POST.get("speaker", "")
        offset_ms = _offset_ms(request.POST.get("offset_seconds", "")) if speaker_label else 0
        recording = do_upload_recording(
            meeting, uploaded, user=user, speaker_label=speaker_label, offset_ms=offset_ms
        )
    except RecordingRefused as exc:
        return _refused(request, meeting, exc)
    if _wants_json(request):
        return JsonResponse({"recording_id": recording.pk}, status=201)
    messages.success(
        request, _("録音「%(name)s」を登録しました。") % {"name": recording.original_name}
    )
    return redirect(_overview(meeting))


def _recording(meeting: Meeting, recording_id: int) -> Recording:
    return get_object_or_404(Recording, pk=recording_id, meeting=meeting)


@login_required
@require_POST
def delete_recording(request: HttpRequest, meeting_id: int, recording_id: int) -> HttpResponse:
    user = _user(request)
    meeting = access_meeting_for_edit(user, meeting_id)
    recording = _recording(meeting, recording_id)
    try:
        do_delete_recording(recording, user=user)
    except RecordingRefused as exc:
        return _refused(request, meeting, exc)
    messages.success(
        request, _("録音「%(name)s」を削除しました。") % {"name": recording.original_name}
    )
    return redirect(_overview(meeting))


# --- playing -----------------------------------------------------------------------------


def _file_of(recording: Recording) -> tuple[Path, str]:
    """The normalised WAV once decoded (what the transcript's times refer to), else the
    original as uploaded."""
    if recording.audio_path and media_path(recording.audio_path).exists():
        return media_path(recording.audio_path), "audio/wav"
    original = media_path(recording.file_path)
    guessed = mimetypes.guess_type(original.name)[0]
    return original, CONTENT_TYPES.get(recording.format, guessed or "application/octet-stream")


class Unsatisfiable(ValueError):
    """A Range wholly outside the file (answered 416)."""


def _byte_range(header: str, size: int) -> tuple[int, int] | None:
    """(first, last) byte of a single ``Range: bytes=…``; None to send the whole file
    (no header, a malformed one, or several ranges, which a server may ignore).
    Raises ``Unsatisfiable``."""
    match = RANGE_PATTERN.match(header.strip())
    if match is None:
        return None
    first_text, last_text = match.groups()
    if not first_text and not last_text:
        return None
    if not first_text:  # the last N bytes
        length = int(last_text)
        if length == 0 or size == 0:
            raise Unsatisfiable(header)
        return max(0, size - length), size - 1
    first = int(first_text)
    last = int(last_text) if last_text else size - 1
    if first >= size or last < first:
        raise Unsatisfiable(header)
    return first, min(last, size - 1)


def _read_span(path: Path, first: int, length: int) -> Generator[bytes, None, None]:
    with path.open("rb") as file:
        file.seek(first)
        left = length
        while left > 0 and (chunk := file.read(min(CHUNK_BYTES, left))):
            left -= len(chunk)
            yield chunk


async def _aread_span(path: Path, first: int, length: int) -> AsyncIterator[bytes]:
    """``_read_span`` for an ASGI server: it consumes a sync iterator only with a
    warning, and each read runs in a thread so that the event loop never waits on disk."""
    chunks = _read_span(path, first, length)
    try:
        while (chunk := await asyncio.to_thread(next, chunks, b"")) != b"":
            yield chunk
    finally:
        chunks.close()


def _streamed(request: HttpRequest, path: Path, first: int, length: int) -> StreamingHttpResponse:
    content = (
        _aread_span(path, first, length)
        if isinstance(request, ASGIRequest)
        else _read_span(path, first, length)
    )
    response = StreamingHttpResponse(content)
    response["Content-Length"] = str(length)
    return response


@login_required
@require_safe
def recording_audio(request: HttpRequest, meeting_id: int, recording_id: int) -> HttpResponseBase:
    """The recording's audio, streamed; a ``Range`` request gets 206 and that span."""
    meeting = access_meeting(_user(request), meeting_id)
    recording = _recording(meeting, recording_id)
    file_path, content_type = _file_of(recording)
    if not file_path.exists():
        return HttpResponse(
            _("録音ファイルが見つかりません。"), status=404, content_type="text/plain"
        )
    size = file_path.stat().st_size
    try:
        span = _byte_range(request.headers.get("Range", ""), size)
    except Unsatisfiable:
        refused = HttpResponse(status=416)
        refused["Content-Range"] = f"bytes */{size}"
        return refused
    first, last = span if span is not None else (0, size - 1)
    response = _streamed(request, file_path, first, last - first + 1)
    if span is not None:
        response.status_code = 206
        response["Content-Range"] = f"bytes {first}-{last}/{size}"
    response["Content-Type"] = content_type
    response["Accept-Ranges"] = "bytes"
    response["Cache-Control"] = "private, max-age=3600"
    return response


# --- transcription jobs ------------------------------------------------------------------


@login_required
@require_POST
def transcribe(request: HttpRequest, meeting_id: int) -> HttpResponse:
    user = _user(request)
    meeting = access_meeting_for_edit(user, meeting_id)
    try:
        job = do_request_transcription(
            meeting,
            user=user,
            engine=request.POST.get("engine") or None,
            replace=request.POST.get("replace") == "on",
            replace_edited=request.POST.get("replace_edited") == "on",
        )
    except TranscriptionRefused as exc:
        return _refused(request, meeting, exc)
    if _wants_json(request):
        return JsonResponse({"job": job_dict(job)}, status=201)
    messages.success(request, _("文字起こしを開始しました。"))
    return redirect(_overview(meeting))


@login_required
@require_POST
def cancel_job(request: HttpRequest, meeting_id: int, job_id: int) -> HttpResponse:
    user = _user(request)
    meeting = access_meeting_for_edit(user, meeting_id)
    job = get_object_or_404(TranscriptionJob, pk=job_id, meeting=meeting)
    try:
        job = do_cancel_transcription(job, user=user)
    except TranscriptionRefused as exc:
        return _refused(request, meeting, exc)
    if _wants_json(request):
        return JsonResponse({"job": job_dict(job)})
    messages.success(request, _("文字起こしを中止しました。認識済みの発言は残ります。"))
    return redirect(_overview(meeting))


@login_required
@require_safe
def job_status(request: HttpRequest, meeting_id: int) -> JsonResponse:
    meeting = access_meeting(_user(request), meeting_id)
    job = current_job(meeting)
    return JsonResponse({"job": job_dict(job) if job is not None else None})


urlpatterns: list[URLPattern] = [
    path("<int:meeting_id>/recordings/upload/", upload, name="upload"),
    path(
        "<int:meeting_id>/recordings/<int:recording_id>/delete/",
        delete_recording,
        name="delete_recording",
    ),
    path(
        "<int:meeting_id>/recordings/<int:recording_id>/audio/",
        recording_audio,
        name="recording_audio",
    ),
    path("<int:meeting_id>/transcription/", transcribe, name="transcribe"),
    path("<int:meeting_id>/transcription/<int:job_id>/cancel/", cancel_job, name="cancel_job"),
    path("<int:meeting_id>/transcription/status/", job_status, name="job_status"),
]
