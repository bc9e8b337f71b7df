"""Writes of the transcript editor: a segment's text, merging and splitting segments,
a segment's speaker, and the meeting's speakers.

Every action runs in one transaction, locks the segment rows it changes
(``select_for_update`` on PostgreSQL; on SQLite every transaction is BEGIN IMMEDIATE
and so already holds the write lock), bumps ``revision``, writes its audit entry, and
tells the meeting's watchers after commit (``events.send_segments`` /
``send_to_meeting("speakers")``).

Neither of two editors loses an edit (``do_edit_segment``): a save carries the text its
editor started from (``base_text``) and that text's ``revision``.  When the segment
still reads ``base_text`` the new text is saved; otherwise the two edits are merged
character by character (``textmerge.merge3``), and only when both changed the same
stretch differently is the save refused as a conflict, which saves nothing and hands the
current text back so the person can resolve it.

The views check permission (``access_meeting_for_edit``, which also refuses once the
minutes are approved); the actions check it again for approval under the lock, since
minutes can be approved between the two.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from django.db import transaction
from django.utils.translation import gettext as _

from yakuba.audit.models import AuditAction
from yakuba.audit.record import record
from yakuba.directory.models import User
from yakuba.lib import clock
from yakuba.minutes import events
from yakuba.minutes.models import Meeting, Minutes, Segment, Speaker
from yakuba.minutes.textmerge import Conflict, merge3

__all__ = [
    "EditResult",
    "EditorError",
    "do_add_speaker",
    "do_edit_segment",
    "do_merge_segments",
    "do_rename_speaker",
    "do_set_segment_speaker",
    "do_split_segment",
    "speaker_dict",
]

MAX_TEXT_LENGTH = 20_000
MAX_LABEL_LENGTH = 100
# Line breaks and tabs may stay in a segment; other control characters never belong.
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
ASCII_WORD = re.compile(r"[A-Za-z0-9]")


class EditorError(ValueError):
    """A refused edit: ``message`` for people (Japanese), ``english`` for logs."""

    def __init__(self, message: str, english: str) -> None:
        super().__init__(message)
        self.message = message
        self.english = english


class SegmentGone(EditorError):
    """The segment was merged into another or removed meanwhile."""


@dataclass(frozen=True)
class EditResult:
    """What became of a save: ``saved`` (as sent), ``merged`` (with another person's
    change), ``unchanged`` (the text already read so), or ``conflict`` (nothing saved;
    ``segment`` holds the current text and revision)."""

    segment: Segment
    status: Literal["saved", "merged", "unchanged", "conflict"]
    conflicts: tuple[Conflict, ...] = ()

    @property
    def ok(self) -> bool:
        return self.status != "conflict"


def speaker_dict(speaker: Speaker) -> dict[str, Any]:
    return {"id": speaker.pk, "label": speaker.label, "user_id": speaker.user_id}


def _who(user: User) -> int:
    return int(user.pk)


def _locked_segments(ids: Iterable[int]) -> dict[int, Segment]:
    """The segments, locked in id order (two actions never wait on each other crosswise)."""
    rows = Segment.objects.select_for_update().filter(pk__in=sorted(set(ids))).order_by("pk")
    return {segment.pk: segment for segment in rows}


def _lock_one(segment: Segment) -> Segment:
    locked = _locked_segments([segment.pk]).get(segment.pk)
    if locked is None:
        raise SegmentGone(
            _("この発言は他の人が結合または削除しました。画面を更新してください。"),
            "the segment no longer exists",
        )
    return locked


def _check_editable(segment: Segment) -> None:
    if not segment.recognised:
        raise EditorError(
            _("この発言はまだ文字起こし中です。終わってから編集してください。"),
            "the segment has not been recognised yet",
        )


def _check_not_approved(meeting_id: int) -> None:
    if Minutes.objects.filter(meeting_id=meeting_id, status=Minutes.Status.APPROVED).exists():
        raise EditorError(
            _("議事録が承認済のため、発言記録は編集できません。"),
            "the minutes are approved",
        )


def clean_text(text: str) -> str:
    """A segment's text as stored: line ends as ``\\n``; refused when too long or when it
    holds control characters."""
    if not isinstance(text, str):
        raise EditorError(_("文章が正しくありません。"), "text must be a string")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if len(text) > MAX_TEXT_LENGTH:
        raise EditorError(
            _("発言は%(n)d文字以内にしてください。") % {"n": MAX_TEXT_LENGTH},
            "text too long",
        )
    if CONTROL.search(text):
        raise EditorError(_("文章に使えない制御文字が含まれています。"), "control characters")
    return text


def _stamp(segment: Segment, user: User) -> None:
    segment.revision += 1
    segment.edited_by = user
    segment.edited_at = clock.now()


def do_edit_segment(
    segment: Segment,
    *,
    user: User,
    text: str,
    base_revision: int,
    base_text: str | None = None,
) -> EditResult:
    """Save ``text`` as the segment's text (locks the segment row).

    ``base_text`` is what the editor started from, at ``base_revision``.  When the
    segment has changed since, the two edits are merged; without ``base_text`` a
    changed segment is a conflict.  A conflict saves nothing."""
    text = clean_text(text)
    if base_text is not None:
        base_text = clean_text(base_text)
    with transaction.atomic():
        current = _lock_one(segment)
        _check_editable(current)
        _check_not_approved(current.meeting_id)
        before = current.text
        if base_text is None:
            base_text = before if current.revision == base_revision else None
        if base_text is None:
            return EditResult(current, "conflict")
        status: Literal["saved", "merged"] = "saved"
        if before != base_text:
            merged = merge3(base_text, text, before)
            if merged.text is None:
                return EditResult(current, "conflict", merged.conflicts)
            text, status = merged.text, "merged"
        if text == before:
            return EditResult(current, "unchanged")
        current.text = text
        _stamp(current, user)
        current.save(update_fields=["text", "revision", "edited_by", "edited_at"])
        record(
            AuditAction.TRANSCRIPT_EDITED,
            actor=user,
            target=current.meeting,
            details={
                "op": "edit",
                "segment_ids": [current.pk],
                "before": before,
                "after": text,
                "merged": status == "merged",
                "base_revision": base_revision,
                "revision": current.revision,
            },
        )
        events.send_segments(current.meeting_id, [events.segment_dict(current)], by=_who(user))
    return EditResult(current, status)


def _join(first: str, second: str) -> str:
    """Two texts as one: Japanese runs on; words of Latin letters keep a space."""
    first, second = first.rstrip(), second.lstrip()
    if first and second and ASCII_WORD.match(first[-1]) and ASCII_WORD.match(second[0]):
        return f"{first} {second}"
    return first + second


def do_merge_segments(first: Segment, second: Segment, *, user: User) -> Segment:
    """Make one segment of two of a meeting (locks both): the texts joined in time
    order, the times spanned, the speaker and recording of the earlier one.  The later
    one is deleted; the survivor's revision passes both, so that a save based on
    either is merged or refused, never applied blindly."""
    if first.pk == second.pk:
        raise EditorError(_("同じ発言は結合できません。"), "cannot merge a segment with itself")
    with transaction.atomic():
        locked = _locked_segments([first.pk, second.pk])
        if first.pk not in locked or second.pk not in locked:
            raise SegmentGone(
                _("結合する発言が見つかりません。画面を更新してください。"),
                "a segment to merge no longer exists",
            )
        a, b = sorted(locked.values(), key=lambda s: (s.start_ms, s.pk))
        if a.meeting_id != b.meeting_id:
            raise EditorError(
                _("別の会議の発言とは結合できません。"), "segments of different meetings"
            )
        _check_editable(a)
        _check_editable(b)
        _check_not_approved(a.meeting_id)
        before = {"texts": [a.text, b.text], "ids": [a.pk, b.pk]}
        a.text = _join(a.text, b.text)
        a.engine_text = _join(a.engine_text, b.engine_text)
        a.start_ms = min(a.start_ms, b.start_ms)
        a.end_ms = max(a.end_ms, b.end_ms)
        if a.confidence is not None and b.confidence is not None:
            a.confidence = min(a.confidence, b.confidence)
        a.revision = max(a.revision, b.revision)
        _stamp(a, user)
        removed_id = b.pk
        b.delete()
        a.save(
            update_fields=[
                "text",
                "engine_text",
                "start_ms",
                "end_ms",
                "confidence",
                "revision",
                "edited_by",
                "edited_at",
            ]
        )
        record(
            AuditAction.TRANSCRIPT_EDITED,
            actor=user,
            target=a.meeting,
            details={
                "op": "merge",
                "segment_ids": before["ids"],
                "kept": a.pk,
                "before": before["texts"],
                "after": a.text,
            },
        )
        events.send_segments(
            a.meeting_id, [events.segment_dict(a)], removed=[removed_id], by=_who(user)
        )
    return a


def _split_time(segment: Segment, at_char: int, at_ms: int | None) -> int:
    if at_ms is None:
        length = len(segment.text)
        at_ms = segment.start_ms + round((segment.end_ms - segment.start_ms) * at_char / length)
    if not segment.start_ms < at_ms < segment.end_ms:
        raise EditorError(
            _("分割する時刻は発言の開始と終了の間を指定してください。"),
            "the split time must lie inside the segment",
        )
    return at_ms


def do_split_segment(
    segment: Segment,
    *,
    user: User,
    at_char: int,
    at_ms: int | None = None,
    base_revision: int | None = None,
) -> tuple[Segment, Segment]:
    """Split a segment in two at character ``at_char`` of its text (locks it).  The time
    is split at ``at_ms``, or in proportion to ``at_char`` in the text.  With
    ``base_revision``, a segment changed since is refused (the position would point
    into another text).  Returns (the first part, the new second part)."""
    with transaction.atomic():
        current = _lock_one(segment)
        _check_editable(current)
        _check_not_approved(current.meeting_id)
        if base_revision is not None and current.revision != base_revision:
            raise EditorError(
                _("他の人がこの発言を変更しました。最新の内容を確かめてから分割してください。"),
                "the segment changed since the split was asked for",
            )
        text = current.text
        left, right = text[:at_char].rstrip(), text[at_char:].lstrip()
        if not 0 < at_char < len(text) or not left or not right:
            raise EditorError(
                _("分割する位置は文章の途中（文字と文字の間）を指定してください。"),
                "the split position must lie inside the text",
            )
        split_ms = _split_time(current, at_char, at_ms)
        before = {"text": text, "start_ms": current.start_ms, "end_ms": current.end_ms}
        second = Segment.objects.create(
            meeting_id=current.meeting_id,
            recording_id=current.recording_id,
            job_id=current.job_id,
            speaker_id=current.speaker_id,
            start_ms=split_ms,
            end_ms=current.end_ms,
            text=right,
            engine_text="" if current.engine_text != text else right,
            engine=current.engine,
            confidence=current.confidence,
            recognised=True,
            edited_by=user,
            edited_at=clock.now(),
        )
        if current.engine_text == text:
            current.engine_text = left
        current.text = left
        current.end_ms = split_ms
        _stamp(current, user)
        current.save(
            update_fields=["text", "engine_text", "end_ms", "revision", "edited_by", "edited_at"]
        )
        record(
            AuditAction.TRANSCRIPT_EDITED,
            actor=user,
            target=current.meeting,
            details={
                "op": "split",
                "segment_ids": [current.pk, second.pk],
                "before": before,
                "after": [left, right],
                "at_char": at_char,
                "at_ms": split_ms,
            },
        )
        events.send_segments(
            current.meeting_id,
            [events.segment_dict(current), events.segment_dict(second)],
            by=_who(user),
        )
    return current, second


def do_set_segment_speaker(segment: Segment, *, user: User, speaker: Speaker | None) -> Segment:
    """Say who spoke a segment (``None``: nobody known); locks the segment."""
    if speaker is not None and speaker.meeting_id != segment.meeting_id:
        raise EditorError(_("この会議の話者を選んでください。"), "speaker of another meeting")
    with transaction.atomic():
        current = _lock_one(segment)
        _check_editable(current)
        _check_not_approved(current.meeting_id)
        before = current.speaker_id
        after = speaker.pk if speaker is not None else None
        if before == after:
            return current
        current.speaker = speaker
        _stamp(current, user)
        current.save(update_fields=["speaker", "revision", "edited_by", "edited_at"])
        labels = dict(
            Speaker.objects.filter(pk__in=[pk for pk in (before, after) if pk]).values_list(
                "pk", "label"
            )
        )
        record(
            AuditAction.SPEAKER_CHANGED,
            actor=user,
            target=current.meeting,
            details={
                "op": "assign",
                "segment_ids": [current.pk],
                "before": {"id": before, "label": labels.get(before, "") if before else ""},
                "after": {"id": after, "label": labels.get(after, "") if after else ""},
            },
        )
        events.send_segments(current.meeting_id, [events.segment_dict(current)], by=_who(user))
    return current


def clean_label(label: str, staff: User | None) -> str:
    """A speaker's name: stripped and NFC; the staff member's name when left empty."""
    label = unicodedata.normalize("NFC", (label or "").strip())
    if not label and staff is not None:
        label = staff.display_name
    if not label:
        raise EditorError(_("話者名を入力してください。"), "speaker label is empty")
    if len(label) > MAX_LABEL_LENGTH:
        raise EditorError(
            _("話者名は%(n)d文字以内で入力してください。") % {"n": MAX_LABEL_LENGTH},
            "speaker label too long",
        )
    if CONTROL.search(label) or "\n" in label or "\t" in label:
        raise EditorError(_("話者名に改行や制御文字は使えません。"), "control characters")
    return label


def _check_staff(staff: User | None) -> None:
    if staff is not None and not (staff.is_active and staff.kind == User.Kind.STAFF):
        raise EditorError(_("在職中の職員を選んでください。"), "not an active staff member")


def _check_label_free(meeting_id: int, label: str, *, but: int | None = None) -> None:
    taken = Speaker.objects.filter(meeting_id=meeting_id, label=label)
    if but is not None:
        taken = taken.exclude(pk=but)
    if taken.exists():
        raise EditorError(
            _("話者名「%(label)s」はこの会議ですでに使われています。") % {"label": label},
            "speaker label already used in this meeting",
        )


def _send_speakers(meeting_id: int, user: User) -> None:
    speakers = [speaker_dict(s) for s in Speaker.objects.filter(meeting_id=meeting_id)]
    events.send_to_meeting(meeting_id, "speakers", speakers=speakers, by=_who(user))


def do_add_speaker(
    meeting: Meeting, *, user: User, label: str, staff: User | None = None
) -> Speaker:
    """A new speaker of ``meeting`` (named ``label``, or after ``staff``)."""
    _check_staff(staff)
    label = clean_label(label, staff)
    with transaction.atomic():
        _check_not_approved(meeting.pk)
        _check_label_free(meeting.pk, label)
        last = Speaker.objects.filter(meeting=meeting).order_by("-sort_order").first()
        speaker = Speaker.objects.create(
            meeting=meeting,
            label=label,
            user=staff,
            sort_order=(last.sort_order + 1) if last is not None else 1,
        )
        record(
            AuditAction.SPEAKER_CHANGED,
            actor=user,
            target=meeting,
            details={
                "op": "add",
                "speaker_id": speaker.pk,
                "after": {"label": label, "user_id": speaker.user_id},
            },
        )
        _send_speakers(meeting.pk, user)
    return speaker


_KEEP: Any = object()


def do_rename_speaker(
    speaker: Speaker, *, user: User, label: str, staff: User | None = _KEEP
) -> Speaker:
    """Rename a speaker and, when ``staff`` is given, link it to that staff member
    (``None`` unlinks).  Every segment of the speaker shows the new name."""
    if staff is not _KEEP:
        _check_staff(staff)
    with transaction.atomic():
        current = Speaker.objects.select_for_update().filter(pk=speaker.pk).first()
        if current is None:
            raise EditorError(_("話者が見つかりません。"), "speaker not found")
        new_staff = current.user if staff is _KEEP else staff
        label = clean_label(label, new_staff)
        _check_not_approved(current.meeting_id)
        _check_label_free(current.meeting_id, label, but=current.pk)
        before = {"label": current.label, "user_id": current.user_id}
        current.label = label
        current.user = new_staff
        after = {"label": current.label, "user_id": current.user_id}
        if before == after:
            return current
        current.save(update_fields=["label", "user"])
        record(
            AuditAction.SPEAKER_CHANGED,
            actor=user,
            target=current.meeting,
            details={"op": "rename", "speaker_id": current.pk, "before": before, "after": after},
        )
        _send_speakers(current.meeting_id, user)
    return current
