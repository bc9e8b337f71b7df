"""Writes of the minutes document: editing, summaries, the approval flow (作成中 →
確認依頼 → 承認済) with its comments, and the record of exports.

``do_*`` trusts its caller: the views check permission (``access_meeting_for_edit``,
``access_meeting_for_approval``) before calling.  Each action locks the minutes row
(``_locked``) for its short transaction, checks the state it expects, writes, audits,
and notifies after commit.  A state or revision the action did not expect raises a
``MinutesError`` and changes nothing.

Optimistic concurrency: every change of the document or of its status raises
``Minutes.revision``; a save made from an older revision is refused (``StaleMinutes``,
carrying the current minutes) so that nobody overwrites another person's edit unseen.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.urls import reverse

from yakuba.audit.models import AuditAction
from yakuba.audit.record import record
from yakuba.directory.models import User
from yakuba.lib import clock
from yakuba.lib.wareki import wareki
from yakuba.minutes import events, export, llm, summary
from yakuba.minutes.access import approver_ids
from yakuba.minutes.models import ActionItem, Meeting, Minutes, MinutesComment, Segment
from yakuba.realtime.send import send_event_on_commit

MAX_SUMMARY_CHARS = 50_000
MAX_DECISIONS_CHARS = 10_000
MAX_COMMENT_CHARS = 2_000
MAX_ACTION_ITEMS = 50


class MinutesError(Exception):
    """A change that cannot be made.  ``message`` is Japanese and says what to do;
    ``english`` is for logs and the API; ``code`` is stable."""

    code = "invalid"

    def __init__(self, message: str, english: str) -> None:
        super().__init__(english)
        self.message = message
        self.english = english


class MinutesStateError(MinutesError):
    """The minutes are not in the state the step needs (someone else moved them on)."""

    code = "state"


class StaleMinutes(MinutesError):
    """Saved from an older revision: ``current`` is what the other person saved."""

    code = "stale"

    def __init__(self, current: Minutes) -> None:
        super().__init__(
            "ほかの人が先に議事録を保存しました。入力した内容は消えていません。"
            "下に表示した最新の内容を確かめ、必要なら反映してからもう一度保存してください。",
            f"the minutes changed meanwhile (now revision {current.revision})",
        )
        self.current = current


@dataclass(frozen=True)
class ActionItemInput:
    """One row of 今後の予定 as typed: 内容, 担当 (free text or a staff member), 期限."""

    task: str
    assignee: str = ""
    assignee_user: User | None = None
    due_date: dt.date | None = None


# --- reading and locking ------------------------------------------------------------------


def minutes_for(meeting: Meeting) -> Minutes:
    """The meeting's minutes, made (an empty 作成中 draft) the first time they are needed."""
    existing = Minutes.objects.filter(meeting=meeting).first()
    if existing is not None:
        return existing
    try:
        with transaction.atomic():
            return Minutes.objects.create(meeting=meeting)
    except IntegrityError:  # made by a concurrent request: theirs is as good
        return Minutes.objects.get(meeting=meeting)


def current_minutes(meeting: Meeting) -> Minutes:
    """What a page shows: the saved minutes, or an unsaved empty draft (a reader's
    visit writes nothing)."""
    return Minutes.objects.filter(meeting=meeting).first() or Minutes(meeting=meeting)


def _locked(minutes: Minutes) -> Minutes:
    """The minutes row, locked until the transaction ends (on SQLite the IMMEDIATE
    transaction already holds the write lock).  Must run inside ``transaction.atomic()``.
    Minutes never saved (a page shows an unsaved draft) are made first, so that a step
    on them is answered by the state rules, never by a missing row."""
    if minutes._state.adding:
        minutes = minutes_for(minutes.meeting)
    return Minutes.objects.select_for_update().select_related("meeting").get(pk=minutes.pk)


def _expect(minutes: Minutes, *statuses: str) -> None:
    if minutes.status in statuses:
        return
    if minutes.status == Minutes.Status.APPROVED:
        raise MinutesStateError(
            "この議事録は承認済みのため変更できません。", "the minutes are already approved"
        )
    if minutes.status == Minutes.Status.REVIEW:
        raise MinutesStateError(
            "この議事録は確認依頼中です。変更するには承認者に差し戻してもらってください。",
            "the minutes are under review",
        )
    raise MinutesStateError(
        "この議事録は確認依頼されていません。ページを再読み込みしてください。",
        "the minutes are not under review",
    )


def _check_revision(minutes: Minutes, revision: int | None) -> None:
    if revision is not None and revision != minutes.revision:
        raise StaleMinutes(minutes)


def _touch(minutes: Minutes, fields: list[str]) -> None:
    minutes.revision += 1
    minutes.updated_at = clock.now()
    minutes.save(update_fields=[*fields, "revision", "updated_at"])


def _notify_page(minutes: Minutes, user: User, **extra: Any) -> None:
    events.send_to_meeting(
        minutes.meeting_id,
        "minutes",
        status=minutes.status,
        revision=minutes.revision,
        by=user.pk,
        **extra,
    )


# --- editing --------------------------------------------------------------------------------


def _clean_lines(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.replace("\r\n", "\n").split("\n")).strip()


def do_save_minutes(
    minutes: Minutes,
    *,
    user: User,
    revision: int,
    style: str,
    summary_text: str,
    decisions: str,
    action_items: Sequence[ActionItemInput],
) -> Minutes:
    """Save the editable parts (形式, 要点, 決定事項, 今後の予定) of 作成中 minutes made
    from ``revision``; ``StaleMinutes`` when someone saved since.  Locks the row."""
    if style not in Minutes.Style.values:
        raise MinutesError("形式は逐語録か要点筆記を選んでください。", f"bad style {style!r}")
    summary_text, decisions = _clean_lines(summary_text), _clean_lines(decisions)
    if len(summary_text) > MAX_SUMMARY_CHARS or len(decisions) > MAX_DECISIONS_CHARS:
        raise MinutesError(
            "要点または決定事項が長すぎます。分けて記載してください。", "text too long"
        )
    items = [item for item in action_items if item.task.strip()]
    if len(items) > MAX_ACTION_ITEMS:
        raise MinutesError(
            f"今後の予定は{MAX_ACTION_ITEMS}件までです。", f"more than {MAX_ACTION_ITEMS} items"
        )
    with transaction.atomic():
        minutes = _locked(minutes)
        _expect(minutes, Minutes.Status.DRAFT)
        _check_revision(minutes, revision)
        fields = ["style", "summary", "decisions"]
        if summary_text != minutes.summary:
            # A summary typed or corrected by hand is no longer the machine's.
            minutes.summary_method = (
                Minutes.SummaryMethod.MANUAL if summary_text else Minutes.SummaryMethod.NONE
            )
            fields.append("summary_method")
        minutes.style, minutes.summary, minutes.decisions = style, summary_text, decisions
        _touch(minutes, fields)
        minutes.action_items.all().delete()
        ActionItem.objects.bulk_create(
            [
                ActionItem(
                    minutes=minutes,
                    task=item.task.strip()[:300],
                    assignee=item.assignee.strip()[:100],
                    assignee_user=item.assignee_user,
                    due_date=item.due_date,
                    sort_order=index,
                )
                for index, item in enumerate(items)
            ]
        )
        record(
            AuditAction.MINUTES_CHANGED,
            actor=user,
            target=minutes,
            details={
                "revision": minutes.revision,
                "style": style,
                "summary_chars": len(summary_text),
                "decisions": len(minutes.decision_list()),
                "action_items": len(items),
            },
        )
        _notify_page(minutes, user)
    return minutes


def transcript_lines(meeting: Meeting) -> list[tuple[str, int, str]]:
    """``(text, start_ms, speaker)`` of the recognised segments, in time order."""
    rows = (
        Segment.objects.filter(meeting=meeting)
        .exclude(text="")
        .select_related("speaker")
        .order_by("start_ms", "pk")
    )
    return [
        (segment.text, segment.start_ms, segment.speaker.label if segment.speaker else "")
        for segment in rows
    ]


def do_summarise(
    minutes: Minutes, *, user: User, method: str, revision: int | None = None
) -> Minutes:
    """Write the 要点筆記 by ``method`` ("extractive" or "llm") and switch the minutes to
    it.  決定事項 candidates fill 決定事項 only when it is empty, and the LLM's
    今後の予定 fill the plans only when there are none (never overwrite what people
    wrote).  The LLM is asked before the transaction (it may take minutes; no
    lock is held meanwhile), and its failure changes nothing."""
    meeting = minutes.meeting
    if method not in (Minutes.SummaryMethod.EXTRACTIVE, Minutes.SummaryMethod.LLM):
        raise MinutesError("要約の方法が正しくありません。", f"bad method {method!r}")
    if minutes.status != Minutes.Status.DRAFT:
        _expect(minutes, Minutes.Status.DRAFT)
    lines = transcript_lines(meeting)
    if not lines:
        raise MinutesError(
            "要約する発言がありません。先に文字起こしをしてください。", "no transcript to summarise"
        )
    result: llm.LlmResult | None = None
    plans: list[llm.PlanRow] = []
    if method == Minutes.SummaryMethod.LLM:
        result = _ask_llm(meeting, lines)
        parsed = llm.parse_output(result.output)
        text, candidates = parsed.summary, parsed.decisions
        plans = [llm.parse_plan(line) for line in parsed.plans]
    else:
        made = summary.summarise(lines, meeting.agenda_items())
        text, candidates = made.text(), made.decisions
    with transaction.atomic():
        minutes = _locked(minutes)
        _expect(minutes, Minutes.Status.DRAFT)
        _check_revision(minutes, revision)
        minutes.summary = text[:MAX_SUMMARY_CHARS]
        minutes.summary_method = method
        minutes.style = Minutes.Style.SUMMARY
        fields = ["summary", "summary_method", "style"]
        if not minutes.decisions.strip() and candidates:
            minutes.decisions = "\n".join(candidates)
            fields.append("decisions")
        if result is not None:
            minutes.llm_prompt, minutes.llm_output, minutes.llm_model = (
                result.prompt,
                result.output,
                result.model,
            )
            fields += ["llm_prompt", "llm_output", "llm_model"]
        _touch(minutes, fields)
        plans_proposed = _propose_plans(minutes, plans)
        record(
            AuditAction.MINUTES_SUMMARISED,
            actor=user,
            target=minutes,
            details={
                "method": method,
                "model": result.model if result else "",
                "revision": minutes.revision,
                "summary_chars": len(minutes.summary),
                "decisions_proposed": "decisions" in fields,
                "plans_proposed": plans_proposed,
            },
        )
        _notify_page(minutes, user)
    return minutes


def _ask_llm(meeting: Meeting, lines: list[tuple[str, int, str]]) -> llm.LlmResult:
    """The ward LLM's answer for ``meeting``; an ``LlmError`` becomes a ``MinutesError``."""
    transcript = "\n".join(f"{speaker or '発言者'}：{text}" for text, _, speaker in lines)
    messages = llm.build_messages(
        title=meeting.title,
        date_text=export.date_span(meeting.starts_at, meeting.ends_at),
        agenda=meeting.agenda_items(),
        transcript=transcript,
    )
    try:
        return llm.complete(messages)
    except llm.LlmError as exc:
        raise MinutesError(exc.message, exc.english) from exc


def _propose_plans(minutes: Minutes, plans: Sequence[llm.PlanRow]) -> int:
    """今後の予定 from the LLM's answer, only when the minutes have none yet (never
    overwrite what people wrote).  Returns how many were added."""
    rows = [plan for plan in plans if plan.task][:MAX_ACTION_ITEMS]
    if not rows or minutes.action_items.exists():
        return 0
    ActionItem.objects.bulk_create(
        ActionItem(
            minutes=minutes,
            task=plan.task[:300],
            assignee=plan.assignee[:100],
            due_date=plan.due,
            sort_order=index,
        )
        for index, plan in enumerate(rows)
    )
    return len(rows)


# --- approval flow ------------------------------------------------------------------------


def _clean_comment(text: str) -> str:
    text = _clean_lines(text)
    if len(text) > MAX_COMMENT_CHARS:
        raise MinutesError(
            f"コメントは{MAX_COMMENT_CHARS}文字以内にしてください。", "comment too long"
        )
    return text


def _notify_people(minutes: Minutes, op: str, user: User, recipients: set[int]) -> None:
    """A notice in the user streams of the people concerned (never the actor)."""
    meeting = minutes.meeting
    send_event_on_commit(
        {
            "type": "minutes",
            "op": op,
            "meeting_id": meeting.pk,
            "title": meeting.title,
            "status": minutes.status,
            "by": user.pk,
        },
        recipients - {user.pk},
    )


def do_request_review(
    minutes: Minutes, *, user: User, comment: str = "", revision: int | None = None
) -> Minutes:
    """作成中 → 確認依頼; the approvers (organiser, 所属長) are told."""
    comment = _clean_comment(comment)
    with transaction.atomic():
        minutes = _locked(minutes)
        _expect(minutes, Minutes.Status.DRAFT)
        _check_revision(minutes, revision)
        minutes.status = Minutes.Status.REVIEW
        minutes.review_requested_by = user
        minutes.review_requested_at = clock.now()
        _touch(minutes, ["status", "review_requested_by", "review_requested_at"])
        MinutesComment.objects.create(
            minutes=minutes, author=user, kind=MinutesComment.Kind.REVIEW_REQUESTED, text=comment
        )
        record(
            AuditAction.MINUTES_REVIEW_REQUESTED,
            actor=user,
            target=minutes,
            details={"revision": minutes.revision, "comment": comment},
        )
        _notify_page(minutes, user)
        _notify_people(minutes, "review_requested", user, approver_ids(minutes.meeting))
    return minutes


def do_return_minutes(minutes: Minutes, *, user: User, comment: str) -> Minutes:
    """確認依頼 → 作成中, with the reason (required); the requester is told."""
    comment = _clean_comment(comment)
    if not comment:
        raise MinutesError(
            "差し戻すときは、直してほしい点をコメントに書いてください。",
            "a return needs a comment",
        )
    with transaction.atomic():
        minutes = _locked(minutes)
        _expect(minutes, Minutes.Status.REVIEW)
        minutes.status = Minutes.Status.DRAFT
        _touch(minutes, ["status"])
        MinutesComment.objects.create(
            minutes=minutes, author=user, kind=MinutesComment.Kind.RETURNED, text=comment
        )
        record(
            AuditAction.MINUTES_RETURNED,
            actor=user,
            target=minutes,
            details={"revision": minutes.revision, "comment": comment},
        )
        _notify_page(minutes, user)
        _notify_people(minutes, "returned", user, _requester(minutes))
    return minutes


def do_approve_minutes(minutes: Minutes, *, user: User, comment: str = "") -> Minutes:
    """確認依頼 → 承認済.  Freezes ``approved_text`` (the whole rendered document);
    from then on nothing of the meeting is editable (``access.may_edit_meeting``)."""
    comment = _clean_comment(comment)
    with transaction.atomic():
        minutes = _locked(minutes)
        _expect(minutes, Minutes.Status.REVIEW)
        minutes.status = Minutes.Status.APPROVED
        minutes.approved_by = user
        minutes.approved_at = clock.now()
        minutes.approved_text = export.document_text(
            export.build_document(minutes.meeting, minutes)
        )
        _touch(minutes, ["status", "approved_by", "approved_at", "approved_text"])
        MinutesComment.objects.create(
            minutes=minutes, author=user, kind=MinutesComment.Kind.APPROVED, text=comment
        )
        record(
            AuditAction.MINUTES_APPROVED,
            actor=user,
            target=minutes,
            details={
                "revision": minutes.revision,
                "comment": comment,
                "approved_chars": len(minutes.approved_text),
            },
        )
        _notify_page(minutes, user)
        _notify_people(minutes, "approved", user, _requester(minutes))
        announce_approved(minutes)
    return minutes


def announce_approved(minutes: Minutes) -> None:
    """Tell the meeting's people that its minutes are approved: a message in the chat
    channel of the organiser's 所属 (so that the section finds them where it talks), and
    a real-time notice to the attendees and the organiser.  Runs inside the approving
    transaction; both go out after commit."""
    from yakuba.chat.notices import notify_department

    meeting = minutes.meeting
    if meeting.department is not None:
        start = clock.local(meeting.starts_at)
        notify_department(
            meeting.department,
            f"議事録が承認されました: {meeting.title}（{wareki(start)}の会議）\n"
            f"{settings.SITE_URL}{reverse('minutes:document', args=(meeting.pk,))}",
            label="議事録",
        )
    people = set(meeting.attendees.values_list("pk", flat=True)) | {meeting.organiser_id}
    send_event_on_commit(
        {
            "type": "minutes",
            "op": "announced",
            "meeting_id": meeting.pk,
            "title": meeting.title,
            "status": minutes.status,
        },
        people,
    )


def _requester(minutes: Minutes) -> set[int]:
    return {minutes.review_requested_by_id} if minutes.review_requested_by_id else set()


def do_comment_minutes(minutes: Minutes, *, user: User, text: str) -> MinutesComment:
    """A comment on the minutes, in any state."""
    text = _clean_comment(text)
    if not text:
        raise MinutesError("コメントを入力してください。", "empty comment")
    with transaction.atomic():
        minutes = _locked(minutes)
        comment = MinutesComment.objects.create(minutes=minutes, author=user, text=text)
        record(
            AuditAction.MINUTES_COMMENTED,
            actor=user,
            target=minutes,
            details={"comment_id": comment.pk, "text": text},
        )
        _notify_page(minutes, user, comment_id=comment.pk)
    return comment


def do_record_export(meeting: Meeting, *, user: User, file_format: str) -> None:
    """Audit a download of the minutes (.docx or PDF)."""
    minutes = Minutes.objects.filter(meeting=meeting).first()
    with transaction.atomic():
        record(
            AuditAction.MINUTES_EXPORTED,
            actor=user,
            target=minutes if minutes is not None else meeting,
            details={
                "format": file_format,
                "meeting_id": meeting.pk,
                "status": minutes.status if minutes else Minutes.Status.DRAFT,
            },
        )
