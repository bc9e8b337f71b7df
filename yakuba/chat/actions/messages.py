"""Writes of messages: send (with its client key), notices, edit, delete, reactions,
pins and forwarding.

Seq.  Every change in a conversation takes the conversation's next seq through
``next_seq``, the one place that advances it: a conditional ``UPDATE … RETURNING`` that
locks the conversation row until the caller's transaction ends, so seqs commit in order
within a conversation and a client that resyncs from ``changed_seq > S`` misses nothing.
Keep the transaction short after calling it: every writer of the conversation waits.

Idempotent send.  A send carries a client key; a second send with the same (sender,
key) returns the first message and ``created=False``.  The send inserts first, with no
look-up before (the happy path costs nothing for it): a repeated key fails the INSERT
on the partial unique constraint (also when two sends race: the first committed while
the second waited for the conversation's lock), the send's savepoint rolls back (the
seq with it) and the first message is read and answered.  A retry whose input no longer
passes the checks (its files are attached now, its thread root was deleted) also
answers with the first message when there is one.

The send answers with what it built (``check_send``: the message, its
``events.message_dict`` as the members were sent it, and ``created``): the API needs no
second read of a message it just wrote.

Sending is not reading: the sender's pointer moves onto their message only when they
were caught up (``chat.actions.reads.advance_own_pointer``; its module says why).

Audited: edits, deletions, pins (``AuditAction.CHAT_*``), without the text (the
message's revisions hold it).  Sends and reactions are not: the message table is the
record.  Events are live (``events.notify_message``) after commit.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils.translation import gettext as _

from yakuba.audit.models import AuditAction
from yakuba.audit.record import record
from yakuba.chat import events
from yakuba.chat.actions import ChatError
from yakuba.chat.mentions import Mentions, parse_mentions
from yakuba.chat.models import (
    Attachment,
    Conversation,
    Membership,
    Message,
    MessageRevision,
    Reaction,
)
from yakuba.directory.models import User
from yakuba.lib import clock

__all__ = [
    "Sent",
    "check_forward",
    "check_forward_message",
    "check_send",
    "check_send_message",
    "clean_text",
    "do_delete_message",
    "do_edit_message",
    "do_pin",
    "do_post_notice",
    "do_toggle_reaction",
    "do_unpin",
    "next_seq",
    "payload",
    "register_after_send",
]

CLIENT_KEY = re.compile(r"^[A-Za-z0-9_\-:.]{1,64}$")
# Control characters refused in text (tab, line feed and carriage return are typed), and
# lone surrogates (JSON can carry "\ud800"; no database can store one).
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
EMOJI_MAX = 32
# Invisible format characters an emoji sequence is made with: the zero-width joiner
# (👨‍💻) and the tag characters of subdivision flags.  Other format characters (the
# bidirectional overrides, zero-width spaces) would make a reaction look like another.
EMOJI_FORMAT = frozenset({"\u200d", *(chr(c) for c in range(0xE0020, 0xE0080))})

_after_send: list[Callable[[Message], None]] = []


def register_after_send(hook: Callable[[Message], None]) -> None:
    """Run ``hook(message)`` after the commit of every new message (outgoing webhooks on
    mention, the mention e-mail outbox).  Register once, from an app's ``ready()``."""
    if hook not in _after_send:
        _after_send.append(hook)


def next_seq(conversation_id: int, *, message_at: dt.datetime | None = None) -> int:
    """The conversation's next change seq.  Locks the conversation row until the
    caller's transaction ends: call it inside ``transaction.atomic()``, as late as the
    action allows.  ``message_at``: a new message's time, written as the
    conversation's ``last_message_at`` in the same statement."""
    table = Conversation._meta.db_table
    also: str = ""
    params: list[Any] = [conversation_id]
    if message_at is not None:
        also = ", last_message_at = %s"
        params = [message_at, conversation_id]
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET last_seq = last_seq + 1{also} WHERE id = %s RETURNING last_seq",  # noqa: S608 (the table name is ours)
            params,
        )
        row = cursor.fetchone()
    if row is None:
        raise Conversation.DoesNotExist(conversation_id)
    return int(row[0])


def payload(message: Message, *, sender_name: str | None = None) -> dict[str, Any]:
    """``events.message_dict`` of a message just written (its reactions and files read
    fresh: two queries)."""
    return events.message_dict(
        message,
        reactions=list(Reaction.objects.filter(message=message)),
        attachments=list(Attachment.objects.filter(message=message).order_by("pk")),
        sender_name=sender_name,
    )


def clean_text(text: str, *, allow_empty: bool = False) -> str:
    """The text as stored: trailing spaces of the whole text dropped, checked for
    length and control characters (raises ``ChatError`` with ``field="text"``)."""
    cleaned = (text or "").replace("\r\n", "\n").strip()
    if not cleaned and not allow_empty:
        raise ChatError(
            _("メッセージを入力してください。"),
            "The message is empty.",
            code="empty",
            field="text",
        )
    limit = settings.CHAT_MESSAGE_MAX_CHARS
    if len(cleaned) > limit:
        raise ChatError(
            _("メッセージは%(limit)d文字以内にしてください（今は%(n)d文字です）。")
            % {"limit": limit, "n": len(cleaned)},
            f"The message is longer than {limit} characters.",
            code="too_long",
            field="text",
            details={"limit": limit, "length": len(cleaned)},
        )
    if CONTROL.search(cleaned):
        raise ChatError(
            _("メッセージに使えない制御文字が含まれています。取り除いてから送ってください。"),
            "The message contains control characters.",
            code="control_characters",
            field="text",
        )
    return cleaned


def _check_client_key(client_key: str) -> str:
    if not isinstance(client_key, str) or not CLIENT_KEY.match(client_key):
        raise ChatError(
            _("client_key は英数字と _-:. の1〜64文字で指定してください。"),
            "client_key must be 1-64 characters of A-Z a-z 0-9 _ - : .",
            code="bad_client_key",
            field="client_key",
        )
    return client_key


def _existing(sender: User, client_key: str) -> Message | None:
    return Message.objects.filter(sender=sender, client_key=client_key).first()


def _thread_root(conversation: Conversation, root_id: int | None) -> Message | None:
    if root_id is None:
        return None
    root = Message.objects.filter(pk=root_id, conversation=conversation).first()
    if root is None or root.thread_root_id is not None:
        raise ChatError(
            _(
                "返信先のメッセージがこの会話にありません。スレッドの最初のメッセージを選んでください。"
            ),
            "The thread root is not a top-level message of this conversation.",
            code="bad_thread",
            field="thread_root",
        )
    if root.deleted_at is not None:
        raise ChatError(
            _("返信先のメッセージは削除されています。"),
            "The thread root was deleted.",
            code="bad_thread",
            field="thread_root",
        )
    return root


def _attachments(
    conversation: Conversation, user: User, attachment_ids: Sequence[int]
) -> list[Attachment]:
    wanted = sorted(set(attachment_ids))
    if not wanted:
        return []
    found = list(
        Attachment.objects.filter(
            pk__in=wanted, conversation=conversation, uploaded_by=user, message__isnull=True
        )
        .exclude(scan=Attachment.Scan.INFECTED)
        .order_by("pk")
    )
    if len(found) != len(wanted):
        raise ChatError(
            _("添付ファイルが見つかりません。もう一度アップロードしてから送ってください。"),
            "An attachment is unknown, already sent, or not yours in this conversation.",
            code="bad_attachment",
            field="attachments",
        )
    return found


def _confirm_mentions(mentions: Mentions, confirmed: bool) -> None:
    over = settings.CHAT_MENTION_CONFIRM_OVER
    if mentions.notify_count > over and not confirmed:
        raise ChatError(
            _("このメンションは%(n)d人に通知されます。送ってよければ確認してください。")
            % {"n": mentions.notify_count},
            f"This mention would notify {mentions.notify_count} people; confirm to send.",
            code="confirm_mentions",
            status=409,
            details={"count": mentions.notify_count},
        )


class Sent(NamedTuple):
    """A send's outcome: the message, its ``events.message_dict`` (for a new message,
    the one the members were sent; for a repeated key, the first message as it is now)
    and whether it was created now."""

    message: Message
    payload: dict[str, Any]
    created: bool


def check_send_message(
    membership: Membership,
    *,
    text: str,
    client_key: str,
    thread_root_id: int | None = None,
    attachment_ids: Sequence[int] = (),
    confirm_mass_mention: bool = False,
    acting_user: User,
    forwarded_from: Message | None = None,
    mention_text: str | None = None,
) -> tuple[Message, bool]:
    """``check_send`` without the payload: ``(message, created)``."""
    sent = check_send(
        membership,
        text=text,
        client_key=client_key,
        thread_root_id=thread_root_id,
        attachment_ids=attachment_ids,
        confirm_mass_mention=confirm_mass_mention,
        acting_user=acting_user,
        forwarded_from=forwarded_from,
        mention_text=mention_text,
    )
    return sent.message, sent.created


def check_send(
    membership: Membership,
    *,
    text: str,
    client_key: str,
    thread_root_id: int | None = None,
    attachment_ids: Sequence[int] = (),
    confirm_mass_mention: bool = False,
    acting_user: User,
    forwarded_from: Message | None = None,
    mention_text: str | None = None,
) -> Sent:
    """Send a message as ``membership``'s person (the caller checked they may post:
    ``access_conversation_for_post``, which loaded ``membership.conversation``).
    Mentions are read from ``mention_text`` when given (a forward: its comment, not the
    quoted original).  ``created`` is False when this (sender, client key) was sent
    before, and that message is returned.

    Queries of a plain new message (no ``@``, file or thread), whatever the number of
    members: the savepoint, the seq (``next_seq``), the INSERT, the members (who are
    sent it), the sender's pointer (one conditional UPDATE), the release.  Locks the
    conversation row from the seq to the commit."""
    client_key = _check_client_key(client_key)
    conversation = membership.conversation
    try:
        files = list(attachment_ids)
        cleaned = clean_text(text, allow_empty=bool(files))
        root = _thread_root(conversation, thread_root_id)
        attachments = _attachments(conversation, acting_user, files)
        mention_source = cleaned if mention_text is None else mention_text
        mentions = parse_mentions(mention_source, conversation, sender_id=acting_user.pk)
        _confirm_mentions(mentions, confirm_mass_mention)
    except ChatError:
        # A retry whose files are attached now (or whose thread root went meanwhile):
        # the first message is the answer.
        existing = _existing(acting_user, client_key)
        if existing is None:
            raise
        return _repeated(existing, membership)
    try:
        with transaction.atomic():
            message, message_payload = _do_send(
                membership,
                acting_user,
                text=cleaned,
                client_key=client_key,
                root=root,
                attachments=attachments,
                mentions=mentions,
                forwarded_from=forwarded_from,
            )
    except IntegrityError:
        # The (sender, client key) was sent before, or just now by a racing send.
        existing = _existing(acting_user, client_key)
        if existing is None:
            raise
        return _repeated(existing, membership)
    return Sent(message, message_payload, True)


def _repeated(existing: Message, membership: Membership) -> Sent:
    """The message a repeated client key names, if it was sent to the same conversation
    (a key used again elsewhere is a client bug: refused, never a silent wrong answer),
    read again with its parts."""
    if existing.conversation_id != membership.conversation_id:
        raise ChatError(
            _("この client_key は別の会話への送信で使われています。新しいキーで送ってください。"),
            "This client_key was used for a message in another conversation.",
            code="client_key_reused",
            status=409,
            field="client_key",
        )
    from yakuba.chat import queries

    loaded = queries.message_with_parts(existing.pk)
    return Sent(loaded, queries.message_payloads([loaded])[0], False)


def _do_send(
    membership: Membership,
    sender: User,
    *,
    text: str,
    client_key: str,
    root: Message | None,
    attachments: list[Attachment],
    mentions: Mentions,
    forwarded_from: Message | None,
) -> tuple[Message, dict[str, Any]]:
    from yakuba.chat.actions.reads import advance_own_pointer, advance_own_thread_pointer

    conversation = membership.conversation
    now = clock.now()
    seq = next_seq(conversation.pk, message_at=now)
    # The INSERT fails here on a repeated client key (the caller answers the first).
    message = Message.objects.create(
        conversation=conversation,
        seq=seq,
        changed_seq=seq,
        kind=Message.Kind.TEXT,
        sender=sender,
        client_key=client_key,
        text=text,
        thread_root=root,
        mentions=mentions.user_ids,
        mentions_channel=mentions.channel,
        has_file=bool(attachments),
        forwarded_from=forwarded_from,
        created_at=now,
    )
    conversation.last_seq = seq
    conversation.last_message_at = now
    if attachments:
        attached = Attachment.objects.filter(
            pk__in=[a.pk for a in attachments], message__isnull=True
        ).update(message=message)
        if attached != len(attachments):
            raise ChatError(
                _("添付ファイルは別のメッセージで送られました。"),
                "An attachment was sent with another message meanwhile.",
                code="bad_attachment",
                field="attachments",
            )
    recipients = events.member_ids(conversation.pk)
    if root is not None:
        root_seq = next_seq(conversation.pk)
        Message.objects.filter(pk=root.pk).update(
            reply_count=F("reply_count") + 1, last_reply_seq=seq, changed_seq=root_seq
        )
        root.refresh_from_db(fields=["reply_count", "last_reply_seq", "changed_seq"])
        conversation.last_seq = root_seq
        advance_own_thread_pointer(sender, root, seq)
    else:
        advance_own_pointer(membership, seq, now=now)
    _queue_mentions(message, mentions)
    name = sender.display_name or sender.username
    # A new message has no reactions yet, and its files are the ones just attached.
    fresh = events.message_dict(message, attachments=attachments, sender_name=name)
    events.notify_message(message, fresh, recipients=recipients)
    if root is not None:
        events.notify_message(root, payload(root), recipients=recipients)
    transaction.on_commit(lambda: _run_after_send(message))
    return message, fresh


def _queue_mentions(message: Message, mentions: Mentions) -> None:
    """The mention e-mail outbox (``chat.notifications``), in the send's transaction."""
    if settings.CHAT_MENTION_EMAIL_DELAY_MINUTES and (mentions.user_ids or mentions.channel):
        from yakuba.chat.notifications import queue_mention_notices

        queue_mention_notices(message, mentions.user_ids)


def _run_after_send(message: Message) -> None:
    for hook in list(_after_send):
        hook(message)


def do_post_notice(
    conversation: Conversation,
    text: str,
    *,
    label: str,
    kind: str = Message.Kind.SYSTEM,
    client_key: str | None = None,
) -> Message:
    """A message without a sender (a system notice, an incoming webhook, another
    feature reporting), shown under ``label``.  Not idempotent: the caller (a webhook
    handler) deduplicates if it must, and may store its key as ``client_key`` (not
    unique without a sender).  Locks the conversation row until commit."""
    cleaned = clean_text(text)
    mentions = parse_mentions(cleaned, conversation, sender_id=None)
    with transaction.atomic():
        now = clock.now()
        seq = next_seq(conversation.pk, message_at=now)
        message = Message.objects.create(
            conversation=conversation,
            seq=seq,
            changed_seq=seq,
            kind=kind,
            sender=None,
            sender_label=label[:100],
            client_key=client_key,
            text=cleaned,
            mentions=mentions.user_ids,
            mentions_channel=mentions.channel,
            created_at=now,
        )
        conversation.last_message_at = now
        _queue_mentions(message, mentions)
        events.notify_message(message, events.message_dict(message, sender_name=label[:100]))
        transaction.on_commit(lambda: _run_after_send(message))
    return message


class _Unchanged(Exception):
    """Raised inside an action's transaction when, under the lock, there is nothing to
    change after all: the seq it took rolls back with it."""


def _changed(message: Message, fields: Iterable[str]) -> None:
    """Give the message the conversation's next seq as its ``changed_seq`` and save
    ``fields`` with it (inside the caller's transaction)."""
    message.changed_seq = next_seq(message.conversation_id)
    message.save(update_fields=[*fields, "changed_seq"])


def _lock_and_reread(message: Message) -> None:
    """Take the conversation's next seq (its lock) and read the message's changeable
    state again under it, so that two changes at once each see the other's result (the
    revision keeps the text that was really replaced)."""
    message.changed_seq = next_seq(message.conversation_id)
    message.refresh_from_db(fields=["text", "edited_at", "deleted_at", "pinned_at"])


def do_edit_message(message: Message, *, text: str, acting_user: User) -> bool:
    """Replace the text (the sender; checked by ``access_message_for_change``).  The old
    text stays in a ``MessageRevision`` ("edit").  Returns False when nothing changed.
    Audited without the text.  Locks the conversation row until commit."""
    cleaned = clean_text(text, allow_empty=message.has_file)
    if cleaned == message.text:
        return False
    mentions = parse_mentions(cleaned, message.conversation, sender_id=message.sender_id)
    try:
        with transaction.atomic():
            _lock_and_reread(message)
            if message.deleted_at is not None or cleaned == message.text:
                raise _Unchanged
            now = clock.now()
            MessageRevision.objects.create(
                message=message,
                text=message.text,
                replaced_at=now,
                replaced_by=acting_user,
                change="edit",
            )
            message.text = cleaned
            message.edited_at = now
            message.mentions = mentions.user_ids
            message.mentions_channel = mentions.channel
            message.save(
                update_fields=["text", "edited_at", "mentions", "mentions_channel", "changed_seq"]
            )
            record(
                AuditAction.CHAT_MESSAGE_EDITED,
                actor=acting_user,
                target=message,
                details={"conversation": message.conversation_id, "seq": message.seq},
            )
            events.notify_message(message, payload(message))
    except _Unchanged:
        message.refresh_from_db()
        return False
    return True


def do_delete_message(message: Message, *, acting_user: User) -> bool:
    """Delete a message: its text moves to a ``MessageRevision`` ("delete"), the row
    keeps its place (``deleted_at``/``deleted_by``) and shows as deleted.  Returns False
    if it was deleted already.  Audited.  Locks the conversation row until commit."""
    if message.deleted_at is not None:
        return False
    try:
        with transaction.atomic():
            _lock_and_reread(message)
            if message.deleted_at is not None:
                raise _Unchanged
            now = clock.now()
            MessageRevision.objects.create(
                message=message,
                text=message.text,
                replaced_at=now,
                replaced_by=acting_user,
                change="delete",
            )
            was_pinned = message.pinned_at is not None
            message.text = ""
            message.deleted_at = now
            message.deleted_by = acting_user
            message.pinned_at = None
            message.pinned_by = None
            message.save(
                update_fields=[
                    "text",
                    "deleted_at",
                    "deleted_by",
                    "pinned_at",
                    "pinned_by",
                    "changed_seq",
                ]
            )
            record(
                AuditAction.CHAT_MESSAGE_DELETED,
                actor=acting_user,
                target=message,
                details={
                    "conversation": message.conversation_id,
                    "seq": message.seq,
                    "own": message.sender_id == acting_user.pk,
                    "was_pinned": was_pinned,
                },
            )
            events.notify_message(message, payload(message))
    except _Unchanged:
        message.refresh_from_db()
        return False
    return True


def do_toggle_reaction(message: Message, *, emoji: str, add: bool, acting_user: User) -> bool:
    """Add or remove ``acting_user``'s ``emoji`` on the message (a member; the caller
    checked).  Idempotent: returns False when there was nothing to change.  Locks the
    conversation row until commit when something changes."""
    emoji = (emoji or "").strip()
    if not emoji or len(emoji) > EMOJI_MAX or not all(map(_emoji_char, emoji)):
        raise ChatError(
            _("リアクションは空白を含まない%(n)d文字以内で指定してください。") % {"n": EMOJI_MAX},
            f"A reaction is 1-{EMOJI_MAX} characters without spaces.",
            code="bad_emoji",
            field="emoji",
        )
    if message.deleted_at is not None:
        raise ChatError(
            _("削除されたメッセージにはリアクションできません。"),
            "The message was deleted.",
            code="deleted",
        )
    with transaction.atomic():
        if add:
            _reaction, changed = Reaction.objects.get_or_create(
                message=message, user=acting_user, emoji=emoji
            )
        else:
            deleted, _rows = Reaction.objects.filter(
                message=message, user=acting_user, emoji=emoji
            ).delete()
            changed = deleted > 0
        if changed:
            _changed(message, [])
            events.notify_message(message, payload(message))
    return changed


def _emoji_char(char: str) -> bool:
    """Whether ``char`` may be part of a reaction: anything visible (emoji, kana, kanji,
    marks such as the variation selector), no spaces, controls or surrogates."""
    category = unicodedata.category(char)
    if category == "Cf":
        return char in EMOJI_FORMAT
    return category[0] not in "CZ"


def _set_pin(message: Message, *, pinned: bool, acting_user: User) -> bool:
    if (message.pinned_at is not None) == pinned:
        return False
    if message.deleted_at is not None:
        raise ChatError(
            _("削除されたメッセージはピン留めできません。"),
            "The message was deleted.",
            code="deleted",
        )
    try:
        with transaction.atomic():
            _lock_and_reread(message)
            if message.deleted_at is not None or (message.pinned_at is not None) == pinned:
                raise _Unchanged
            message.pinned_at = clock.now() if pinned else None
            message.pinned_by = acting_user if pinned else None
            message.save(update_fields=["pinned_at", "pinned_by", "changed_seq"])
            record(
                AuditAction.CHAT_MESSAGE_PINNED if pinned else AuditAction.CHAT_MESSAGE_UNPINNED,
                actor=acting_user,
                target=message,
                details={"conversation": message.conversation_id, "seq": message.seq},
            )
            events.notify_message(message, payload(message))
    except _Unchanged:
        message.refresh_from_db()
        return False
    return True


def do_pin(message: Message, *, acting_user: User) -> bool:
    """Pin a message (members; the caller checked).  False if pinned already.  Audited."""
    return _set_pin(message, pinned=True, acting_user=acting_user)


def do_unpin(message: Message, *, acting_user: User) -> bool:
    """Unpin a message.  False if it was not pinned.  Audited."""
    return _set_pin(message, pinned=False, acting_user=acting_user)


def forward_text(message: Message, comment: str) -> str:
    """The forwarded message's text: the comment, then the original quoted line by line,
    shortened (ending in 「…」) where the quote marks would make it longer than a
    message may be: a long message can be forwarded too (the link back shows it all)."""
    original = message.text or _("（ファイル）")
    head = comment.strip()
    limit = settings.CHAT_MESSAGE_MAX_CHARS - (len(head) + 1 if head else 0)
    quoted = "\n".join(f"> {line}" for line in original.split("\n"))
    if len(quoted) > limit:
        quoted = quoted[: max(limit - 1, 0)].rstrip() + "…"
    return f"{head}\n{quoted}" if head else quoted


def check_forward_message(
    message: Message,
    target_membership: Membership,
    *,
    comment: str,
    client_key: str,
    acting_user: User,
    confirm_mass_mention: bool = False,
) -> tuple[Message, bool]:
    """``check_forward`` without the payload: ``(message, created)``."""
    sent = check_forward(
        message,
        target_membership,
        comment=comment,
        client_key=client_key,
        acting_user=acting_user,
        confirm_mass_mention=confirm_mass_mention,
    )
    return sent.message, sent.created


def check_forward(
    message: Message,
    target_membership: Membership,
    *,
    comment: str,
    client_key: str,
    acting_user: User,
    confirm_mass_mention: bool = False,
) -> Sent:
    """Send ``message`` on to another conversation (``target_membership``: the
    forwarder may post there), quoted under ``comment``, with ``forwarded_from`` as the
    link back.  The forwarder must be able to read the original.  Idempotent by
    ``client_key`` like a send."""
    from yakuba.chat.access import may_read

    if not may_read(acting_user, message.conversation):
        raise ChatError(
            _("転送元のメッセージを読む権限がありません。"),
            "You may not read the message you are forwarding.",
            code="forbidden",
            status=403,
        )
    if message.deleted_at is not None:
        raise ChatError(
            _("削除されたメッセージは転送できません。"),
            "The message was deleted.",
            code="deleted",
        )
    comment = clean_text(comment, allow_empty=True)
    return check_send(
        target_membership,
        text=forward_text(message, comment),
        client_key=client_key,
        acting_user=acting_user,
        forwarded_from=message,
        mention_text=comment,
        confirm_mass_mention=confirm_mass_mention,
    )
