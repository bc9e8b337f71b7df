"""The recordings panel of a meeting's overview (``minutes/recordings/panel.html``):
``{% recordings_panel meeting may_edit as panel %}`` gathers what it shows, so the page
that includes the panel passes only ``meeting`` and ``may_edit``."""

from __future__ import annotations

import json
from typing import Any

from django import template
from django.conf import settings
from django.urls import reverse

from yakuba.minutes import asr, events
from yakuba.minutes.actions.recordings import max_upload_bytes
from yakuba.minutes.actions.transcription import current_job, job_dict
from yakuba.minutes.models import Meeting, Segment

register = template.Library()


@register.simple_tag
def recordings_panel(meeting: Meeting, may_edit: bool) -> dict[str, Any]:
    job = current_job(meeting)
    segments = Segment.objects.filter(meeting=meeting)
    return {
        "recordings": list(meeting.recordings.select_related("speaker")),
        "job": job,
        "job_json": json.dumps(job_dict(job) if job is not None else None),
        "job_active": job is not None and job.status in job.ACTIVE,
        # Reading the engines' status costs a little: only editors see the choice.
        "engines": asr.all_statuses() if may_edit else [],
        "default_engine": settings.MINUTES_ASR_ENGINE,
        "has_segments": segments.exists(),
        "has_edited": segments.filter(edited_by__isnull=False).exists(),
        "max_upload_bytes": max_upload_bytes(),
        "topic": events.meeting_topic(meeting.pk),
        "status_url": reverse("minutes:job_status", args=[meeting.pk]),
    }


@register.filter
def clock_duration(milliseconds: int | None) -> str:
    """1:02:03 for an hour and more, 2:03 below."""
    seconds = max(0, int(milliseconds or 0) // 1000)
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


@register.filter
def seconds(milliseconds: int | None) -> str:
    """12.5 for 12 500 ms (the offset of a track, as typed in the form)."""
    value = int(milliseconds or 0) / 1000
    return f"{value:g}"
