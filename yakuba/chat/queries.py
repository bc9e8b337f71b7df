"""Reads of chat data for the API and the pages, each in a fixed number of queries.

These trust their caller: the conversation or message was fetched through
``yakuba.chat.access`` first.  Unread counts and 既読 come from read pointers
(``Membership.last_read_seq``) compared with message seqs, never from a row per message
and reader.
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.db.models import Count, F, Min, OuterRef, Prefetch, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce

from yakuba.chat import events
from yakuba.chat.models import Attachment, Conversation, Membership, Message, ReadMark, ThreadRead
from yakuba.directory.models import User

PAGE_MAX = 200
CHANGES_MAX = 1000


def _with_parts(rows: QuerySet[Message]) -> QuerySet[Message]:
    """Messages with their sender, reactions and files (three queries for any number)."""
    return rows.select_related("sender").prefetch_related(
        "reactions", Prefetch("attachments", queryset=Attachment.objects.order_by("pk"))
    )


def message_payloads(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """``events.message_dict`` of messages loaded by this module (no further query)."""
    return [
        events.message_dict(
            message,
            reactions=message.reactions.all(),
            attachments=message.attachments.all(),
            sender_name=_sender_name(message),
        )
        for message in messages
    ]


def _sender_name(message: Message) -> str:
    if message.sender_id is None:
        return message.sender_label
    sender = message.sender
    assert sender is not None
    return sender.display_name or sender.username


def conversation_list(user: User) -> list[dict[str, Any]]:
    """The conversations ``user`` is a member of, newest activity first, each with its
    unread count (top-level messages after the read pointer, not deleted, not theirs),
    unread mentions, the first unread seq, and their notification settings.

    Queries (pinned by a test):
    1. the memberships with their conversations and member counts;
    2. unread counts and first unread seq per conversation (one grouped query);
    3. the unread messages that mention anyone (mentions of ``user`` counted here: a
       JSON ``contains`` is not available on SQLite); a reply is unread until the
       person's pointer in its thread passes it;
    4. the other members' names in direct and unnamed group conversations, and the
       other person's id of a direct message (for the presence dot); only when there
       are such conversations.
    """
    memberships = list(
        Membership.objects.filter(user=user)
        .select_related("conversation")
        .annotate(members=Count("conversation__memberships"))
    )
    if not memberships:
        return []
    unread_rows = (
        Message.objects.filter(
            conversation__memberships__user=user,
            seq__gt=F("conversation__memberships__last_read_seq"),
            thread_root__isnull=True,
            deleted_at__isnull=True,
        )
        .exclude(sender=user)
        .values("conversation_id")
        .annotate(unread=Count("pk"), first=Min("seq"))
        .order_by()
    )
    unread = {row["conversation_id"]: (row["unread"], row["first"]) for row in unread_rows}
    mentioned: dict[int, int] = {}
    # A mention in a thread reply is read when the thread is (threads have their own
    # unread state), not when the timeline's pointer passes the reply's seq.
    thread_seen = ThreadRead.objects.filter(root=OuterRef("thread_root_id"), user=user).values(
        "last_read_seq"
    )[:1]
    mention_rows = (
        Message.objects.annotate(thread_seen=Coalesce(Subquery(thread_seen), 0))
        .filter(
            Q(thread_root__isnull=True, seq__gt=F("conversation__memberships__last_read_seq"))
            | Q(thread_root__isnull=False, seq__gt=F("thread_seen")),
            conversation__memberships__user=user,
            deleted_at__isnull=True,
        )
        .exclude(sender=user)
        .filter(Q(mentions_channel=True) | ~Q(mentions=[]))
        .values_list("conversation_id", "mentions", "mentions_channel")
    )
    for conversation_id, mentions, channel in mention_rows:
        if channel or user.pk in (mentions or []):
            mentioned[conversation_id] = mentioned.get(conversation_id, 0) + 1
    unnamed = [
        m.conversation_id
        for m in memberships
        if m.conversation.kind == Conversation.Kind.DIRECT
        or (m.conversation.kind == Conversation.Kind.GROUP and not m.conversation.name)
    ]
    others: dict[int, list[str]] = {}
    other_user: dict[int, int] = {}
    if unnamed:
        for conversation_id, user_id, name, username in (
            Membership.objects.filter(conversation_id__in=unnamed)
            .exclude(user=user)
            .order_by("conversation_id", "user__display_name", "user_id")
            .values_list("conversation_id", "user_id", "user__display_name", "user__username")
        ):
            others.setdefault(conversation_id, []).append(name or username)
            other_user.setdefault(conversation_id, user_id)
    result = []
    for membership in memberships:
        conversation = membership.conversation
        count, first = unread.get(conversation.pk, (0, None))
        name = conversation.name
        if not name and conversation.pk in others:
            name = "、".join(others[conversation.pk][:5])
        result.append(
            {
                "id": conversation.pk,
                "kind": conversation.kind,
                "name": name or str(conversation),
                "description": conversation.description,
                "is_private": conversation.is_private,
                "last_seq": conversation.last_seq,
                "last_message_at": conversation.last_message_at,
                "last_read_seq": membership.last_read_seq,
                "unread": count,
                "mentions_unread": mentioned.get(conversation.pk, 0),
                "first_unread_seq": first,
                "notify": membership.notify,
                "muted": membership.muted,
                "role": membership.role,
                "archived": conversation.archived_at is not None,
                "read_receipts": conversation.read_receipts,
                "members": getattr(membership, "members", 0),
                "other_user": other_user.get(conversation.pk)
                if conversation.kind == Conversation.Kind.DIRECT
                else None,
            }
        )
    epoch = dt.datetime.min.replace(tzinfo=dt.UTC)
    result.sort(key=lambda row: (row["last_message_at"] or epoch, row["id"]), reverse=True)
    return result


@dataclass(frozen=True)
class Page:
    """Messages oldest first; ``more``: older ones exist before the first."""

    messages: list[Message]
    more: bool


def messages_page(
    conversation: Conversation, *, before_seq: int | None = None, limit: int = 50
) -> Page:
    """The newest ``limit`` top-level messages before ``before_seq`` (all when None),
    oldest first.  Queries: the page, then reactions and files (sender joined)."""
    limit = max(1, min(limit, PAGE_MAX))
    rows = Message.objects.filter(conversation=conversation, thread_root__isnull=True)
    if before_seq is not None:
        rows = rows.filter(seq__lt=before_seq)
    found = list(_with_parts(rows.order_by("-seq"))[: limit + 1])
    more = len(found) > limit
    page = found[:limit]
    page.reverse()
    return Page(messages=page, more=more)


@dataclass(frozen=True)
class Changes:
    """Messages changed after a seq, in change order; ``head`` is the seq the client
    knows the conversation up to once it applied them; ``more``: ask again from
    ``head``."""

    messages: list[Message]
    head: int
    more: bool


def changes_after(conversation: Conversation, after: int, limit: int = 500) -> Changes:
    """Every message (top-level or reply) whose ``changed_seq`` is above ``after``, in
    its current state, in ``changed_seq`` order.

    The head is read first and the messages only up to it: seqs commit in order (the
    conversation row's lock), so everything up to a committed head is visible, and a
    change committed meanwhile comes in the next call instead of being skipped."""
    limit = max(1, min(limit, CHANGES_MAX))
    head = int(
        Conversation.objects.filter(pk=conversation.pk).values_list("last_seq", flat=True).first()
        or 0
    )
    rows = Message.objects.filter(
        conversation=conversation, changed_seq__gt=after, changed_seq__lte=head
    ).order_by("changed_seq")
    found = list(_with_parts(rows)[: limit + 1])
    more = len(found) > limit
    found = found[:limit]
    return Changes(messages=found, head=found[-1].changed_seq if more else head, more=more)


def thread(root: Message) -> list[Message]:
    """The root's replies in order (the root itself is not included)."""
    return list(_with_parts(Message.objects.filter(thread_root=root).order_by("seq")))


def thread_unread(user: User, root: Message) -> int:
    """Replies in the thread after ``user``'s thread pointer, not deleted, not theirs."""
    pointer = (
        ThreadRead.objects.filter(root=root, user=user)
        .values_list("last_read_seq", flat=True)
        .first()
        or 0
    )
    return (
        Message.objects.filter(thread_root=root, seq__gt=pointer, deleted_at__isnull=True)
        .exclude(sender=user)
        .count()
    )


def pins(conversation: Conversation) -> list[Message]:
    """Pinned messages, most recently pinned first."""
    return list(
        _with_parts(
            Message.objects.filter(conversation=conversation, pinned_at__isnull=False).order_by(
                "-pinned_at", "-seq"
            )
        )
    )


def read_counts(conversation: Conversation, messages: Sequence[Message]) -> dict[int, int]:
    """既読 N of each message: the other members (not the sender) who were shown it.  A
    top-level message is shown in the timeline: the members' read pointers that reached
    its seq.  A reply is shown in its thread only: the members' thread pointers (the
    conversation's pointer passing a reply's seq says nothing about the thread).

    Queries: the members' pointers; and the thread pointers when there are replies."""
    pointers = dict(
        Membership.objects.filter(conversation=conversation).values_list("user_id", "last_read_seq")
    )
    roots = {m.thread_root_id for m in messages if m.thread_root_id is not None}
    in_threads: dict[int, dict[int, int]] = {}
    if roots:
        for thread_id, user_id, seq in ThreadRead.objects.filter(
            root_id__in=roots,
            user_id__in=Membership.objects.filter(conversation=conversation).values("user_id"),
        ).values_list("root_id", "user_id", "last_read_seq"):
            in_threads.setdefault(thread_id, {})[user_id] = seq
    ordered: dict[int | None, list[int]] = {None: sorted(pointers.values())}
    for thread_id, by_user in in_threads.items():
        ordered[thread_id] = sorted(by_user.values())
    counts: dict[int, int] = {}
    for message in messages:
        root_id = message.thread_root_id
        mine = pointers if root_id is None else in_threads.get(root_id, {})
        seqs = ordered.get(root_id, [])
        reached = len(seqs) - bisect.bisect_left(seqs, message.seq)
        if message.sender_id is not None and mine.get(message.sender_id, 0) >= message.seq:
            reached -= 1
        counts[message.pk] = reached
    return counts


def readers(message: Message) -> list[tuple[int, str, dt.datetime | None]]:
    """Who read the message and when (the earliest read mark covering its seq), for
    the current members other than the sender, earliest first.  Empty where the
    conversation does not show 既読.

    A reply is read in its thread: the members whose thread pointer reached it, by
    name, without a time (thread pointers keep no history of their moves)."""
    conversation = message.conversation
    if not conversation.read_receipts:
        return []
    if message.thread_root_id is not None:
        in_thread = (
            ThreadRead.objects.filter(
                root_id=message.thread_root_id,
                last_read_seq__gte=message.seq,
                user__chat_memberships__conversation=conversation,
            )
            .exclude(user_id=message.sender_id or 0)
            .order_by("user__display_name", "user_id")
            .values_list("user_id", "user__display_name", "user__username")
        )
        return [(user_id, name or username, None) for user_id, name, username in in_thread]
    rows = (
        ReadMark.objects.filter(
            conversation=conversation,
            from_seq__lt=message.seq,
            to_seq__gte=message.seq,
            user__chat_memberships__conversation=conversation,
        )
        .exclude(user_id=message.sender_id or 0)
        .values("user_id", "user__display_name", "user__username")
        .annotate(at=Min("read_at"))
        .order_by("at", "user_id")
    )
    return [
        (row["user_id"], row["user__display_name"] or row["user__username"], row["at"])
        for row in rows
    ]


def message_with_parts(message_id: int) -> Message:
    """One message with its conversation, sender, reactions and files (just written or
    fetched through ``access``)."""
    return _with_parts(Message.objects.select_related("conversation").filter(pk=message_id)).get()


def thread_pointer(user: User, root: Message) -> int:
    """``user``'s read pointer in the thread of ``root`` (0 when never opened)."""
    return int(
        ThreadRead.objects.filter(root=root, user=user)
        .values_list("last_read_seq", flat=True)
        .first()
        or 0
    )
