"""Retention of chat messages (保存期間) and legal hold (訴訟ホールド).

A conversation keeps its messages for ``Conversation.retention_days`` days, or, when
that is empty, for ``CHAT_RETENTION_DAYS`` (the global setting, an operator's choice in
the environment); 0 in either place means for ever.  The daily job ``chat.retention``
deletes what is older, with everything hanging from it: revisions (the edit history),
reactions, attachments and their files under ``CHAT_MEDIA_DIR``, mention notices and
search rows (the triggers of ``migrations/0002_search``).  A conversation under legal
hold keeps everything, whatever its retention, until the hold is lifted.

Threads: a thread root stays while any of its replies is within the period (the replies
would otherwise go with it), so a thread goes when its last reply expires.  Replies that
expire before their root go on their own; the root's ``reply_count`` is left as it was
(the record of how many replies there were).  The purge is silent towards clients: a
member who still shows an expired message loses it on the next load.

Changing retention or the hold is for IT administrators and auditors
(``access.access_disclosure``); both are audited, and each run audits, per conversation,
how many rows went (``CHAT_MESSAGES_PURGED``: counts only, never text).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.utils.translation import gettext as _

from yakuba.audit.models import AuditAction
from yakuba.audit.record import Actor, record
from yakuba.chat.actions import ChatError
from yakuba.chat.attachments import remove_stored_files
from yakuba.chat.events import member_ids, notify_conversation
from yakuba.chat.models import Attachment, Conversation, Message
from yakuba.directory.models import User
from yakuba.lib import clock
from yakuba.tasks.registry import periodic

logger = logging.getLogger(__name__)

# Messages deleted per transaction: the conversation row stays locked (sends there
# wait) only for one batch.
PURGE_BATCH = 500
# About a hundred years: a typo like 365000 is refused rather than taken.
MAX_RETENTION_DAYS = 36_500
MAX_REASON_CHARS = 500
# Control characters (tabs and line breaks allowed): PostgreSQL refuses NUL in text and
# jsonb, and the reason is shown in the audit log.
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def effective_retention_days(conversation: Conversation) -> int | None:
    """Days ``conversation`` keeps its messages; None: for ever."""
    days = conversation.retention_days
    if days is None:
        days = settings.CHAT_RETENTION_DAYS
    return days or None


def retention_dict(conversation: Conversation) -> dict[str, Any]:
    return {
        "conversation": conversation.pk,
        "retention_days": conversation.retention_days,
        "global_retention_days": settings.CHAT_RETENTION_DAYS or None,
        "effective_retention_days": effective_retention_days(conversation),
        "legal_hold": conversation.legal_hold,
    }


# --- settings: retention and legal hold ---------------------------------------------


def check_set_retention(
    conversation: Conversation, *, days: int | None, acting_user: User
) -> Conversation:
    """Validate ``days`` (None: follow the global setting; 0: keep for ever; else
    1 to ``MAX_RETENTION_DAYS``), then ``do_set_retention``."""
    if days is not None and not 0 <= days <= MAX_RETENTION_DAYS:
        raise ChatError(
            _(
                "保存期間は0（無期限）から%(n)dまでの日数で指定してください。"
                "全体の設定に従うときは空にしてください。"
            )
            % {"n": MAX_RETENTION_DAYS},
            f"retention days must be 0..{MAX_RETENTION_DAYS} or null",
            code="bad_retention",
            field="days",
        )
    return do_set_retention(conversation, days=days, acting_user=acting_user)


def do_set_retention(
    conversation: Conversation, *, days: int | None, acting_user: User
) -> Conversation:
    """Set the conversation's own retention (None: the global setting).  Locks the
    conversation row.  Audited (before and after); members are told the conversation
    changed."""
    with transaction.atomic():
        locked = Conversation.objects.select_for_update().get(pk=conversation.pk)
        before = locked.retention_days
        if before == days:
            return locked
        locked.retention_days = days
        locked.save(update_fields=["retention_days"])
        record(
            AuditAction.CHAT_RETENTION_CHANGED,
            actor=acting_user,
            target=locked,
            details={
                "before": before,
                "after": days,
                "effective_days": effective_retention_days(locked),
            },
        )
        notify_conversation(locked, "changed", member_ids(locked.pk))
    return locked


def check_set_legal_hold(
    conversation: Conversation, *, on: bool, reason: str, acting_user: User
) -> Conversation:
    """Validate the reason (required both ways: the record must say why), then
    ``do_set_legal_hold``."""
    reason = reason.strip()
    if not reason:
        raise ChatError(
            _("訴訟ホールドを設定・解除する理由（事件名や請求番号など）を入力してください。"),
            "a legal hold change needs a reason",
            code="reason_required",
            field="reason",
        )
    if CONTROL.search(reason):
        raise ChatError(
            _("理由に使えない文字（制御文字）が含まれています。取り除いてください。"),
            "the reason holds control characters",
            code="bad_reason",
            field="reason",
        )
    if len(reason) > MAX_REASON_CHARS:
        raise ChatError(
            _("理由は%(n)d文字以内にしてください。") % {"n": MAX_REASON_CHARS},
            f"reason over {MAX_REASON_CHARS} characters",
            code="reason_too_long",
            field="reason",
        )
    return do_set_legal_hold(conversation, on=on, reason=reason, acting_user=acting_user)


def do_set_legal_hold(
    conversation: Conversation, *, on: bool, reason: str, acting_user: User
) -> Conversation:
    """Put the conversation under legal hold or lift it.  Locks the conversation row,
    which each purge batch also locks and re-reads: once this commits, no further
    message of the conversation is purged.  Audited with the reason; setting the state
    it already has changes and records nothing."""
    with transaction.atomic():
        locked = Conversation.objects.select_for_update().get(pk=conversation.pk)
        if locked.legal_hold == on:
            return locked
        locked.legal_hold = on
        locked.save(update_fields=["legal_hold"])
        record(
            AuditAction.CHAT_LEGAL_HOLD_CHANGED,
            actor=acting_user,
            target=locked,
            details={"on": on, "reason": reason},
        )
        notify_conversation(locked, "changed", member_ids(locked.pk))
    return locked


# --- the purge ------------------------------------------------------------------------


@dataclass
class PurgeCounts:
    """Rows deleted in one conversation, by kind (``chat.message``, ``chat.reaction``…),
    and files removed from disk."""

    rows: Counter[str] = field(default_factory=Counter)
    files: int = 0

    @property
    def messages(self) -> int:
        return self.rows["chat.message"]


@periodic("chat.retention", every=dt.timedelta(days=1))
def purge_expired_messages() -> None:
    """The daily job: ``run_retention`` now.  Safe to run twice at once (each batch
    locks its conversation and deletes what it finds then)."""
    run_retention()


def run_retention(now: dt.datetime | None = None) -> dict[int, PurgeCounts]:
    """Purge every conversation not under hold; returns the counts by conversation
    (those where something was deleted)."""
    now = now or clock.now()
    results: dict[int, PurgeCounts] = {}
    for conversation_id in _candidates(now):
        counts = purge_conversation(conversation_id, now=now)
        if counts.messages:
            results[conversation_id] = counts
    return results


def _candidates(now: dt.datetime) -> list[int]:
    """Conversations that may have expired messages: those with their own retention,
    and, when the global setting is on, those following it that hold a message older
    than it (one indexed EXISTS each)."""
    held = Q(legal_hold=True)
    own = Conversation.objects.filter(retention_days__gt=0).exclude(held)
    ids = set(own.values_list("pk", flat=True))
    if settings.CHAT_RETENTION_DAYS:
        cutoff = now - dt.timedelta(days=settings.CHAT_RETENTION_DAYS)
        old = Message.objects.filter(conversation=OuterRef("pk"), created_at__lt=cutoff)
        following = (
            Conversation.objects.filter(retention_days__isnull=True)
            .exclude(held)
            .filter(Exists(old))
        )
        ids.update(following.values_list("pk", flat=True))
    return sorted(ids)


def purge_conversation(conversation_id: int, *, now: dt.datetime) -> PurgeCounts:
    """Delete the conversation's expired messages in batches of ``PURGE_BATCH``.

    Each batch is one transaction that locks the conversation row (as sends and
    ``do_set_legal_hold`` do) and re-reads its retention and hold, so a hold set
    meanwhile stops the purge at the next batch.  The run's one audit entry goes into
    the transaction of the last batch (the one that finds less than a full batch, or
    finds the conversation held, kept for ever or gone); a process that dies between
    batches leaves the batches it committed without an entry (the trade for short
    locks: one transaction for a large purge would hold up the conversation's sends).
    Files are removed after each batch commits, so a rollback never loses a file whose
    row survived; a crash between commit and removal leaves an orphan file, never a
    row without its file."""
    totals = PurgeCounts()
    days: int | None = None
    cutoff: dt.datetime | None = None
    while True:
        with transaction.atomic():
            conversation = (
                Conversation.objects.select_for_update().filter(pk=conversation_id).first()
            )
            stopped = ""
            ids: list[int] = []
            if conversation is None:
                stopped = "conversation_deleted"
            elif conversation.legal_hold:
                stopped = "legal_hold"
            elif (days := effective_retention_days(conversation)) is None:
                stopped = "kept_forever"
            else:
                cutoff = now - dt.timedelta(days=days)
                ids = list(_expired(conversation_id, cutoff)[:PURGE_BATCH])
            if ids:
                paths = _files_of(ids)
                _deleted, by_model = Message.objects.filter(pk__in=ids).delete()
                totals.rows.update({label.lower(): n for label, n in by_model.items() if n})
                totals.files += sum(1 for pair in paths for path in pair if path)
                transaction.on_commit(partial(remove_files, paths))
            last = bool(stopped) or len(ids) < PURGE_BATCH
            if last and totals.messages:
                # Also when a hold or a change stopped the run halfway: what went before
                # is on record.
                record(
                    AuditAction.CHAT_MESSAGES_PURGED,
                    actor=Actor.system("保存期間"),
                    target=conversation or ("chat.conversation", str(conversation_id), ""),
                    details={
                        "retention_days": days,
                        "cutoff": cutoff.isoformat() if cutoff else None,
                        "counts": dict(sorted(totals.rows.items())),
                        "files": totals.files,
                        "stopped": stopped or None,
                    },
                )
        if last:
            break
    if totals.messages:
        logger.info(
            "chat retention: %s rows purged in conversation %s", totals.rows, conversation_id
        )
    return totals


def _expired(conversation_id: int, cutoff: dt.datetime) -> Any:
    """Ids of the conversation's messages older than ``cutoff``, less the thread roots
    that still have a reply within the period, oldest first."""
    recent_reply = Message.objects.filter(thread_root=OuterRef("pk"), created_at__gte=cutoff)
    return (
        Message.objects.filter(conversation_id=conversation_id, created_at__lt=cutoff)
        .exclude(Exists(recent_reply))
        .order_by("pk")
        .values_list("pk", flat=True)
    )


def _files_of(message_ids: list[int]) -> list[tuple[str, str]]:
    """(path, thumbnail path) of the files of these messages and of the replies that
    go with them."""
    rows = Attachment.objects.filter(
        Q(message_id__in=message_ids) | Q(message__thread_root_id__in=message_ids)
    ).values_list("path", "thumbnail_path")
    return list(rows)


def remove_files(files: list[tuple[str, str]]) -> None:
    """Delete these files (and their folders when empty) under CHAT_MEDIA_DIR
    (``attachments.remove_stored_files``, which refuses paths leading outside it),
    except a file another attachment row still names."""
    if not files:
        return
    paths = [path for path, _thumbnail in files]
    in_use = set(Attachment.objects.filter(path__in=paths).values_list("path", flat=True))
    for path, thumbnail in files:
        if path not in in_use:
            remove_stored_files(path, thumbnail)
