"""What chat sends, and the one JSON shape of a message.

Live events (``send_live_on_commit``; not persisted per user, see chat.models for how a
client resyncs) reach the open sockets of a conversation's members as
``{"op": "live", "event": E}``, with ``E["type"] == "chat"``:

- ``{"op": "message", "conversation": id, "seq": n, "message": message_dict}``: a message
  was created or changed (edited, deleted, reacted to, pinned, replied to: its
  ``reply_count``).  ``seq`` is the conversation's change seq; a client that knew the
  conversation up to ``seq - 1`` is now up to date, one that sees a jump asks
  ``GET /api/chat/conversations/{id}/changes?after=…`` for the gap.
- ``{"op": "read", "conversation": id, "user": uid, "seq": n, "at": iso}``: a member's read
  pointer moved to ``n`` (既読 counts change).
- ``{"op": "typing", "conversation": id, "user": uid, "name": str, "thread": root|None}``.
- ``{"op": "presence", "changes": [presence_dict, …]}``: batched (chat.presence).

Stream events (``send_event_on_commit``, persisted, replayed): what a person must not
miss and that happens rarely: ``{"type": "chat", "op": "conversation", "conversation": id,
"change": "added|removed|changed|archived|unarchived"}``, sent to the members (and the
people removed), after which the client refetches its conversation list.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import transaction

from yakuba.chat.formatting import render_html
from yakuba.chat.models import Attachment, Conversation, Membership, Message, Reaction
from yakuba.realtime.send import send_event_on_commit, send_live_on_commit


def member_ids(conversation_id: int) -> list[int]:
    """The user ids of a conversation's members (one query)."""
    return list(
        Membership.objects.filter(conversation_id=conversation_id).values_list("user_id", flat=True)
    )


def reactions_dict(reactions: Iterable[Reaction]) -> list[dict[str, Any]]:
    """``[{"emoji", "users": [ids]}]`` in first-use order."""
    grouped: dict[str, list[int]] = {}
    for reaction in sorted(reactions, key=lambda r: (r.created_at, r.pk)):
        grouped.setdefault(reaction.emoji, []).append(reaction.user_id)
    return [{"emoji": emoji, "users": users} for emoji, users in grouped.items()]


def attachment_dict(attachment: Attachment) -> dict[str, Any]:
    return {
        "id": attachment.pk,
        "name": attachment.name,
        "size": attachment.size,
        "content_type": attachment.content_type,
        "has_thumbnail": bool(attachment.thumbnail_path),
        "scan": attachment.scan,
    }


def message_dict(
    message: Message,
    *,
    reactions: Iterable[Reaction] = (),
    attachments: Iterable[Attachment] = (),
    sender_name: str | None = None,
) -> dict[str, Any]:
    """A message as the API, the pages and live events show it.  A deleted message keeps
    its place and says so, without its text or files."""
    deleted = message.deleted_at is not None
    return {
        "id": message.pk,
        "conversation": message.conversation_id,
        "seq": message.seq,
        "changed_seq": message.changed_seq,
        "kind": message.kind,
        "sender": message.sender_id,
        "sender_name": sender_name
        if sender_name is not None
        else (message.sender_label or (str(message.sender) if message.sender_id else "")),
        "client_key": message.client_key,
        "text": "" if deleted else message.text,
        "html": "" if deleted else render_html(message.text),
        "thread_root": message.thread_root_id,
        "reply_count": message.reply_count,
        "last_reply_seq": message.last_reply_seq,
        "mentions": message.mentions,
        "mentions_channel": message.mentions_channel,
        "forwarded_from": message.forwarded_from_id,
        "created_at": message.created_at.isoformat(),
        "edited": message.edited_at is not None,
        "edited_at": message.edited_at.isoformat() if message.edited_at else None,
        "deleted": deleted,
        "pinned": message.pinned_at is not None,
        "reactions": [] if deleted else reactions_dict(reactions),
        "attachments": [] if deleted else [attachment_dict(a) for a in attachments],
    }


def notify_message(
    message: Message, payload: dict[str, Any], *, recipients: list[int] | None = None
) -> None:
    """Send a created or changed message to the conversation's members after commit."""
    send_live_on_commit(
        {
            "type": "chat",
            "op": "message",
            "conversation": message.conversation_id,
            "seq": message.changed_seq,
            "message": payload,
        },
        recipients if recipients is not None else member_ids(message.conversation_id),
    )


def notify_read(membership: Membership, *, recipients: list[int] | None = None) -> None:
    at = membership.last_read_at.isoformat() if membership.last_read_at else None
    send_live_on_commit(
        {
            "type": "chat",
            "op": "read",
            "conversation": membership.conversation_id,
            "user": membership.user_id,
            "seq": membership.last_read_seq,
            "at": at,
        },
        recipients if recipients is not None else member_ids(membership.conversation_id),
    )


def notify_conversation(conversation: Conversation, change: str, user_ids: Iterable[int]) -> None:
    """A persisted event: the conversation was added to, removed from or changed for
    these people (clients refetch their list).  This process also drops its cached
    member list of the conversation (typing indicators); other processes' caches expire
    within ``live.MEMBERS_TTL``."""
    from yakuba.chat import live

    conversation_id = conversation.pk
    transaction.on_commit(lambda: live.forget_members(conversation_id))
    send_event_on_commit(
        {"type": "chat", "op": "conversation", "conversation": conversation.pk, "change": change},
        user_ids,
    )
