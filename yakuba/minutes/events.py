"""What the minutes app sends.  Everything about one meeting goes to its topic
``minutes.meeting.<id>``, watched by the meeting's pages (progress bar, transcript
editor, minutes); a page refetches what it shows whenever it (re)starts watching, so
nothing here needs to be persisted.  Only people who may read the meeting may watch.

Event shapes (``type`` is always ``"minutes"``):
- ``{"op": "job", "job": {id, status, percent, eta_seconds, error}}``: progress;
- ``{"op": "segments", "segments": [segment dicts], "removed": [ids], "by": user_id}``:
  recognised, edited, merged or split segments (``editor.segment_dict``);
- ``{"op": "speakers", "speakers": [{id, label, user_id}], "by": user_id}``;
- ``{"op": "minutes", "status": …, "revision": n, "by": user_id}``: the document changed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from yakuba.minutes.models import Segment
from yakuba.realtime.topics import broadcast_on_commit, register_topic


def segment_dict(segment: Segment) -> dict[str, Any]:
    """A segment as pages and events show it (also the editor's JSON)."""
    return {
        "id": segment.pk,
        "start_ms": segment.start_ms,
        "end_ms": segment.end_ms,
        "speaker_id": segment.speaker_id,
        "text": segment.text,
        "engine": segment.engine,
        "confidence": segment.confidence,
        "recognised": segment.recognised,
        "recording_id": segment.recording_id,
        "revision": segment.revision,
    }


def meeting_topic(meeting_id: int) -> str:
    return f"minutes.meeting.{meeting_id}"


def send_to_meeting(meeting_id: int, op: str, **data: Any) -> None:
    """Broadcast ``op`` to the meeting's watchers after the caller's transaction commits."""
    broadcast_on_commit(meeting_topic(meeting_id), {"type": "minutes", "op": op, **data})


def send_segments(
    meeting_id: int,
    segments: Iterable[dict[str, Any]],
    *,
    removed: Iterable[int] = (),
    by: int | None,
) -> None:
    send_to_meeting(meeting_id, "segments", segments=list(segments), removed=list(removed), by=by)


def _may_watch(user_id: int, topic: str) -> bool:
    from yakuba.directory.models import User
    from yakuba.minutes.access import may_read_meeting
    from yakuba.minutes.models import Meeting

    parts = topic.split(".")
    if len(parts) != 3 or parts[1] != "meeting" or not parts[2].isdigit():
        return False
    user = User.objects.filter(pk=user_id).first()
    meeting = Meeting.objects.filter(pk=int(parts[2])).first()
    return user is not None and meeting is not None and may_read_meeting(user, meeting)


register_topic("minutes", _may_watch)
