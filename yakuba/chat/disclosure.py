"""Exports of chat messages for information-disclosure requests (情報公開請求).

An export covers one conversation, or one person's messages everywhere, or both, within
optional Tokyo dates, and holds every message in scope with its full record: sender,
times, current text, each earlier text (what was replaced by an edit or deletion, by
whom and when), reactions (who, when), attachment names and the thread root.  Deleted
messages are included: their text is in their ``delete`` revision.

Two formats:
- CSV in UTF-8 with a BOM (Excel opens it as UTF-8): one row per message (種別
  「メッセージ」), followed by one row per earlier text (「編集前」「削除前」).  A cell
  that Excel would run as a formula (starting with = + - @, a tab or a return) gets a
  leading apostrophe: the JSON is the exact record;
- JSON: one object with the request (reference, who, when, scope) and ``messages``.

Only IT administrators and auditors export (``access.access_disclosure``, checked by
the caller); each export leaves a ``DisclosureExport`` row and a ``CHAT_EXPORTED``
audit entry with the reference and the count, never the text.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Iterable, Iterator
from typing import Any

from django.db import transaction
from django.db.models import Prefetch, Q, QuerySet
from django.utils.translation import gettext as _

from yakuba.audit.models import AuditAction
from yakuba.audit.record import record
from yakuba.chat.actions import ChatError
from yakuba.chat.models import (
    Attachment,
    Conversation,
    DisclosureExport,
    Message,
    MessageRevision,
    Reaction,
)
from yakuba.chat.search import tokyo_day_start
from yakuba.directory.models import User
from yakuba.lib import clock

FORMATS = ("csv", "json")
MAX_REFERENCE_CHARS = 100
CHANGE_LABELS = {"edit": "編集前", "delete": "削除前"}
# Rows read from the database at a time (each with its prefetched revisions etc.).
CHUNK = 500

CSV_COLUMNS = (
    "種別",
    "会話ID",
    "会話名",
    "メッセージID",
    "連番",
    "スレッド親ID",
    "送信者ID",
    "送信者",
    "送信日時",
    "本文",
    "添付ファイル",
    "リアクション",
    "編集日時",
    "削除日時",
    "削除者",
    "変更日時",
    "変更者",
)
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _time(moment: dt.datetime | None) -> str:
    return clock.local(moment).isoformat() if moment else ""


def _name(user: User | None) -> str:
    return str(user) if user is not None else ""


def _person(user: User | None) -> dict[str, Any] | None:
    if user is None:
        return None
    return {"id": user.pk, "username": user.username, "name": str(user)}


def check_export_scope(
    *,
    conversation: Conversation | None,
    person: User | None,
    date_from: dt.date | None,
    date_to: dt.date | None,
    reference: str,
    fmt: str,
) -> str:
    """Validate an export request; returns the reference, stripped."""
    reference = reference.strip()
    if not reference:
        raise ChatError(
            _("請求番号（情報公開請求の受付番号など）を入力してください。"),
            "an export needs the request's reference",
            code="reference_required",
            field="reference",
        )
    if len(reference) > MAX_REFERENCE_CHARS:
        raise ChatError(
            _("請求番号は%(n)d文字以内にしてください。") % {"n": MAX_REFERENCE_CHARS},
            f"reference over {MAX_REFERENCE_CHARS} characters",
            code="reference_too_long",
            field="reference",
        )
    if fmt not in FORMATS:
        raise ChatError(
            _("出力形式は csv か json を指定してください。"),
            "format must be csv or json",
            code="bad_format",
            field="format",
        )
    if conversation is None and person is None:
        raise ChatError(
            _("出力する会話か職員（またはその両方）を指定してください。"),
            "an export needs a conversation or a person",
            code="scope_required",
            field="conversation",
        )
    if date_from is not None and date_to is not None and date_from > date_to:
        raise ChatError(
            _("期間の開始日が終了日より後になっています。日付を確かめてください。"),
            "date_from is after date_to",
            code="bad_dates",
            field="from",
        )
    return reference


def messages_in_scope(
    *,
    conversation: Conversation | None,
    person: User | None,
    date_from: dt.date | None,
    date_to: dt.date | None,
) -> QuerySet[Message]:
    """The messages an export covers, in order (a conversation: by seq; a person across
    conversations: by time), with everything the export shows loaded in a few queries
    per chunk."""
    scope = Q()
    if conversation is not None:
        scope &= Q(conversation=conversation)
    if person is not None:
        scope &= Q(sender=person)
    if date_from is not None:
        scope &= Q(created_at__gte=tokyo_day_start(date_from))
    if date_to is not None:
        scope &= Q(created_at__lt=tokyo_day_start(date_to + dt.timedelta(days=1)))
    order = ("seq",) if conversation is not None else ("created_at", "pk")
    return (
        Message.objects.filter(scope)
        .select_related("conversation", "sender", "deleted_by")
        .prefetch_related(
            Prefetch(
                "revisions",
                queryset=MessageRevision.objects.select_related("replaced_by").order_by(
                    "replaced_at", "pk"
                ),
            ),
            Prefetch(
                "reactions",
                queryset=Reaction.objects.select_related("user").order_by("created_at", "pk"),
            ),
            Prefetch("attachments", queryset=Attachment.objects.order_by("pk")),
        )
        .order_by(*order)
    )


def message_record(message: Message) -> dict[str, Any]:
    """One message as the JSON export has it (all times in Asia/Tokyo)."""
    return {
        "id": message.pk,
        "conversation": {"id": message.conversation_id, "name": str(message.conversation)},
        "seq": message.seq,
        "kind": message.kind,
        "thread_root": message.thread_root_id,
        "forwarded_from": message.forwarded_from_id,
        "sender": _person(message.sender),
        "sender_label": message.sender_label,
        "created_at": _time(message.created_at),
        "text": message.text,
        "edited_at": _time(message.edited_at) or None,
        "deleted_at": _time(message.deleted_at) or None,
        "deleted_by": _person(message.deleted_by),
        "revisions": [
            {
                "change": revision.change,
                "text": revision.text,
                "replaced_at": _time(revision.replaced_at),
                "replaced_by": _person(revision.replaced_by),
            }
            for revision in message.revisions.all()
        ],
        "reactions": [
            {"emoji": r.emoji, "user": _person(r.user), "at": _time(r.created_at)}
            for r in message.reactions.all()
        ],
        "attachments": [
            {"id": a.pk, "name": a.name, "size": a.size, "content_type": a.content_type}
            for a in message.attachments.all()
        ],
    }


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


def csv_rows(message: Message) -> Iterator[list[str]]:
    """The message's row, then one row per earlier text."""
    sender = _name(message.sender) or message.sender_label
    base = [
        str(message.conversation_id),
        str(message.conversation),
        str(message.pk),
        str(message.seq),
        str(message.thread_root_id or ""),
        str(message.sender_id or ""),
        sender,
        _time(message.created_at),
    ]
    files = " / ".join(a.name for a in message.attachments.all())
    reactions = " / ".join(
        f"{r.emoji} {_name(r.user)} {_time(r.created_at)}" for r in message.reactions.all()
    )
    yield [
        "メッセージ",
        *base,
        message.text,
        files,
        reactions,
        _time(message.edited_at),
        _time(message.deleted_at),
        _name(message.deleted_by),
        "",
        "",
    ]
    for revision in message.revisions.all():
        label = CHANGE_LABELS.get(revision.change, revision.change)
        changed = [_time(revision.replaced_at), _name(revision.replaced_by)]
        yield [label, *base, revision.text, "", "", "", "", "", *changed]


def render_csv(messages: Iterable[Message]) -> tuple[bytes, int]:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    count = 0
    for message in messages:
        count += 1
        for row in csv_rows(message):
            writer.writerow([_cell(value) for value in row])
    return ("\ufeff" + out.getvalue()).encode("utf-8"), count


def do_export_messages(
    *,
    conversation: Conversation | None = None,
    person: User | None = None,
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
    reference: str,
    fmt: str,
    acting_user: User,
) -> bytes:
    """The export as bytes (CSV or JSON, see the module docstring), recorded as a
    ``DisclosureExport`` and audited in one transaction with the reading.  The caller
    checked ``access_disclosure``.  Raises ``ChatError`` for a request without a
    reference or scope, an unknown format or dates in the wrong order."""
    reference = check_export_scope(
        conversation=conversation,
        person=person,
        date_from=date_from,
        date_to=date_to,
        reference=reference,
        fmt=fmt,
    )
    with transaction.atomic():
        messages = messages_in_scope(
            conversation=conversation, person=person, date_from=date_from, date_to=date_to
        ).iterator(chunk_size=CHUNK)
        now = clock.now()
        scope = {
            "conversation": (
                {"id": conversation.pk, "name": str(conversation)} if conversation else None
            ),
            "person": _person(person),
            "from": date_from.isoformat() if date_from else None,
            "to": date_to.isoformat() if date_to else None,
        }
        if fmt == "csv":
            content, count = render_csv(messages)
        else:
            records = [message_record(message) for message in messages]
            count = len(records)
            document = {
                "reference": reference,
                "exported_at": _time(now),
                "exported_by": _person(acting_user),
                "scope": scope,
                "message_count": count,
                "messages": records,
            }
            content = json.dumps(document, ensure_ascii=False, indent=1).encode("utf-8")
        export = DisclosureExport.objects.create(
            requested_by=acting_user,
            conversation=conversation,
            person=person,
            reference=reference,
            created_at=now,
            message_count=count,
        )
        record(
            AuditAction.CHAT_EXPORTED,
            actor=acting_user,
            target=export,
            details={
                "reference": reference,
                "count": count,
                "format": fmt,
                "conversation": conversation.pk if conversation else None,
                "person": person.pk if person else None,
                "from": scope["from"],
                "to": scope["to"],
            },
        )
    return content
